"""The Ray executor: tasks as Ray tasks, on this machine or on a cluster (one GPU per task for the DiT backend).

Ray reuses its worker processes across tasks, so a backend cached per process
(`codirector.generator.registry.load_backend`) is loaded once per worker and stays resident: with
`num_gpus_per_task=1` each GPU keeps one model and renders sub-clip after sub-clip (KlingAvatar sec. 2.2: the clips
are independent, so N GPUs render them about N times faster). Ray would otherwise retire a GPU task's worker after
every call (`max_calls=1`, its default for GPU tasks) and reload the model each time; we set `max_calls=0`.

Ray is imported when the executor is made, never when this module is imported; it is an extra
(`pip install "codirector[ray]"`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal, TypeVar

from codirector.errors import ConfigError
from codirector.generator.executors.base import Executor, map_in_window, run_task, task_error, unwrap, worker_died

__all__ = ["RayExecutor"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "executor 'ray'", "needs Ray, which is not installed", 'Install it with: pip install "codirector[ray]".'
        ) from None
    return ray


class RayExecutor(Executor):
    """Runs tasks as Ray tasks, at most `num_workers` at a time.

    Connects to the running Ray instance if there is one (`ray.init` was called, or `address` names a cluster),
    else starts a local one with `num_workers` CPUs; `close()` shuts down only an instance it started.

    Args:
        address: a Ray cluster to connect to ("auto", "ray://host:10001"); None starts a local instance.
        num_workers: tasks in flight at once; what the cluster has room for when None.
        num_cpus_per_task: CPUs Ray reserves for each task.
        num_gpus_per_task: GPUs Ray reserves for each task (1 for the DiT backend; 0 for CPU work).
        max_retries: how often Ray reruns a task whose worker died; 0 fails at once (a crash in native code
            usually repeats, and a rerun of the command resumes from the finished work anyway).
        runtime_env: Ray's runtime environment for the workers of an instance this executor starts (e.g.
            `{"env_vars": {"PYTHONPATH": ...}}` so that they import task functions from outside installed packages).

    Example:
        >>> import math
        >>> with RayExecutor(num_workers=2) as executor:  # doctest: +SKIP
        ...     executor.map(math.factorial, [3, 4], stage="demo")
        [6, 24]
    """

    name: ClassVar[Literal["ray"]] = "ray"

    def __init__(
        self,
        address: str | None = None,
        num_workers: int | None = None,
        *,
        num_cpus_per_task: float = 1.0,
        num_gpus_per_task: float = 0.0,
        max_retries: int = 0,
        runtime_env: dict[str, Any] | None = None,
    ) -> None:
        if num_workers is not None and num_workers < 1:
            raise ConfigError("executor 'ray'", f"num_workers={num_workers} is below 1", "Use 1 or more.")
        ray = _import_ray()
        self._ray = ray
        self._started_ray = False
        if not ray.is_initialized():
            local = address is None
            ray.init(
                address=address,
                # a new local instance gets the CPUs asked for; a cluster has its own
                num_cpus=math.ceil(num_workers * num_cpus_per_task) if local and num_workers else None,
                include_dashboard=False,
                log_to_driver=False,
                ignore_reinit_error=True,
                runtime_env=runtime_env,
            )
            self._started_ray = True
        self.num_workers = num_workers or self._capacity(num_cpus_per_task, num_gpus_per_task)
        # max_calls=0: keep workers (and the models they hold) across tasks; see the module docstring.
        self._remote = ray.remote(
            num_cpus=num_cpus_per_task, num_gpus=num_gpus_per_task, max_calls=0, max_retries=max_retries
        )(run_task)

    def _capacity(self, num_cpus_per_task: float, num_gpus_per_task: float) -> int:
        """How many tasks of this size the cluster can run at once."""
        resources = self._ray.cluster_resources()
        needs = {"CPU": num_cpus_per_task, "GPU": num_gpus_per_task}
        fits = [resources.get(kind, 0.0) / need for kind, need in needs.items() if need > 0]
        capacity = int(min(fits)) if fits else int(resources.get("CPU", 1.0))
        if capacity < 1:
            raise ConfigError(
                "executor 'ray'",
                f"the Ray cluster ({resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs) has no room "
                f"for one task of {num_cpus_per_task:g} CPUs and {num_gpus_per_task:g} GPUs",
                "Lower num_gpus_per_task / num_cpus_per_task, or connect to a cluster with more resources.",
            )
        return capacity

    def map(
        self,
        fn: Callable[[T], R],
        tasks: Sequence[T],
        *,
        stage: str,
        on_done: Callable[[int, R], None] | None = None,
    ) -> list[R]:
        ray = self._ray
        from ray.exceptions import (
            LocalRayletDiedError,
            NodeDiedError,
            OutOfMemoryError,
            RayActorError,
            RayTaskError,
            WorkerCrashedError,
        )

        died = (WorkerCrashedError, RayActorError, NodeDiedError, LocalRayletDiedError, OutOfMemoryError)

        def collect(ref: Any, index: int) -> Any:
            try:
                outcome = ray.get(ref)
            except died as error:
                raise worker_died(stage, type(error).__name__) from error
            except RayTaskError as error:
                cause = getattr(error, "cause", None)
                raise task_error(stage, index, cause if isinstance(cause, Exception) else error) from error
            except Exception as error:  # e.g. the task's arguments did not unpickle in the worker
                raise task_error(stage, index, error) from error
            return unwrap(outcome, index, stage)

        def cancel(refs: list[Any]) -> None:
            for ref in refs:  # force: kill the worker, which a running task cannot otherwise be stopped without
                ray.cancel(ref, force=True)

        fn_ref = ray.put(fn)  # shipped once, not once per task
        return map_in_window(
            tasks,
            window=self.num_workers,
            submit=lambda task: self._remote.remote(fn_ref, task),
            wait_any=lambda refs: ray.wait(refs, num_returns=1)[0],
            collect=collect,
            on_done=on_done,
            abort=cancel,
        )

    def close(self) -> None:
        """Shut Ray down if this executor started it; leave an instance someone else started running."""
        if self._started_ray:
            self._started_ray = False
            self._ray.shutdown()
