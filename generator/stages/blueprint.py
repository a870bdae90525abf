"""Stage 1, the blueprint: the whole video at low resolution from the global storyline and the full audio.

KlingAvatar 2.0 sec. 3.1: "a low-resolution diffusion model generates a blueprint video that captures global
dynamics, content, and layout". It runs as one task through the executor, so a GPU worker renders it.
"""

from __future__ import annotations

from codirector.generator.artifacts import BlueprintVideo, FileRef
from codirector.generator.backend import Capability, VideoRequest
from codirector.generator.context import RenderRun
from codirector.generator.inputs import StageTask, derive_seed
from codirector.generator.rundir import ItemResult
from codirector.generator.videoio import write_frames

__all__ = ["BlueprintTask", "render_blueprint", "run_blueprint_task"]

STAGE = "blueprint"


class BlueprintTask(StageTask):
    STAGE = STAGE
    SUFFIX = ".mkv"

    fps: int
    num_frames: int


def run_blueprint_task(task: BlueprintTask) -> ItemResult:
    """Render the blueprint (in whichever worker runs it), or find it already rendered."""
    if (done := task.finished()) is not None:
        return done
    run_dir = task.run_dir
    backend = task.backend.load()
    inputs = task.inputs
    request = VideoRequest(
        prompt=inputs.global_prompt, negative_prompt=inputs.global_negative_prompt,
        characters=inputs.conditions(0.0, task.num_frames, task.fps), scene=inputs.scene_image(),
        directions=inputs.shot_directions(), fps=task.fps, num_frames=task.num_frames, height=task.height,
        width=task.width, sampler=task.sampler,
    )  # fmt: skip
    write_frames(
        run_dir.path(task.output()), backend.text_to_video(request), width=task.width, height=task.height,
        fps=task.fps, num_frames=task.num_frames, stage=STAGE,
    )  # fmt: skip
    return task.written()


def render_blueprint(run: RenderRun) -> BlueprintVideo:
    """The low-resolution blueprint of the whole timeline at the blueprint frame rate."""
    run.backend.require(Capability.TEXT_TO_VIDEO, STAGE)
    settings = run.settings
    fps = settings.blueprint_fps
    # one frame every 1/fps from 0 through the end, so the last anchor has frames near it
    num_frames = int(run.inputs.duration_s * fps) + 1
    task = BlueprintTask(
        run_root=str(run.run_dir.root), backend=run.backend_ref, inputs=run.inputs, fps=fps, num_frames=num_frames,
        width=settings.low_res.width, height=settings.low_res.height, sampler=derive_seed(settings.blueprint, STAGE),
    )  # fmt: skip
    (item,) = run.map(STAGE, run_blueprint_task, [task])
    return BlueprintVideo(video=FileRef.of(item), fps=fps, width=task.width, height=task.height, num_frames=num_frames)
