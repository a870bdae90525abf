"""Stage 6, super-resolution: every sub-clip, with its transition frames spliced in, to the output resolution.

KlingAvatar 2.0 sec. 3.1: "Finally, a high-resolution video diffusion model performs super-resolution on the
low-resolution sub-clips, producing high-fidelity, temporally coherent video segments." The high-resolution
anchors of each clip guide it. Each segment is one task; its result is H.264 at the final quality, so the
compose stage joins them without encoding again.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from codirector.generator.artifacts import Anchors, FileRef, FinalClips, SubClips, Transitions
from codirector.generator.backend import Capability, SuperResolutionRequest
from codirector.generator.context import RenderRun
from codirector.generator.images import read_png
from codirector.generator.inputs import MediaRef, StageTask, TaskModel, derive_seed, nearest_anchor
from codirector.generator.rundir import ItemResult, RunDir
from codirector.generator.videoio import read_frames, write_frames

__all__ = ["SuperResolutionTask", "run_super_resolution_task", "super_resolve"]

STAGE = "super_resolve"


class Splice(TaskModel):
    clip: MediaRef
    start_frame: int  # global index of the clip's first frame
    num_frames: int


class SuperResolutionTask(StageTask):
    STAGE = STAGE
    SUFFIX = ".mp4"

    clip: MediaRef
    start_frame: int  # global index of the clip's first frame
    num_frames: int  # frames kept: the clip without its closing anchor
    splices: tuple[Splice, ...]
    first_anchor: MediaRef
    last_anchor: MediaRef


def spliced_frames(run_dir: RunDir, task: SuperResolutionTask) -> Iterator[np.ndarray]:
    """The sub-clip's frames in order, with transition frames in place of the ones they replace."""
    replacements: dict[int, tuple[Splice, int]] = {}
    for splice in task.splices:
        for offset in range(splice.num_frames):
            replacements[splice.start_frame + offset] = (splice, offset)
    readers: dict[str, Iterator[np.ndarray]] = {}
    for local, frame in enumerate(read_frames(run_dir.path(task.clip.path))):
        if local >= task.num_frames:
            return
        global_index = task.start_frame + local
        if global_index in replacements:
            splice, offset = replacements[global_index]
            reader = readers.setdefault(splice.clip.path, _skip(read_frames(run_dir.path(splice.clip.path)), offset))
            yield next(reader)
        else:
            yield frame


def _skip(frames: Iterator[np.ndarray], count: int) -> Iterator[np.ndarray]:
    for _ in range(count):
        next(frames)
    yield from frames


def run_super_resolution_task(task: SuperResolutionTask) -> ItemResult:
    if (done := task.finished()) is not None:
        return done
    run_dir = task.run_dir
    backend = task.backend.load()
    inputs = task.inputs
    start_s = task.start_frame / inputs.fps
    request = SuperResolutionRequest(
        frames=spliced_frames(run_dir, task), num_frames=task.num_frames,
        first_anchor=read_png(run_dir.path(task.first_anchor.path)),
        last_anchor=read_png(run_dir.path(task.last_anchor.path)), prompt=inputs.direction_at(start_s).prompt,
        negative_prompt=inputs.global_negative_prompt,
        characters=inputs.conditions(start_s, task.num_frames, inputs.fps), start_s=start_s, fps=inputs.fps,
        height=task.height, width=task.width, sampler=task.sampler,
    )  # fmt: skip
    write_frames(
        run_dir.path(task.output()), backend.super_resolve(request), width=task.width, height=task.height,
        fps=inputs.fps, codec="h264", num_frames=task.num_frames, stage=STAGE,
    )  # fmt: skip
    return task.written()


def super_resolve(run: RenderRun, subclips: SubClips, transitions: Transitions, anchors: Anchors) -> FinalClips:
    """Each segment at the output size, its transition frames in, its closing anchor frame out."""
    run.backend.require(Capability.VIDEO_SUPER_RESOLUTION, STAGE)
    high = run.settings.high_res
    fps = run.inputs.fps
    tasks = []
    for index, clip in enumerate(subclips.clips):
        start, end = subclips.start_frames[index], subclips.end_frames[index]
        splices = tuple(
            Splice(
                clip=MediaRef(path=s.clip.path, sha256=s.clip.sha256),
                start_frame=s.start_frame,
                num_frames=s.num_frames,
            )
            for s in transitions.seams
            if s.clip is not None
            and s.start_frame is not None
            and s.start_frame < end
            and s.start_frame + s.num_frames > start
        )
        first = anchors.images[nearest_anchor(run.plan.anchors_s, start / fps)]
        last = anchors.images[nearest_anchor(run.plan.anchors_s, end / fps)]
        tasks.append(
            SuperResolutionTask(
                run_root=str(run.run_dir.root),
                backend=run.backend_ref,
                inputs=run.inputs,
                clip=MediaRef(path=clip.path, sha256=clip.sha256),
                start_frame=start,
                num_frames=end - start,
                splices=splices,
                first_anchor=MediaRef(path=first.path, sha256=first.sha256),
                last_anchor=MediaRef(path=last.path, sha256=last.sha256),
                width=high.width,
                height=high.height,
                sampler=derive_seed(run.settings.super_resolution, STAGE, index),
            )
        )
    items = run.map(STAGE, run_super_resolution_task, tasks)
    return FinalClips(clips=[FileRef.of(item) for item in items], num_frames=sum(t.num_frames for t in tasks))
