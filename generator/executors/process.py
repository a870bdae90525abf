"""The process executor: a pool of spawned worker processes on this machine.

Workers are started with "spawn", not "fork": PyAV, OpenCV and torch start threads, and a forked child inherits
their locks in whatever state they were, which deadlocks at random. Each worker caps its native thread pools
(OpenMP, MKL, OpenBLAS, OpenCV) to its share of the cores, so N workers on N cores do not oversubscribe them.

The pool lives until `close()`, and its workers are reused across tasks and across `map` calls: a backend cached
per process (`codirector.generator.registry.load_backend`) stays loaded between tasks.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, ClassVar, Literal, TypeVar

from codirector.errors import ConfigError
from codirector.generator.executors.base import Executor, map_in_window, run_task, task_error, unwrap, worker_died

__all__ = ["ProcessExecutor"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

_THREAD_VARIABLES = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
)  # fmt: skip


def _init_worker(num_threads: int) -> None:
    """Runs first in each worker: cap native thread pools; leave Ctrl-C to the parent, which stops the workers."""
    # The parent handles KeyboardInterrupt and terminates the pool; a worker that also caught it would print its
    # own traceback and could die halfway through writing a file.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for variable in _THREAD_VARIABLES:
        os.environ[variable] = str(num_threads)
    # The variables only reach libraries loaded after this point; the spawn bootstrap may already have imported
    # numpy (with the parent's main module), so cap loaded pools directly as well.
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        pass
    else:
        threadpool_limits(num_threads)
    try:
        import cv2
    except ImportError:
        pass
    else:
        cv2.setNumThreads(num_threads)
    if "torch" in sys.modules:  # never import torch just to configure it
        sys.modules["torch"].set_num_threads(num_threads)


class ProcessExecutor(Executor):
    """Runs tasks in a pool of `num_workers` spawned processes.

    A spawned worker imports the main module again, so a script that uses this executor must guard its entry
    point with `if __name__ == "__main__":` (the `codirector` command does).

    Args:
        num_workers: processes in the pool; `os.cpu_count()` when None.
        threads_per_worker: native threads each worker may use; the cores divided among the workers when None.

    Example:
        >>> import math
        >>> with ProcessExecutor(num_workers=2) as executor:
        ...     executor.map(math.factorial, [3, 4], stage="demo")
        [6, 24]
    """

    name: ClassVar[Literal["process"]] = "process"

    def __init__(self, num_workers: int | None = None, *, threads_per_worker: int | None = None) -> None:
        cores = os.cpu_count() or 1
        if num_workers is not None and num_workers < 1:
            raise ConfigError("executor 'process'", f"num_workers={num_workers} is below 1", "Use 1 or more.")
        self.num_workers = num_workers or cores
        self.threads_per_worker = threads_per_worker or max(1, cores // self.num_workers)
        self._pool: ProcessPoolExecutor | None = None

    def _get_pool(self) -> ProcessPoolExecutor:
        # Made on first use and again after a worker died (a broken pool takes no more tasks).
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.num_workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.threads_per_worker,),
            )
        return self._pool

    def map(
        self,
        fn: Callable[[T], R],
        tasks: Sequence[T],
        *,
        stage: str,
        on_done: Callable[[int, R], None] | None = None,
    ) -> list[R]:
        pool = self._get_pool()
        broken = False

        def collect(future: Future[Any], index: int) -> Any:
            nonlocal broken
            try:
                outcome = future.result()
            except BrokenProcessPool as error:
                broken = True
                raise worker_died(stage, str(error) or "the process pool broke") from error
            except Exception as error:  # the task's outcome did not pickle
                raise task_error(stage, index, error) from error
            return unwrap(outcome, index, stage)

        try:
            return map_in_window(
                tasks,
                window=self.num_workers,
                submit=lambda task: pool.submit(run_task, fn, task),
                wait_any=lambda futures: wait(futures, return_when=FIRST_COMPLETED).done,
                collect=collect,
                on_done=on_done,
                abort=lambda _: self._terminate(),
            )
        finally:
            if broken:  # a broken pool takes no more tasks: the next map starts a fresh one
                self._terminate()

    def _terminate(self) -> None:
        """Stop the pool now: drop queued tasks and kill the workers instead of waiting for them."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
        if terminate is not None:
            terminate()
            return
        # Before 3.14 the pool offers no way to stop running work: kill its processes, then release it.
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)

    def close(self) -> None:
        """Wait for the workers to exit and release them."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
