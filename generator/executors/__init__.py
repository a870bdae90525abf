"""Executors: how the cascade runs its independent tasks (sub-clips, keyframes, seams) — in process, in a pool of
local processes, or on a pool of Ray actors (one resident model per GPU) on a machine or a cluster (KlingAvatar
sec. 2.2: "the clips are generated independently"). Pick one by name with `make_executor`; every executor keeps
the contract in `base`.

Importing this package imports neither Ray nor any worker machinery; Ray is imported when a Ray executor is made.
"""

from codirector.generator.executors.base import EXECUTOR_NAMES, Executor, ExecutorName, make_executor
from codirector.generator.executors.local import LocalExecutor
from codirector.generator.executors.process import ProcessExecutor
from codirector.generator.executors.ray import RayExecutor

__all__ = [
    "EXECUTOR_NAMES",
    "Executor",
    "ExecutorName",
    "LocalExecutor",
    "ProcessExecutor",
    "RayExecutor",
    "make_executor",
]
