"""The Python front door: load and validate jobs, plan them, render plans, or do both in one call.

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

from codirector.config import Config, load_config
from codirector.media import JobMedia, probe_job_media
from codirector.schemas import Document, Job, Plan, RenderPlan, Storyline
from codirector.schemas import load_document as _load_document

if TYPE_CHECKING:
    from codirector.agents.providers.base import Provider
    from codirector.generator.cascade import RenderResult
    from codirector.generator.context import ProgressHook

__all__ = ["ValidationReport", "load_document", "load_job", "plan", "plan_and_render", "render", "validate_file"]


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


def _run_dir(config: Config, render_plan: RenderPlan, backend: str, options: Mapping[str, Any]) -> Path:
    """The default run folder: one per (plan, backend, options), so the same render resumes in the same place."""
    import hashlib
    import json

    from codirector.schemas.documents import document_sha256

    key = json.dumps([document_sha256(render_plan), backend, dict(options)], sort_keys=True, default=str)
    return config.home / "renders" / hashlib.sha256(key.encode()).hexdigest()[:16]


def render(
    plan: Plan | RenderPlan | str | Path,
    output: str | Path | None = None,
    *,
    job: Job | str | Path | None = None,
    backend: str = "preview",
    backend_options: Mapping[str, Any] | None = None,
    executor: str = "local",
    num_workers: int | None = None,
    executor_options: Mapping[str, Any] | None = None,
    run_dir: str | Path | None = None,
    config: Config | None = None,
    progress: ProgressHook | None = None,
) -> RenderResult:
    """Render a plan through the spatio-temporal cascade into an MP4 (H.264 video, AAC audio).

    Args:
        plan: a `Plan` (from `plan`), a bare `RenderPlan`, or the path of either file.
        output: where to put the MP4 (written atomically); default: only inside the run folder.
        job: the job the plan was made for; when given, a plan made for another job (or for media that changed
            since) is refused.
        backend: a registered backend: "preview" (CPU, the default), "dit" (GPU), or a third party's.
        backend_options: options for the backend (e.g. the dit backend's weights folder).
        executor: "local" (in process), "process" (a pool of processes) or "ray" (the `ray` extra).
        num_workers: parallel workers for "process" and "ray"; default one per CPU core.
        executor_options: for the executor, e.g. {"num_gpus_per_task": 1} so that Ray puts each sub-clip on a
            GPU of its own (one resident model per GPU worker).
        run_dir: the folder for artifacts and manifest.json; default under `Config.home`/renders, keyed by the
            plan and backend, so that rerunning the same render resumes it.
        config: settings; default from CODIRECTOR_* variables.
        progress: called with (stage, tasks done, tasks in all) as work lands.

    Returns:
        The video path, the plan and the manifest of every stage.

    Example:
        >>> import codirector
        >>> result = codirector.render("plan.json", "out.mp4")  # doctest: +SKIP
        >>> [stage.name for stage in result.manifest.stages][:2]  # doctest: +SKIP
        ['blueprint', 'select_keyframes']
    """
    from codirector.errors import UserError
    from codirector.generator.cascade import render_plan

    config = config or load_config()
    if not isinstance(plan, Plan | RenderPlan):
        plan = _load_document(plan)
        if not isinstance(plan, Plan | RenderPlan):
            raise UserError(str(plan), f"is a {type(plan).KIND}, not a plan", "Give the file `codirector plan` wrote.")
    source = plan if isinstance(plan, Plan) else None
    render_plan_ = plan.render_plan if isinstance(plan, Plan) else plan
    if job is not None:
        from codirector.media import job_sha256

        job = job if isinstance(job, Job) else load_job(job)
        if source is None:
            raise UserError("job", "can only be checked against a whole plan file", "Pass the Plan, not a RenderPlan.")
        if job_sha256(job) != source.job_sha256:
            raise UserError(
                "plan", "was made for another job, or the job's media changed since",
                "Plan this job again (`codirector run JOB -o out.mp4` plans and renders in one go).",
            )  # fmt: skip
    options = dict(backend_options or {})
    folder = Path(run_dir) if run_dir is not None else _run_dir(config, render_plan_, backend, options)
    return render_plan(
        render_plan_, run_dir=folder, backend=backend, backend_options=options, executor=executor,
        num_workers=num_workers, executor_options=dict(executor_options or {}),
        output=Path(output) if output is not None else None, progress=progress,
        source=source,
    )  # fmt: skip


def plan_and_render(
    job: Job | str | Path,
    output: str | Path | None = None,
    *,
    provider: str | Provider | None = None,
    prompts_dir: str | Path | None = None,
    backend: str | None = None,
    backend_options: Mapping[str, Any] | None = None,
    executor: str | None = None,
    num_workers: int | None = None,
    executor_options: Mapping[str, Any] | None = None,
    run_dir: str | Path | None = None,
    config: Config | None = None,
    progress: ProgressHook | None = None,
    plan_output: str | Path | None = None,
    **plan_options: Any,
) -> RenderResult:
    """Plan a job with the director, then render the plan: the whole main job in one call.

    Backend, executor and workers default to the job's `render:` section. `plan_output` also writes the plan
    there before rendering starts. Keyword arguments not listed here go to `plan` (expert_providers,
    provider_options, review, checkpoint, on_update).

    Example:
        >>> import codirector
        >>> result = codirector.plan_and_render("examples/english_portrait/job.yaml", "out.mp4")  # doctest: +SKIP
        >>> result.video  # doctest: +SKIP
        PosixPath('out.mp4')
    """
    job = job if isinstance(job, Job) else load_job(job)
    made = plan(job, provider=provider, prompts_dir=prompts_dir, config=config, **plan_options)
    if plan_output is not None:
        from codirector.schemas import dump_document

        dump_document(made, plan_output)
    options = job.render.backend_options if backend_options is None else backend_options
    return render(
        made, output, backend=backend or job.render.backend, backend_options=options,
        executor=executor or job.render.executor, num_workers=num_workers or job.render.num_workers,
        executor_options=executor_options, run_dir=run_dir, config=config, progress=progress,
    )  # fmt: skip
