"""Stage 4, sub-clips: every segment rendered between its first and last anchor, all segments in parallel.

KlingAvatar 2.0 sec. 3.1: "a low-resolution video diffusion model expands these high-resolution anchor
keyframes into audio-synchronized sub-clips via first-last-frame conditioned generation, where the prompts are
augmented with the blueprint keyframes". Each segment gets its local prompt and negative prompt from the
director and its own slice of every character's audio. Kling-Avatar sec. 2.2: the clips are independent, so
"arbitrarily long videos can be generated with nearly the same runtime as producing a single clip".
"""

from __future__ import annotations

from codirector.generator.artifacts import Anchors, FileRef, SubClips
from codirector.generator.backend import Capability, ClipRequest
from codirector.generator.context import RenderRun
from codirector.generator.images import read_png
from codirector.generator.inputs import (
    MediaRef,
    StageTask,
    derive_seed,
    frame_index,
    nearest_anchor,
)
from codirector.generator.rundir import ItemResult
from codirector.generator.videoio import write_frames

__all__ = ["ClipTask", "render_subclips", "run_clip_task"]

STAGE = "subclips"


class ClipTask(StageTask):
    STAGE = STAGE
    SUFFIX = ".mkv"

    segment_index: int
    start_frame: int
    end_frame: int  # inclusive: the clip's last frame is the next segment's first anchor
    first_anchor: MediaRef
    last_anchor: MediaRef


def run_clip_task(task: ClipTask) -> ItemResult:
    if (done := task.finished()) is not None:
        return done
    run_dir = task.run_dir
    backend = task.backend.load()
    inputs = task.inputs
    fps = inputs.fps
    num_frames = task.end_frame - task.start_frame + 1
    start_s = task.start_frame / fps
    direction = inputs.shot_directions()[task.segment_index]
    request = ClipRequest(
        prompt=direction.prompt, negative_prompt=direction.negative_prompt or inputs.global_negative_prompt,
        characters=inputs.conditions(start_s, num_frames, fps), scene=inputs.scene_image(),
        directions=(direction,), start_s=start_s, fps=fps, num_frames=num_frames, height=task.height,
        width=task.width, sampler=task.sampler, first_frame=read_png(run_dir.path(task.first_anchor.path)),
        last_frame=read_png(run_dir.path(task.last_anchor.path)),
    )  # fmt: skip
    write_frames(
        run_dir.path(task.output()), backend.first_last_frame(request), width=task.width, height=task.height,
        fps=fps, num_frames=num_frames, stage=STAGE,
    )  # fmt: skip
    return task.written()


def render_subclips(run: RenderRun, anchors: Anchors) -> SubClips:
    """One first-last-frame clip per render-plan segment, at low resolution and the output frame rate."""
    run.backend.require(Capability.FIRST_LAST_FRAME, STAGE)
    if sum(c.audio is not None for c in run.plan.characters) > 1:
        run.backend.require(Capability.MULTI_CHARACTER, STAGE)
    low, fps = run.settings.low_res, run.inputs.fps
    tasks = []
    for index, segment in enumerate(run.plan.segments):
        first = anchors.images[nearest_anchor(run.plan.anchors_s, segment.start_s)]
        last = anchors.images[nearest_anchor(run.plan.anchors_s, segment.end_s)]
        tasks.append(
            ClipTask(
                run_root=str(run.run_dir.root),
                backend=run.backend_ref,
                inputs=run.inputs,
                segment_index=index,
                start_frame=frame_index(segment.start_s, fps),
                end_frame=frame_index(segment.end_s, fps),
                first_anchor=MediaRef(path=first.path, sha256=first.sha256),
                last_anchor=MediaRef(path=last.path, sha256=last.sha256),
                width=low.width,
                height=low.height,
                sampler=derive_seed(run.settings.subclips, STAGE, index),
            )
        )
    items = run.map(STAGE, run_clip_task, tasks)
    return SubClips(
        clips=[FileRef.of(item) for item in items],
        start_frames=[t.start_frame for t in tasks],
        end_frames=[t.end_frame for t in tasks],
    )
