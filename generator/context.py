"""What a running render carries from stage to stage: the plan, its inputs, the backend and where work runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from codirector.generator.backend import Backend
from codirector.generator.inputs import BackendRef, RenderInputs
from codirector.generator.rundir import ItemResult, RunDir
from codirector.schemas.render_plan import RenderPlan, StageSettings

if TYPE_CHECKING:
    from codirector.generator.executors.base import Executor

__all__ = ["ProgressHook", "RenderRun"]

T = TypeVar("T")

# (stage, tasks done, tasks in all); called in the parent process as tasks finish
ProgressHook = Callable[[str, int, int], None]


@dataclass(frozen=True)
class RenderRun:
    """One render in progress. Stages read it; only the cascade changes what is in it."""

    plan: RenderPlan
    inputs: RenderInputs
    settings: StageSettings
    backend: Backend
    backend_ref: BackendRef
    executor: Executor
    run_dir: RunDir
    progress: ProgressHook | None = None

    def map(self, stage: str, fn: Callable[[T], ItemResult], tasks: Sequence[T]) -> list[ItemResult]:
        """Run one task per item through the executor, reporting progress as each lands."""
        done = 0
        if self.progress is not None:
            self.progress(stage, 0, len(tasks))

        def on_done(index: int, result: ItemResult) -> None:
            nonlocal done
            done += 1
            if self.progress is not None:
                self.progress(stage, done, len(tasks))

        return self.executor.map(fn, tasks, stage=stage, on_done=on_done)
