"""The Ray executor: a pool of long-lived Ray actors, one per task slot (one per GPU for the DiT backend).

Each actor reserves `num_cpus_per_task` CPUs and `num_gpus_per_task` GPUs for as long as the executor lives (Ray
points the actor's CUDA_VISIBLE_DEVICES at its own GPUs), and runs its tasks one after another in the same process.
A backend cached per process (`codirector.generator.registry.load_backend`, reached through `BackendRef.load`) is
therefore built once per actor and stays resident across tasks and across the stages of a render: with
`num_gpus_per_task=1` each GPU keeps one model and renders sub-clip after sub-clip (KlingAvatar sec. 2.2: the clips
are independent, so N GPUs render them about N times faster). Plain Ray tasks give no such guarantee: Ray may run
the next task in a new worker process, on another GPU, and reload the model there.

Ray is imported when the executor is made, never when this module is imported; it is an extra
(`pip install "codirector[ray]"`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal, TypeVar

from codirector.errors import ConfigError
from codirector.generator.executors.base import (
    Executor,
    _Outcome,
    map_in_window,
    run_task,
    task_error,
    unwrap,
    worker_died,
)

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


class _TaskRunner:
    """The body of each pool actor: runs the tasks it is handed, one at a time, in its one long-lived process."""

    def run(self, fn: Callable[[T], R], task: T) -> _Outcome[R]:
        return run_task(fn, task)


class RayExecutor(Executor):
    """Runs tasks on a pool of `num_workers` Ray actors, each taking the next task as it finishes one.

    Connects to the running Ray instance if there is one (`ray.init` was called, or `address` names a cluster),
    else starts a local one with `num_workers` CPUs (and `num_gpus` GPUs when given). The actors start when the
    executor is made and live until `close()`, which kills them and shuts down only an instance it started. An
    actor that died (crashed, killed for memory, or stopped by Ctrl-C) is replaced by a fresh one at the next `map`.

    Args:
        address: a Ray cluster to connect to ("auto", "ray://host:10001"); None starts a local instance.
        num_workers: actors in the pool, so tasks in flight at once; what the cluster has room for when None, and
            never more than that (the pool is sized when the executor is made: an actor with no room would wait
            forever with its task).
        num_cpus_per_task: CPUs each actor reserves.
        num_gpus_per_task: GPUs each actor reserves (1 for the DiT backend: one model per GPU; 0 for CPU work).
        max_retries: how often Ray restarts an actor that died and reruns on it the task it was running (Ray's
            `max_restarts` and `max_task_retries`); 0 fails at once (a crash in native code usually repeats, and a
            rerun of the command resumes from the finished work anyway). Each restart builds the model again.
        runtime_env: Ray's runtime environment for the workers of an instance this executor starts (e.g.
            `{"env_vars": {"PYTHONPATH": ...}}` so that they import task functions from outside installed packages).
        num_gpus: GPUs a local instance this executor starts declares; None lets Ray count the machine's. Ray's
            GPUs are logical, so a test can declare GPUs that a machine lacks.

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
        num_gpus: int | None = None,
    ) -> None:
        if num_workers is not None and num_workers < 1:
            raise ConfigError("executor 'ray'", f"num_workers={num_workers} is below 1", "Use 1 or more.")
        if max_retries < 0:
            raise ConfigError("executor 'ray'", f"max_retries={max_retries} is below 0", "Use 0 or more.")
        ray = _import_ray()
        self._ray = ray
        self._started_ray = False
        self._actors: list[Any | None] = []  # a slot per actor; None until (re)started
        if not ray.is_initialized():
            local = address is None
            ray.init(
                address=address,
                # a new local instance gets the CPUs (and GPUs) asked for; a cluster has its own
                num_cpus=math.ceil(num_workers * num_cpus_per_task) if local and num_workers else None,
                num_gpus=num_gpus if local else None,
                include_dashboard=False,
                log_to_driver=False,
                ignore_reinit_error=True,
                runtime_env=runtime_env,
            )
            self._started_ray = True
        try:
            capacity = self._capacity(num_cpus_per_task, num_gpus_per_task)
        except ConfigError:
            self.close()  # nobody gets this executor to close: stop the instance it started
            raise
        if num_workers is not None and num_workers > capacity:
            logger.warning(
                "executor 'ray': num_workers=%d, but the cluster has room for %d actors of %g CPUs and %g GPUs; "
                "starting %d",
                num_workers, capacity, num_cpus_per_task, num_gpus_per_task, capacity,
            )  # fmt: skip
        self.num_workers = min(num_workers or capacity, capacity)
        self._actor_class = ray.remote(
            num_cpus=num_cpus_per_task, num_gpus=num_gpus_per_task, max_restarts=max_retries,
            max_task_retries=max_retries,
        )(_TaskRunner)  # fmt: skip
        # Started now, so that their processes come up while the caller prepares the first stage.
        self._actors = [self._actor_class.remote() for _ in range(self.num_workers)]

    def _capacity(self, num_cpus_per_task: float, num_gpus_per_task: float) -> int:
        """How many actors of this size the cluster can hold at once."""
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

    def _actor(self, slot: int) -> Any:
        """The slot's actor, started afresh if the last one died or was killed."""
        actor = self._actors[slot]
        if actor is None:
            actor = self._actors[slot] = self._actor_class.remote()
        return actor

    def _retire(self, slot: int) -> None:
        """Kill the slot's actor (a running task cannot be stopped otherwise); the next map starts a new one."""
        actor, self._actors[slot] = self._actors[slot], None
        if actor is not None:
            self._ray.kill(actor, no_restart=True)

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
            ActorUnschedulableError,
            LocalRayletDiedError,
            NodeDiedError,
            OutOfMemoryError,
            RayActorError,
            RayTaskError,
            WorkerCrashedError,
        )

        died = (
            RayActorError, ActorUnschedulableError, WorkerCrashedError, NodeDiedError, LocalRayletDiedError,
            OutOfMemoryError,
        )  # fmt: skip
        # map_in_window keeps at most one task per actor in flight, so a free slot is there whenever it submits.
        free = list(range(len(self._actors)))
        slots: dict[Any, int] = {}  # object ref of a running task -> its actor's slot

        def submit(task: T) -> Any:
            slot = free.pop(0)
            ref = self._actor(slot).run.remote(fn_ref, task)
            slots[ref] = slot
            return ref

        def collect(ref: Any, index: int) -> Any:
            slot = slots.pop(ref)
            free.append(slot)
            try:
                outcome = ray.get(ref)
            except died as error:
                self._retire(slot)
                raise worker_died(stage, type(error).__name__) from error
            except RayTaskError as error:
                cause = getattr(error, "cause", None)
                raise task_error(stage, index, cause if isinstance(cause, Exception) else error) from error
            except Exception as error:  # e.g. the task's arguments did not unpickle in the actor
                raise task_error(stage, index, error) from error
            return unwrap(outcome, index, stage)

        def abort(refs: list[Any]) -> None:
            for ref in refs:
                self._retire(slots.pop(ref))

        fn_ref = ray.put(fn)  # shipped once, not once per task
        return map_in_window(
            tasks,
            window=self.num_workers,
            submit=submit,
            wait_any=lambda refs: ray.wait(refs, num_returns=1)[0],
            collect=collect,
            on_done=on_done,
            abort=abort,
        )

    def close(self) -> None:
        """Kill the actors (and the models they hold); shut Ray down if this executor started it."""
        if self._ray.is_initialized():  # whoever started Ray may have shut it down, actors and all, already
            for slot in range(len(self._actors)):
                self._retire(slot)
        self._actors = []
        if self._started_ray:
            self._started_ray = False
            self._ray.shutdown()
