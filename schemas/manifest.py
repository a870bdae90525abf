"""What a render leaves behind: every stage's artifacts with hashes, seeds, settings and timings.

The manifest is what makes a run reproducible and resumable: a rerun compares a stage's input hash with the
recorded one and reuses its artifacts when nothing changed.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePosixPath
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, JsonValue, model_validator

from codirector.schemas.base import Contract, Document, Loc, PromptRef, RuleViolation, Sha256, check_unique

__all__ = ["Artifact", "RenderManifest", "StageRecord"]


def _check_relative(path: str) -> str:
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or "\\" in path or not path:
        raise ValueError(f"{path!r} must be a relative POSIX path inside the run directory")
    return path


RunPath = Annotated[str, AfterValidator(_check_relative)]


class Artifact(Contract):
    """A file a stage wrote, relative to the run directory."""

    path: RunPath
    sha256: Sha256
    size_bytes: int = Field(ge=0)
    media_type: str = Field(description="MIME type, e.g. 'video/mp4', 'image/png', 'application/json'.")


class StageRecord(Contract):
    """One cascade stage as it ran (or was reused)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    status: Literal["done", "reused"]
    backend: str
    seed: int | None = None
    input_sha256: Sha256 = Field(description="Hash of the stage's inputs and settings: the resume key.")
    settings: dict[str, JsonValue] = Field(default_factory=dict)
    artifacts: list[Artifact] = Field(default_factory=list)
    started_at: datetime
    finished_at: datetime
    duration_s: float = Field(ge=0)

    @model_validator(mode="after")
    def _check_clock(self) -> StageRecord:
        if self.finished_at < self.started_at:
            raise RuleViolation([(("finished_at",), "a stage cannot finish before it starts")])
        return self


class RenderManifest(Document):
    """The record of one render run."""

    KIND: ClassVar[str] = "render_manifest"
    kind: Literal["render_manifest"] = "render_manifest"
    codirector_version: str
    run_id: str = Field(min_length=1)
    created_at: datetime
    backend: str
    executor: Literal["local", "process", "ray"]
    plan_sha256: Sha256
    backend_report: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="What the backend says about this render: its weights, which conditioning is trained (e.g. "
        "whether the audio drives the lips), how characters are told apart.",
    )
    stages: list[StageRecord] = Field(default_factory=list)
    output: Artifact | None = Field(None, description="The final MP4, once compose has finished.")
    prompt_refs: list[PromptRef] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_stages(self) -> RenderManifest:
        issues: list[tuple[Loc, str]] = check_unique((s.name for s in self.stages), "stages", "stage")
        RuleViolation.raise_if_any(issues)
        return self
