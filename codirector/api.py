"""The Python front door: load and validate jobs and codirector files.

Example:
    >>> import codirector
    >>> report = codirector.validate_file("examples/english_portrait/job.yaml")  # doctest: +SKIP
    >>> report.summary  # doctest: +SKIP
    'job: 1 character, 12.40 s of audio, 480x480 at 25 fps'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from codirector.config import Config
from codirector.media import JobMedia, probe_job_media
from codirector.schemas import Document, Job, Plan, RenderPlan, Storyline
from codirector.schemas import load_document as _load_document

if TYPE_CHECKING:
    from codirector.agents.providers.base import Provider

__all__ = ["ValidationReport", "load_document", "load_job", "plan", "validate_file"]


def load_document(path: str | Path, kind: str | None = None) -> Document:
    """Read and validate any codirector file (job, storyline, render plan, manifest, report).

    Args:
        path: a YAML or JSON file.
        kind: force a kind instead of recognising it from the ``kind`` field or the file name.

    Raises:
        InputFileError: the file is missing or not YAML/JSON.
        SchemaValidationError: it breaks its schema; `.issues` lists each violation with its JSON path.
    """
    return _load_document(path, kind)


def load_job(path: str | Path) -> Job:
    """Read a job file; its relative paths resolve against the file's folder."""
    return cast(Job, _load_document(path, "job"))


@dataclass(frozen=True)
class ValidationReport:
    """A file that passed validation, what it is, and (for jobs) what its media turned out to be."""

    path: Path
    document: Document
    media: JobMedia | None

    @property
    def kind(self) -> str:
        return type(self.document).KIND

    @property
    def summary(self) -> str:
        document = self.document
        if isinstance(document, Job):
            count = len(document.characters)
            text = f"job: {count} character{'s' if count != 1 else ''}"
            if self.media is not None:
                first_image = next(iter(self.media.images.values()), None)
                width, height = document.output.frame_size(first_image.aspect if first_image else None)
                text += f", {self.media.duration_s:.2f} s of audio, {width}x{height} at {document.output.fps} fps"
            return text
        if isinstance(document, Storyline):
            return f"storyline: {len(document.shots)} shots over {document.duration_s:.2f} s"
        if isinstance(document, RenderPlan):
            return f"render_plan: {len(document.segments)} segments over {document.duration_s:.2f} s"
        return self.kind


def validate_file(path: str | Path, kind: str | None = None, check_media: bool = True) -> ValidationReport:
    """Validate a file with its JSON Schema and its pydantic model; for a job, also open every media file.

    Raises:
        InputFileError, SchemaValidationError, JobMediaError: each names the file and what to fix.
    """
    path = Path(path)
    document = _load_document(path, kind)
    media = probe_job_media(document, source=path) if check_media and isinstance(document, Job) else None
    return ValidationReport(path, document, media)


def plan(
    job: Job | str | Path,
    *,
    provider: str | Provider | None = None,
    expert_providers: Mapping[str, str | Provider] | None = None,
    provider_options: Mapping[str, Any] | None = None,
    prompts_dir: str | Path | None = None,
    review: Callable[[Storyline], Storyline | None] | None = None,
    checkpoint: bool = True,
    config: Config | None = None,
    on_update: Callable[[str, Mapping[str, Any]], None] | None = None,
) -> Plan:
    """Plan a job with the co-reasoning director: expert reports, co-reasoning, storyline, render plan.

    Args:
        job: a `Job` or the path of a job file.
        provider: the LLM provider of every expert: "offline" (default: no model, no network),
            "openai:MODEL" (OpenAI or any OpenAI-compatible server; pass provider_options={"base_url": ...}),
            "transformers:PATH" (a local model folder or .gguf file), or a `ChatModel` object.
        expert_providers: per-expert overrides by "audio", "visual", "text" or "negative".
        provider_options: options for the providers named by string (base_url, api_key, timeout_s, ...).
        prompts_dir: a folder of prompt files that override the packaged ones.
        review: called with the storyline before it is final; return an edited one, or None to accept.
        checkpoint: resume an interrupted plan and reuse a finished one (SQLite under `Config.home`).
        config: settings; default from CODIRECTOR_* variables.
        on_update: progress hook, called after every director node with its name and update.

    Example:
        >>> import codirector
        >>> result = codirector.plan("examples/english_portrait/job.yaml")  # doctest: +SKIP
        >>> [shot.camera.movement.value for shot in result.storyline.shots]  # doctest: +SKIP
        ['static', 'push_in']
    """
    from codirector.agents.director import direct  # the director pulls in LangGraph; load it on first use

    if not isinstance(job, Job):
        job = load_job(job)
    return direct(
        job,
        provider=provider,
        expert_providers=expert_providers,
        provider_options=provider_options,
        config=config,
        prompts_dir=Path(prompts_dir) if prompts_dir is not None else None,
        review=review,
        checkpoint=checkpoint,
        on_update=on_update,
    )
