"""Errors, split by who is at fault.

`UserError` and its subclasses mean the input is wrong: a missing file, an unreadable image, a job that breaks
the spec. They carry the input they are about and what to do, and the CLI turns them into one line and exit
code 2. Everything else under `CodirectorError` is a runtime fault of a part of the system (an LLM that keeps
returning invalid plans, a backend that cannot do what a stage needs) and exits 1.

This module imports nothing from the rest of the package, so every room (agents, generator, evals) can raise
these without import cycles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "AgentOutputError",
    "BackendCapabilityError",
    "BackendNotFoundError",
    "CodirectorError",
    "ConfigError",
    "InputFileError",
    "MediaError",
    "ProviderError",
    "ProviderNotFoundError",
    "RenderStageError",
    "SchemaValidationError",
    "UserError",
    "ValidationIssue",
]


def _rebuild(kind: type[CodirectorError], state: dict[str, object], args: tuple[object, ...]) -> CodirectorError:
    error = kind.__new__(kind)
    error.__dict__.update(state)
    error.args = args
    return error


class CodirectorError(Exception):
    """Base class of every error codirector raises on purpose.

    Errors pickle with their fields (source, problem, fix, issues...), so an error raised in a worker process
    or on a Ray node reaches the parent as itself.
    """

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), dict(self.__dict__), self.args))


class UserError(CodirectorError):
    """The input is wrong; the user can fix it.

    Args:
        source: what the error is about, as the user named it (a path, an option, a field).
        problem: what is wrong, without a trailing period.
        fix: what to do about it, as an imperative sentence.
    """

    exit_code = 2

    def __init__(self, source: str | Path, problem: str, fix: str) -> None:
        self.source = str(source)
        self.problem = problem
        self.fix = fix
        super().__init__(f"{self.source}: {problem}. {fix}")


class InputFileError(UserError):
    """A file named by the user is missing or is not in a readable format (YAML, JSON)."""


class MediaError(UserError):
    """An image or audio file is missing, empty or cannot be decoded."""


class ConfigError(UserError):
    """A configuration value (argument or CODIRECTOR_* variable) is invalid."""


class ProviderNotFoundError(UserError):
    """A "provider:model" reference names no known provider, or a model that is not where it says."""


@dataclass(frozen=True)
class ValidationIssue:
    """One schema violation, located by a JSON path such as ``$.shots[2].start_s``."""

    json_path: str
    message: str

    def __str__(self) -> str:
        return f"{self.json_path}: {self.message}"


class SchemaValidationError(UserError):
    """A document (job, storyline, plan...) breaks its schema; `issues` lists every violation found."""

    def __init__(self, source: str | Path, kind: str, issues: Sequence[ValidationIssue]) -> None:
        self.kind = kind
        self.issues = list(issues)
        first = self.issues[0] if self.issues else ValidationIssue("$", "invalid")
        more = f" (and {len(self.issues) - 1} more)" if len(self.issues) > 1 else ""
        super().__init__(
            source,
            f"not a valid {kind}: {first}{more}",
            f"Fix the file to match the {kind} schema (`codirector validate {source}` lists every error).",
        )


class AgentOutputError(CodirectorError):
    """An LLM expert kept returning output that does not validate, after the bounded repair loop.

    The raw text of the last attempt travels with the error so that it can be inspected or logged.
    """

    def __init__(self, agent: str, message: str, raw_output: str) -> None:
        self.agent = agent
        self.raw_output = raw_output
        super().__init__(f"{agent}: {message}")


class ProviderError(CodirectorError):
    """An LLM provider failed: the server is unreachable, timed out after its retries, or refused the request.

    Args:
        provider: the "provider:model" name.
        message: what happened, including the server's own words where there are some.
    """

    def __init__(self, provider: str, message: str) -> None:
        self.provider = provider
        super().__init__(f"{provider}: {message}")


class BackendNotFoundError(UserError):
    """No render backend is registered under the requested name, or its extra is not installed."""


class BackendCapabilityError(CodirectorError):
    """A backend lacks a capability that a cascade stage needs; names the backend, the capability and the stage."""

    def __init__(self, backend: str, capability: str, stage: str) -> None:
        self.backend = backend
        self.capability = capability
        self.stage = stage
        super().__init__(
            f"backend {backend!r} cannot do {capability!r}, which stage {stage!r} needs; "
            "pick a backend that declares it (`codirector render --help` lists the backends)"
        )


class RenderStageError(CodirectorError):
    """A cascade stage failed while rendering; names the stage."""

    def __init__(self, stage: str, message: str) -> None:
        self.stage = stage
        super().__init__(f"stage {stage!r} failed: {message}")
