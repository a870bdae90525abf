"""The executor interface: run one function over independent tasks, results in task order, faults by stage.

KlingAvatar (sec. 2.2) notes that "the pipeline can be easily implemented in a parallel manner since the clips are
generated independently": the cascade's sub-clips, keyframes and seams are each a list of tasks that share nothing.
An executor maps a picklable top-level function over such a list, calls `on_done(index, result)` in the parent as
each task lands (for progress bars, and so that finished artifacts are recorded at once and a rerun resumes from
them), and turns failures into the package's errors:

- a `CodirectorError` raised by a task comes back as itself;
- any other exception becomes `RenderStageError(stage, "task {index} failed: {error!r}")`;
- a worker process that dies becomes a `RenderStageError` that says to rerun (finished work is kept).

On the first failure no further task is started; tasks already running finish and are still reported through
`on_done`, then the error is raised. Tasks carry their own seeds, so every executor gives the same results.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Generic, Literal, TypeVar

from codirector.errors import CodirectorError, ConfigError, RenderStageError

__all__ = ["EXECUTOR_NAMES", "Executor", "ExecutorName", "make_executor"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
H = TypeVar("H")  # a pool's handle on a submitted task
ExecutorName = Literal["local", "process", "ray"]

# name -> (dotted path, what to install when the import fails), imported on first use like the backends in
# codirector.generator.registry; Ray itself is imported only when a RayExecutor is made.
_EXECUTORS: dict[str, tuple[str, str]] = {
    "local": ("codirector.generator.executors.local:LocalExecutor", "pip install codirector"),
    "process": ("codirector.generator.executors.process:ProcessExecutor", "pip install codirector"),
    "ray": ("codirector.generator.executors.ray:RayExecutor", 'pip install "codirector[ray]"'),
}
EXECUTOR_NAMES: tuple[str, ...] = tuple(_EXECUTORS)


class Executor(ABC):
    """Runs `fn` over independent tasks; see the module docstring for the contract every executor keeps.

    Example:
        >>> from codirector.generator.executors import make_executor
        >>> with make_executor("local") as executor:
        ...     executor.map(abs, [-1, 2, -3], stage="demo")
        [1, 2, 3]
    """

    name: ClassVar[ExecutorName]
    num_workers: int

    @abstractmethod
    def map(
        self,
        fn: Callable[[T], R],
        tasks: Sequence[T],
        *,
        stage: str,
        on_done: Callable[[int, R], None] | None = None,
    ) -> list[R]:
        """Run `fn(task)` for every task; return the results in task order.

        Args:
            fn: a picklable top-level function of one task.
            tasks: picklable task descriptions; each carries its own seed where it needs one.
            stage: the cascade stage the tasks belong to, named in errors.
            on_done: called in the calling process as `on_done(index, result)` once per finished task, in the
                order tasks finish.

        Raises:
            CodirectorError: a task raised one; it is re-raised as itself.
            RenderStageError: a task raised another exception, or a worker process died.
            KeyboardInterrupt: the caller was interrupted; every worker is stopped first.
        """

    def close(self) -> None:  # noqa: B027 - executors without resources need no override
        """Release the workers; the executor is not used afterwards."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


class _RemoteTraceback(Exception):
    """The traceback of a task that failed in another process, chained as `__cause__` so it shows when printed."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text}"""'


@dataclass(frozen=True)
class _Outcome(Generic[R]):
    """What a task sends back to the parent: its value, or its failure in a form that always unpickles."""

    value: R | None = None
    error: CodirectorError | None = None  # raised as itself in the parent (CodirectorError pickles with its fields)
    error_repr: str = ""  # any other exception, as repr(error): its class may not exist (or unpickle) there
    trace: str = ""


def run_task(fn: Callable[[T], R], task: T) -> _Outcome[R]:
    """Run one task in a worker and wrap what happened (the function every executor ships to its workers)."""
    try:
        return _Outcome(value=fn(task))
    except CodirectorError as error:
        return _Outcome(error=error, trace=traceback.format_exc())
    except Exception as error:  # noqa: BLE001 - reported to the parent as a RenderStageError, never swallowed
        return _Outcome(error_repr=repr(error), trace=traceback.format_exc())


