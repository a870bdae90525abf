"""The spatio-temporal cascade as a list of stages, and the runner that records and resumes them.

KlingAvatar 2.0 sec. 3.1 and Kling-Avatar sec. 2.2, in order:

    blueprint -> select_keyframes -> upscale_keyframes -> subclips -> transitions -> super_resolve -> compose

Each stage is a typed function from the run and its upstream stages' outputs to its own output. The runner
hashes what a stage depends on (backend, settings, the plan's inputs, upstream outputs, which carry the hashes
of their files); when the manifest holds the same hash and the files are still there, the stage is reused
without running. Inside a stage every task's file is named by its own hash, so an interrupted stage keeps what
it finished. The manifest is rewritten after every stage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from codirector.errors import MediaError, UserError
from codirector.generator.artifacts import (
    Anchors,
    BlueprintVideo,
    ComposedVideo,
    FileRef,
    FinalClips,
    Keyframes,
    StageOutput,
    SubClips,
    Transitions,
)
from codirector.generator.backend import Backend
from codirector.generator.context import ProgressHook, RenderRun
from codirector.generator.executors import make_executor
from codirector.generator.inputs import SAMPLE_RATE, BackendRef, RenderInputs, load_track
from codirector.generator.registry import load_backend
from codirector.generator.rundir import ItemResult, RunDir
from codirector.generator.stages.blueprint import render_blueprint
from codirector.generator.stages.compose import compose
from codirector.generator.stages.select_keyframes import select_keyframes
from codirector.generator.stages.subclips import render_subclips
from codirector.generator.stages.super_resolve import super_resolve
from codirector.generator.stages.transitions import make_transitions
from codirector.generator.stages.upscale_keyframes import upscale_keyframes
from codirector.generator.videoio import atomic_path
from codirector.schemas.documents import document_sha256
from codirector.schemas.manifest import Artifact, RenderManifest, StageRecord
from codirector.schemas.plan import Plan
from codirector.schemas.render_plan import DiffusionSettings, RenderPlan, StageSettings

__all__ = ["CASCADE", "RenderResult", "Stage", "render_plan"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """One step of the cascade: its function, the stages it reads, its output type and its sampler settings."""

    name: str
    run: Callable[..., StageOutput]
    inputs: tuple[str, ...]
    output: type[StageOutput]
    sampler: Callable[[StageSettings], DiffusionSettings | None]


CASCADE: tuple[Stage, ...] = (
    Stage("blueprint", render_blueprint, (), BlueprintVideo, lambda s: s.blueprint),
    Stage("select_keyframes", select_keyframes, ("blueprint",), Keyframes, lambda s: None),
    Stage("upscale_keyframes", upscale_keyframes, ("select_keyframes",), Anchors, lambda s: s.keyframes),
    Stage("subclips", render_subclips, ("upscale_keyframes",), SubClips, lambda s: s.subclips),
    Stage("transitions", make_transitions, ("select_keyframes", "subclips"), Transitions, lambda s: s.transitions),
    Stage(
        "super_resolve",
        super_resolve,
        ("subclips", "transitions", "upscale_keyframes"),
        FinalClips,
        lambda s: s.super_resolution,
    ),
    Stage("compose", compose, ("super_resolve",), ComposedVideo, lambda s: None),
)


@dataclass(frozen=True)
class RenderResult:
    """A finished render: the video, the plan it came from, and the manifest of every stage."""

    video: Path
    plan: Plan | RenderPlan
    manifest: RenderManifest
    run_dir: Path
    outputs: dict[str, StageOutput]


def load_plan_inputs(plan: RenderPlan) -> RenderInputs:
    """The plan's inputs, once every file it names exists and the audio is as long as the plan says (within a
    frame). Each track is decoded once here and kept for the stages that read it in this process.

    Raises:
        MediaError: a file is missing or unreadable.
        UserError: the audio changed since the plan was made (its length differs from the plan's).
    """
    for character in plan.characters:
        for path in (character.reference_image, character.audio):
            if path is not None and not Path(path).is_file():
                raise MediaError(path, "no such file (the plan names it)", "Restore the file, or plan the job again.")
    if plan.scene_image is not None and not Path(plan.scene_image).is_file():
        raise MediaError(plan.scene_image, "no such file (the plan names it)", "Restore the file, or plan again.")
    inputs = RenderInputs.from_plan(plan)
    tracks = [load_track(c.audio.path, c.audio.sha256) for c in inputs.characters if c.audio is not None]
    longest = max(len(track) for track in tracks) / SAMPLE_RATE
    if abs(longest - plan.duration_s) > 1.0 / plan.fps:
        raise UserError(
            "plan",
            f"is {plan.duration_s:.2f} s long but its audio is now {longest:.2f} s: the plan does not match its job",
            "Plan the job again (`codirector run JOB -o out.mp4` plans and renders in one go).",
        )
    return inputs


def _stage_hash(stage: Stage, run: RenderRun, upstream: list[StageOutput]) -> str:
    sampler = stage.sampler(run.settings)
    payload = {
        "stage": stage.name,
        "backend": run.backend_ref.model_dump(mode="json"),
        "settings": run.settings.model_dump(mode="json"),
        "sampler": None if sampler is None else sampler.model_dump(mode="json"),
        "inputs": run.inputs.key(),
        "upstream": [output.model_dump(mode="json", exclude_none=True) for output in upstream],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _reusable(run: RenderRun, stage: Stage, record: StageRecord | None, input_hash: str) -> StageOutput | None:
    if record is None or record.input_sha256 != input_hash:
        return None
    data = run.run_dir.read_json(f"{stage.name}/output.json")
    if data is None:
        return None
    try:
        output = stage.output.model_validate(data)
    except ValueError:
        return None
    if all(run.run_dir.path(file.path).is_file() for file in output.files()):
        return output
    return None


def render_plan(
    plan: RenderPlan, *, run_dir: Path, backend: str = "preview", backend_options: dict[str, Any] | None = None,
    executor: str = "local", num_workers: int | None = None, executor_options: dict[str, Any] | None = None,
    output: Path | None = None,
    progress: ProgressHook | None = None,
    source: Plan | None = None,
) -> RenderResult:  # fmt: skip
    """Run the whole cascade for `plan` in `run_dir`, resuming whatever a previous run finished there.

    Args:
        plan: the render plan (from `codirector plan`, inside its Plan file).
        run_dir: where artifacts and manifest.json go; the same folder resumes.
        backend: a registered backend name ("preview", "dit", or one from an entry point).
        backend_options: keyword options for the backend.
        executor: "local", "process" or "ray": where the parallel tasks run.
        num_workers: parallel workers for "process" and "ray".
        executor_options: for the executor, e.g. {"num_gpus_per_task": 1, "address": "auto"} for Ray.
        output: also copy the finished MP4 here (atomically).
        progress: called with (stage, done, total) as tasks finish.
        source: the director's Plan that holds `plan`, returned in the result.
    """
    inputs = load_plan_inputs(plan)
    instance: Backend = load_backend(backend, **(backend_options or {}))
    settings = instance.stage_settings(plan.stages)
    backend_ref = BackendRef.of(backend, instance)
    folder = RunDir(Path(run_dir))
    previous = folder.load_manifest()
    records = {r.name: r for r in previous.stages} if previous is not None else {}
    manifest = RenderManifest(
        codirector_version=_version(), run_id=Path(run_dir).name, created_at=datetime.now(UTC), backend=backend,
        executor=executor, plan_sha256=document_sha256(plan), prompt_refs=list(plan.prompt_refs),
        backend_report=instance.report(),
    )  # type: ignore[arg-type]  # fmt: skip
    outputs: dict[str, StageOutput] = {}
    with make_executor(executor, num_workers, **(executor_options or {})) as pool:
        run = RenderRun(
            plan=plan, inputs=inputs, settings=settings, backend=instance,
            backend_ref=backend_ref, executor=pool, run_dir=folder, progress=progress,
        )  # fmt: skip
        for stage in CASCADE:
            upstream = [outputs[name] for name in stage.inputs]
            input_hash = _stage_hash(stage, run, upstream)
            started, clock = datetime.now(UTC), time.perf_counter()
            result = _reusable(run, stage, records.get(stage.name), input_hash)
            status = "reused"
            if result is None:
                status = "done"
                logger.info("stage %s: running", stage.name)
                result = stage.run(run, *upstream)
                folder.write_json(f"{stage.name}/output.json", result.model_dump(mode="json"), stage.name)
            elif progress is not None:
                progress(stage.name, 1, 1)
            outputs[stage.name] = result
            sampler = stage.sampler(settings)
            manifest.stages.append(
                StageRecord(
                    name=stage.name,
                    status=status,
                    backend=backend,
                    seed=None if sampler is None else sampler.seed,
                    input_sha256=input_hash,
                    settings=_settings_record(stage, settings),
                    artifacts=[_artifact(f) for f in result.files()],
                    started_at=started,
                    finished_at=datetime.now(UTC),
                    duration_s=time.perf_counter() - clock,
                )
            )
            folder.save_manifest(manifest)
    composed = cast(ComposedVideo, outputs["compose"])
    manifest.output = _artifact(composed.video)
    folder.save_manifest(manifest)
    video = folder.path(composed.video.path)
    if output is not None:
        _copy_atomic(video, Path(output))
        video = Path(output)
    return RenderResult(video=video, plan=source or plan, manifest=manifest, run_dir=folder.root, outputs=outputs)


def _settings_record(stage: Stage, settings: StageSettings) -> dict[str, Any]:
    sampler = stage.sampler(settings)
    record: dict[str, Any] = {
        "low_res": settings.low_res.model_dump(),
        "high_res": settings.high_res.model_dump(),
    }
    if stage.name == "blueprint":
        record["fps"] = settings.blueprint_fps
    if sampler is not None:
        record["sampler"] = sampler.model_dump(mode="json")
    return record


def _artifact(file: FileRef) -> Artifact:
    return ItemResult(file.path, file.sha256, file.size_bytes, reused=False).artifact()


def _copy_atomic(source: Path, target: Path) -> None:
    with atomic_path(target, "compose") as temporary:
        shutil.copyfile(source, temporary)


def _version() -> str:
    from codirector import __version__

    return __version__
