"""Executors: same results in task order everywhere, progress per task, faults mapped to the package's errors.

The process and Ray executors run real worker processes (spawned, or Ray's); each is started once per module.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import require_modules

from codirector.errors import ConfigError, RenderStageError
from codirector.generator.executors import (
    EXECUTOR_NAMES,
    Executor,
    LocalExecutor,
    ProcessExecutor,
    RayExecutor,
    make_executor,
)

# --- tasks: top-level functions, so that spawned and Ray workers can import them -------------------------------


def seeded_noise(task: tuple[int, int]) -> np.ndarray:
    """A deterministic numpy result that depends only on the task's own seed."""
    index, seed = task
    rng = np.random.default_rng(seed)
    return np.concatenate([[index], rng.standard_normal(64) @ rng.standard_normal((64, 4))])


def fail_on_two(index: int) -> int:
    if index == 2:
        raise ValueError("frame 2 is black")
    return index


def config_error_on_one(index: int) -> int:
    if index == 1:
        raise ConfigError("frame 1", "has no face", "Pick another keyframe.")
    return index


def fail_first_then_slow(index: int) -> int:
    if index == 0:
        raise ValueError("first task fails")
    time.sleep(0.2)
    return index


def crash_on_three(index: int) -> int:
    if index == 3:
        time.sleep(1.0)  # lets tasks 0-2 finish and be reported before the worker dies
        os._exit(1)
    return index


def process_id(_: int) -> int:
    return os.getpid()


def crash_once(marker: str) -> int:
    """Kill this process the first time (leaving a marker file), return its id when run again."""
    if not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return os.getpid()


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def sleep_unless_zero(index: int) -> int:
    if index:
        time.sleep(60)
    return index


# --- executors ---------------------------------------------------------------------------------------------------


def require_ray() -> None:
    require_modules("ray")


@pytest.fixture(scope="module")
def process_executor() -> Iterator[ProcessExecutor]:
    with ProcessExecutor(num_workers=2) as executor:
        yield executor


@pytest.fixture(scope="module")
def ray_executor() -> Iterator[RayExecutor]:
    # One local Ray instance for the module (starting one takes seconds), with one logical GPU so that GPU tasks
    # schedule on a machine without one, and a CPU to spare for the GPU executor's actor (this executor's two
    # actors hold two CPUs for the module). Its workers do not inherit the sys.path pytest gave this process; they
    # need it to import the task functions here.
    require_ray()
    import ray

    ray.init(
        num_cpus=3, num_gpus=1, include_dashboard=False, log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(sys.path)}},
    )  # fmt: skip
    executor = RayExecutor(num_workers=2)  # joins the running instance
    yield executor
    executor.close()
    ray.shutdown()


@pytest.fixture(params=EXECUTOR_NAMES)
def executor(request: pytest.FixtureRequest) -> Executor:
    if request.param == "local":
        return LocalExecutor()
    return request.getfixturevalue(f"{request.param}_executor")


@pytest.fixture(params=["process", "ray"])
def pool_executor(request: pytest.FixtureRequest) -> Executor:
    return request.getfixturevalue(f"{request.param}_executor")


# --- the contract --------------------------------------------------------------------------------------------------