def unwrap(outcome: _Outcome[R], index: int, stage: str) -> R:
    """The task's value, or raise its failure as the contract says (CodirectorError as itself, else a stage error)."""
    if outcome.error is None and not outcome.error_repr:
        return outcome.value  # type: ignore[return-value]
    logger.debug("stage %r: task %d failed in its worker:\n%s", stage, index, outcome.trace)
    error: CodirectorError = outcome.error or RenderStageError(stage, f"task {index} failed: {outcome.error_repr}")
    raise error from (_RemoteTraceback(outcome.trace) if outcome.trace else None)


def task_error(stage: str, index: int, error: Exception) -> CodirectorError:
    """The error to raise for an exception that escaped a task outside `run_task` (a result that did not pickle)."""
    if isinstance(error, CodirectorError):
        return error
    return RenderStageError(stage, f"task {index} failed: {error!r}")


def worker_died(stage: str, detail: str = "") -> RenderStageError:
    """The error for a worker process that died (crashed, killed for memory): the rerun resumes."""
    return RenderStageError(
        stage,
        f"a worker process died{f' ({detail})' if detail else ''}; "
        "rerun the same command to resume: finished work is kept",
    )


def map_in_window(
    tasks: Sequence[T],
    *,
    window: int,
    submit: Callable[[T], H],
    wait_any: Callable[[list[H]], Sequence[H]],
    collect: Callable[[H, int], R],
    on_done: Callable[[int, R], None] | None,
    abort: Callable[[list[H]], None],
) -> list[R]:
    """Run tasks through a pool with at most `window` of them submitted at a time; results in task order.

    Tasks are handed over only as workers free up, so that after the first failure the rest are simply never
    submitted, while those already running finish and are still reported (a pool's own queue would hold tasks that
    can no longer be cancelled, and Ray's cancel interrupts running ones).

    Args:
        submit: starts one task, returns its handle (a future, an object ref).
        wait_any: blocks until at least one of the handles is done; returns the done ones.
        collect: the task's result from its handle; raises a `CodirectorError` (as the contract maps it) if it
            failed.
        on_done: as in `Executor.map`.
        abort: stops the tasks of these handles without waiting (kills their workers); called when anything but a
            task's failure (KeyboardInterrupt, an on_done callback that raised) leaves tasks running.

    Raises:
        CodirectorError: the first failure, once the running tasks have finished.
    """
    results: list[Any] = [None] * len(tasks)
    failure: CodirectorError | None = None
    in_flight: dict[H, int] = {}
    next_index = 0
    try:
        while True:
            while failure is None and next_index < len(tasks) and len(in_flight) < window:
                in_flight[submit(tasks[next_index])] = next_index
                next_index += 1
            if not in_flight:
                break
            for handle in sorted(wait_any(list(in_flight)), key=in_flight.__getitem__):
                index = in_flight.pop(handle)
                try:
                    results[index] = collect(handle, index)
                except CodirectorError as error:
                    failure = failure or error
                    continue
                if on_done is not None:
                    on_done(index, results[index])
    except BaseException:
        # Ctrl-C, or an on_done callback that raised: stop the running tasks now rather than wait for them.
        if in_flight:
            abort(list(in_flight))
        raise
    if failure is not None:
        raise failure
    return results


def make_executor(name: str, num_workers: int | None = None, **options: Any) -> Executor:
    """An executor by name: "local" (in process), "process" (a spawn process pool) or "ray" (Ray actors, one per
    GPU slot).

    Args:
        name: one of `EXECUTOR_NAMES`.
        num_workers: how many tasks run at once; the executor's default when None (the CPU count for "process",
            the cluster's capacity for "ray"; "local" always runs one).
        **options: passed to the executor's constructor (e.g. `address=` and `num_gpus_per_task=` for "ray").

    Raises:
        ConfigError: `name` is not an executor, or its extra is not installed.

    Example:
        >>> make_executor("local").name
        'local'
    """
    if name not in _EXECUTORS:
        close = difflib.get_close_matches(name, EXECUTOR_NAMES, n=1)
        hint = f"Did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"executor {name!r}", "is not an executor", f"{hint}Use one of: {', '.join(EXECUTOR_NAMES)}.")
    path, hint = _EXECUTORS[name]
    module_name, _, attribute = path.partition(":")
    try:
        executor_class = getattr(importlib.import_module(module_name), attribute)
    except ImportError as error:
        raise ConfigError(f"executor {name!r}", f"cannot be imported ({error})", f"To use it, {hint}.") from None
    return executor_class(num_workers=num_workers, **options)
