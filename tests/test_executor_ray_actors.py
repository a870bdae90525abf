"""The Ray executor's actor pool: one long-lived actor per (logical) GPU, each keeping its model across tasks.

The executor starts its own local Ray instance here, declaring two GPUs that this machine need not have (Ray's GPUs
are logical); the model is a fake that counts how often each process builds it, loaded the way render tasks load
theirs (`BackendRef.load`, cached per process).
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import NamedTuple

import pytest
from helpers import require_modules

from codirector.errors import RenderStageError
from codirector.generator.backend import Backend
from codirector.generator.executors import RayExecutor
from codirector.generator.inputs import BackendRef

# --- a fake model and tasks: top-level, so that Ray's workers can import them -----------------------------------


class FakeGpuModel(Backend):
    """Fake: a backend whose only behaviour is counting how many times this process built it."""

    name = "fake-gpu-model"
    num_builds = 0

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        type(self).num_builds += 1


FAKE_MODEL = BackendRef(name=FakeGpuModel.name, path=f"{__name__}:FakeGpuModel", version="1")


class Rendered(NamedTuple):
    index: int
    pid: int
    num_builds: int  # how often the fake model was built in this process so far
    gpu_ids: tuple[str, ...]


def render_on_gpu(index: int) -> Rendered:
    """A stand-in for a sub-clip: load the (cached) model, take a moment, say where it ran."""
    import ray

    FAKE_MODEL.load()
    time.sleep(0.2)  # long enough that both actors get work while the other is busy
    return Rendered(index, os.getpid(), FakeGpuModel.num_builds, tuple(str(i) for i in ray.get_gpu_ids()))


def fail_on_two(index: int) -> int:
    if index == 2:
        raise ValueError("frame 2 is black")
    return render_on_gpu(index).pid


def crash_on_three(index: int) -> int:
    if index == 3:
        time.sleep(1.0)  # lets tasks 0-2 finish and be reported before the actor dies
        os._exit(1)
    return index


@pytest.fixture(scope="module")
def gpu_executor() -> Iterator[RayExecutor]:
    require_modules("ray")
    import ray

    if ray.is_initialized():  # another module's instance: this module tests an executor that starts its own
        ray.shutdown()
    # Ray's workers do not inherit the sys.path pytest gave this process; they need it to import this module.
    executor = RayExecutor(
        num_workers=2, num_gpus_per_task=1.0, num_gpus=2,
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(sys.path)}},
    )  # fmt: skip
    yield executor
    executor.close()
    assert not ray.is_initialized()  # it started Ray, so it shut it down


def pids(results: list[Rendered]) -> set[int]:
    return {result.pid for result in results}


# --- the pool --------------------------------------------------------------------------------------------------


def test_one_actor_per_gpu_builds_its_model_once_across_tasks_and_stages(gpu_executor: RayExecutor) -> None:
    keyframes = gpu_executor.map(render_on_gpu, list(range(6)), stage="keyframes")
    subclips = gpu_executor.map(render_on_gpu, list(range(6)), stage="subclips")

    assert [r.index for r in keyframes] == [r.index for r in subclips] == list(range(6))  # in task order
    # two actor processes, the same two for both stages, each on its own GPU
    assert len(pids(keyframes)) == 2
    assert pids(subclips) == pids(keyframes)
    gpus = {r.pid: r.gpu_ids for r in keyframes + subclips}
    assert len({r.gpu_ids for r in keyframes + subclips}) == 2
    assert all(len(ids) == 1 for ids in gpus.values())
    # each actor took several tasks as it freed up, and built its model once for all of them
    assert min(Counter(r.pid for r in subclips).values()) >= 2
    assert {r.num_builds for r in keyframes + subclips} == {1}
    assert FakeGpuModel.num_builds == 0  # nothing ran in the test process


def test_task_error_leaves_the_actors_and_their_models_in_place(gpu_executor: RayExecutor) -> None:
    before = gpu_executor.map(render_on_gpu, [0, 1], stage="subclips")

    with pytest.raises(RenderStageError, match=r"task 2 failed: ValueError\('frame 2 is black'\)") as caught:
        gpu_executor.map(fail_on_two, [0, 1, 2, 3], stage="subclips")
    after = gpu_executor.map(render_on_gpu, [0, 1, 2, 3], stage="subclips")

    assert caught.value.stage == "subclips"
    assert pids(after) == pids(before)
    assert {r.num_builds for r in after} == {1}


def test_dead_actor_is_a_worker_died_error_and_is_replaced(gpu_executor: RayExecutor) -> None:
    before = gpu_executor.map(render_on_gpu, [0, 1], stage="subclips")
    reported: list[int] = []

    with pytest.raises(RenderStageError, match=r"worker process died.*rerun the same command to resume") as caught:
        gpu_executor.map(crash_on_three, [0, 1, 2, 3], stage="subclips", on_done=lambda i, _: reported.append(i))
    after = gpu_executor.map(render_on_gpu, [0, 1, 2, 3], stage="subclips")

    assert caught.value.stage == "subclips"
    assert sorted(reported) == [0, 1, 2]
    # the dead actor's slot has a new process, which built its own model; the other kept its process and model
    assert len(pids(after)) == 2
    assert len(pids(after) & pids(before)) == 1
    assert {r.num_builds for r in after} == {1}
    assert len({r.gpu_ids for r in after}) == 2