def test_results_come_back_in_task_order_and_equal_everywhere(executor: Executor) -> None:
    tasks = [(index, 1000 + 7 * index) for index in range(7)]
    expected = [seeded_noise(task) for task in tasks]

    results = executor.map(seeded_noise, tasks, stage="keyframes")

    assert len(results) == len(tasks)
    for got, want in zip(results, expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_on_done_reports_each_task_once_with_its_result(executor: Executor) -> None:
    tasks = [(index, index) for index in range(5)]
    reported: list[tuple[int, np.ndarray]] = []

    results = executor.map(seeded_noise, tasks, stage="subclips", on_done=lambda i, r: reported.append((i, r)))

    assert sorted(index for index, _ in reported) == list(range(5))
    for index, result in reported:
        np.testing.assert_array_equal(result, results[index])


def test_codirector_error_comes_back_as_itself(executor: Executor) -> None:
    with pytest.raises(ConfigError) as caught:
        executor.map(config_error_on_one, [0, 1, 2], stage="keyframes")

    # crossed a process boundary intact: same class, same fields
    assert (caught.value.source, caught.value.problem, caught.value.fix) == (
        "frame 1",
        "has no face",
        "Pick another keyframe.",
    )


def test_other_exception_becomes_render_stage_error(executor: Executor) -> None:
    with pytest.raises(RenderStageError, match=r"task 2 failed: ValueError\('frame 2 is black'\)") as caught:
        executor.map(fail_on_two, [0, 1, 2, 3], stage="transitions")

    assert caught.value.stage == "transitions"


def test_first_failure_stops_queued_tasks(executor: Executor) -> None:
    reported: list[int] = []

    with pytest.raises(RenderStageError, match="task 0 failed"):
        executor.map(fail_first_then_slow, list(range(16)), stage="subclips", on_done=lambda i, _: reported.append(i))

    # Tasks are handed out only as workers free up: besides the failed one, only those already running finish.
    assert len(reported) < executor.num_workers
    assert 0 not in reported


def test_dead_worker_is_a_stage_error_and_finished_tasks_are_reported(pool_executor: Executor) -> None:
    reported: list[int] = []

    with pytest.raises(RenderStageError, match=r"worker process died.*rerun the same command to resume") as caught:
        pool_executor.map(crash_on_three, [0, 1, 2, 3], stage="subclips", on_done=lambda i, _: reported.append(i))

    assert caught.value.stage == "subclips"
    assert sorted(reported) == [0, 1, 2]
    # the executor recovers for the next stage (or the resumed run)
    assert pool_executor.map(abs, [-1, -2], stage="subclips") == [1, 2]


def test_keyboard_interrupt_stops_workers_without_waiting() -> None:
    # A fresh pool: this test kills its workers.
    executor = ProcessExecutor(num_workers=2)

    def interrupt(index: int, result: int) -> None:
        raise KeyboardInterrupt

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        executor.map(sleep_unless_zero, [0, 1, 2, 3], stage="subclips", on_done=interrupt)

    assert time.monotonic() - started < 30  # the other tasks sleep 60 s: nobody waited for them
    assert executor._pool is None  # terminated; a later map makes a new pool
    executor.close()


def test_keyboard_interrupt_cancels_running_ray_tasks(ray_executor: RayExecutor) -> None:
    def interrupt(index: int, result: int) -> None:
        raise KeyboardInterrupt

    actor_pids = set(ray_executor.map(process_id, [0, 1], stage="subclips"))  # one task per actor
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        ray_executor.map(sleep_unless_zero, [0, 1, 2, 3], stage="subclips", on_done=interrupt)

    assert time.monotonic() - started < 30
    # the actor still sleeping in task 1 is killed, not left to hold its GPU for another minute
    while all(process_alive(pid) for pid in actor_pids) and time.monotonic() - started < 30:
        time.sleep(0.1)
    assert not all(process_alive(pid) for pid in actor_pids)
    # the killed actors are replaced: the session goes on
    assert ray_executor.map(abs, [-5, -6], stage="subclips") == [5, 6]


def test_ray_gpu_tasks_keep_their_worker_until_closed(ray_executor: RayExecutor) -> None:
    # Ray retires a GPU task's worker after each call by default; our actor keeps its process, and the model in it.
    with RayExecutor(num_gpus_per_task=1.0) as gpu_executor:
        assert gpu_executor.num_workers == 1  # one logical GPU
        (pid,) = set(gpu_executor.map(process_id, [0, 1, 2, 3], stage="subclips"))

    # closing kills the actor, which frees its GPU (and the model's memory) for whatever runs next
    deadline = time.monotonic() + 20
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not process_alive(pid)


def test_ray_max_retries_restarts_a_dead_actor_and_reruns_its_task(ray_executor: RayExecutor, tmp_path: Path) -> None:
    marker = tmp_path / "crashed-once"

    with RayExecutor(num_workers=1, max_retries=1) as retrying:
        (pid,) = retrying.map(crash_once, [str(marker)], stage="subclips")

    assert marker.exists()  # the first run died...
    assert pid != os.getpid()  # ...and the rerun, in the restarted actor, returned


def test_ray_pool_is_capped_to_what_the_cluster_has_room_for(ray_executor: RayExecutor) -> None:
    # A second GPU actor would wait forever for the one logical GPU, and so would the task handed to it.
    with RayExecutor(num_workers=2, num_gpus_per_task=1.0) as gpu_executor:
        assert gpu_executor.num_workers == 1
        assert gpu_executor.map(abs, [-1, -2, -3], stage="subclips") == [1, 2, 3]


def test_unknown_executor_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'process'"):
        make_executor("procss")


def test_local_executor_runs_one_task_at_a_time() -> None:
    with pytest.raises(ConfigError, match="one task at a time"):
        make_executor("local", num_workers=4)


def test_missing_ray_is_a_config_error_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError

    with pytest.raises(ConfigError, match=r"executor 'ray'.*pip install \"codirector\[ray\]\""):
        make_executor("ray")


def test_importing_executors_imports_no_ray() -> None:
    code = "import sys, codirector.generator.executors; print('ray' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert output.strip() == "False"
