"""The local executor: every task in the calling process, one after another (the default, and the reference)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar, Literal, TypeVar

from codirector.errors import CodirectorError, ConfigError
from codirector.generator.executors.base import Executor, task_error

__all__ = ["LocalExecutor"]

T = TypeVar("T")
R = TypeVar("R")


class LocalExecutor(Executor):
    """Runs tasks in order in this process; nothing is pickled, so it also runs lambdas and closures.

    Args:
        num_workers: must be None or 1 (accepted so that every executor takes the same arguments).

    Example:
        >>> LocalExecutor().map(len, ["ab", "c"], stage="demo")
        [2, 1]
    """

    name: ClassVar[Literal["local"]] = "local"

    def __init__(self, num_workers: int | None = None) -> None:
        if num_workers not in (None, 1):
            raise ConfigError(
                "executor 'local'", f"runs one task at a time, not num_workers={num_workers}",
                'Use executor "process" or "ray" to run tasks in parallel.',
            )  # fmt: skip
        self.num_workers = 1

    def map(
        self,
        fn: Callable[[T], R],
        tasks: Sequence[T],
        *,
        stage: str,
        on_done: Callable[[int, R], None] | None = None,
    ) -> list[R]:
        results: list[R] = []
        for index, task in enumerate(tasks):
            try:
                result = fn(task)
            except CodirectorError:
                raise
            except Exception as error:
                raise task_error(stage, index, error) from error
            results.append(result)
            if on_done is not None:
                on_done(index, result)
        return results
