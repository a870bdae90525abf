"""Stage 3, keyframe upscaling: each chosen keyframe to the output resolution, keeping identity and layout.

KlingAvatar 2.0 sec. 3.1: "representative low-resolution keyframes are then upscaled by a high-resolution DiT,
enriching fine details while preserving identity and scene composition under the same Co-Reasoning Director's
global prompts." One task per anchor, in parallel through the executor.
"""

from __future__ import annotations

from codirector.generator.artifacts import Anchors, FileRef, Keyframes
from codirector.generator.backend import Capability, UpscaleRequest
from codirector.generator.context import RenderRun
from codirector.generator.images import read_png, write_png
from codirector.generator.inputs import MediaRef, StageTask, derive_seed
from codirector.generator.rundir import ItemResult

__all__ = ["UpscaleTask", "run_upscale_task", "upscale_keyframes"]

STAGE = "upscale_keyframes"


class UpscaleTask(StageTask):
    STAGE = STAGE
    SUFFIX = ".png"

    keyframe: MediaRef  # relative to the run folder
    time_s: float


def run_upscale_task(task: UpscaleTask) -> ItemResult:
    if (done := task.finished()) is not None:
        return done
    run_dir = task.run_dir
    backend = task.backend.load()
    inputs = task.inputs
    request = UpscaleRequest(
        image=read_png(run_dir.path(task.keyframe.path)), time_s=task.time_s, prompt=inputs.global_prompt,
        negative_prompt=inputs.global_negative_prompt, characters=inputs.conditions(task.time_s, 1, inputs.fps),
        scene=inputs.scene_image(), direction=inputs.direction_at(task.time_s), height=task.height,
        width=task.width, sampler=task.sampler,
    )  # fmt: skip
    image = backend.upscale_image(request)
    if image.shape != (task.height, task.width, 3):
        from codirector.errors import RenderStageError

        raise RenderStageError(STAGE, f"backend returned {image.shape}, expected {(task.height, task.width, 3)}")
    write_png(run_dir.path(task.output()), image, STAGE)
    return task.written()


def upscale_keyframes(run: RenderRun, keyframes: Keyframes) -> Anchors:
    """Every keyframe at the high resolution: the anchors of the sub-clips."""
    run.backend.require(Capability.IMAGE_UPSCALE, STAGE)
    high = run.settings.high_res
    tasks = [
        UpscaleTask(
            run_root=str(run.run_dir.root),
            backend=run.backend_ref,
            inputs=run.inputs,
            keyframe=MediaRef(path=choice.image.path, sha256=choice.image.sha256),
            time_s=choice.anchor_s,
            width=high.width,
            height=high.height,
            sampler=derive_seed(run.settings.keyframes, STAGE, index),
        )
        for index, choice in enumerate(keyframes.choices)
    ]
    items = run.map(STAGE, run_upscale_task, tasks)
    return Anchors(images=[FileRef.of(item) for item in items], width=high.width, height=high.height)
