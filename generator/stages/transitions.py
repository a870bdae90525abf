"""Stage 5, transitions: audio-aware frames across the seams where an anchor and the speech disagree.

Kling-Avatar sec. 2.2: "To avoid misalignment between anchor frames and the actual speech timing, we employ an
audio-conditioned interpolation strategy to synthesize transition frames. This ensures precise frame
synchronization with the input audio, enabling seamless and temporally coherent transitions across sub-clips."
An anchor is a blueprint frame from `source_s`, placed at the seam time `anchor_s`; its mouth shows the audio
at `source_s`. Where the two differ by a frame or more, or the voice is louder or quieter at the seam than at
the source (the mouth would be wrong), the frames around the seam are made again from the audio.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from codirector.generator.artifacts import FileRef, Keyframes, Seam, SubClips, Transitions
from codirector.generator.backend import Capability, InterpolationRequest
from codirector.generator.context import RenderRun
from codirector.generator.inputs import (
    SAMPLE_RATE,
    MediaRef,
    RenderInputs,
    StageTask,
    derive_seed,
    load_track,
)
from codirector.generator.rundir import ItemResult
from codirector.generator.videoio import read_frames, write_frames

__all__ = ["MOUTH_GAP", "TransitionTask", "loudness_at", "make_transitions", "run_transition_task"]

STAGE = "transitions"
MOUTH_GAP = 0.15  # envelope difference (0-1) at which the anchor's mouth no longer matches the seam's audio
MAX_HALF_WINDOW = 6  # frames either side of the seam, at most (0.24 s at 25 fps)


class TransitionTask(StageTask):
    STAGE = STAGE
    SUFFIX = ".mkv"

    seam_index: int
    start_frame: int  # global index of the first transition frame
    num_frames: int
    before_clip: MediaRef
    before_frame: int  # index inside before_clip of the frame just ahead of the window
    after_clip: MediaRef
    after_frame: int  # index inside after_clip of the frame just past the window
    directions: tuple[int, int]  # the segments on either side


def run_transition_task(task: TransitionTask) -> ItemResult:
    if (done := task.finished()) is not None:
        return done
    run_dir = task.run_dir
    backend = task.backend.load()
    inputs = task.inputs
    fps = inputs.fps
    (before,) = read_frames(run_dir.path(task.before_clip.path), [task.before_frame])
    (after,) = read_frames(run_dir.path(task.after_clip.path), [task.after_frame])
    directions = inputs.shot_directions()
    left, right = (directions[i] for i in task.directions)
    start_s = task.start_frame / fps
    request = InterpolationRequest(
        prompt=right.prompt, negative_prompt=right.negative_prompt or inputs.global_negative_prompt,
        characters=inputs.conditions(start_s, task.num_frames, fps), scene=inputs.scene_image(),
        directions=(left, right), start_s=start_s, fps=fps, num_frames=task.num_frames, height=task.height,
        width=task.width, sampler=task.sampler, before=before, after=after,
    )  # fmt: skip
    write_frames(
        run_dir.path(task.output()), backend.interpolate(request), width=task.width, height=task.height, fps=fps,
        num_frames=task.num_frames, stage=STAGE,
    )  # fmt: skip
    return task.written()


def loudness_at(inputs: RenderInputs, time_s: float, window_s: float = 0.04) -> float:
    """How open a mouth should be at `time_s`: the loudest character's RMS there, 0-1 against that track's
    own loud level (its 95th percentile of 40 ms RMS)."""
    loudest = 0.0
    for character in inputs.characters:
        if character.audio is None:
            continue
        track = load_track(character.audio.path, character.audio.sha256)
        level = _loud_level(character.audio.path, character.audio.sha256)
        middle = round(time_s * SAMPLE_RATE)
        half = round(window_s * SAMPLE_RATE / 2)
        chunk = track[max(0, middle - half) : middle + half]
        rms = float(np.sqrt(np.mean(chunk**2))) if len(chunk) else 0.0
        loudest = max(loudest, min(1.0, rms / level) if level > 0 else 0.0)
    return loudest


@functools.lru_cache(maxsize=8)
def _loud_level(path: str, sha256: str) -> float:
    track = load_track(path, sha256)
    hop = int(0.04 * SAMPLE_RATE)
    frames = track[: len(track) // hop * hop].reshape(-1, hop)
    return float(np.percentile(np.sqrt((frames**2).mean(axis=1)), 95)) if len(frames) else 0.0


def make_transitions(run: RenderRun, keyframes: Keyframes, subclips: SubClips) -> Transitions:
    """Decide, for every seam between two sub-clips, whether transition frames are needed, and make them."""
    fps = run.inputs.fps
    seams: list[Seam] = []
    tasks: list[TransitionTask] = []
    for right in range(1, len(subclips.clips)):
        left = right - 1
        frame = subclips.start_frames[right]
        choice = min(keyframes.choices, key=lambda c: abs(c.anchor_s * fps - frame))
        offset = choice.source_s - choice.anchor_s
        gap = loudness_at(run.inputs, frame / fps) - loudness_at(run.inputs, choice.source_s)
        seam = Seam(anchor_index=choice.anchor_index, frame=frame, offset_s=offset, mouth_gap=gap, needed=False,
                    reason="the anchor matches the speech timing")  # fmt: skip
        if abs(offset) * fps >= 1 or abs(gap) >= MOUTH_GAP:
            # room inside both neighbours for the window plus the frames either side of it
            room = min(frame - subclips.start_frames[left] - 2, subclips.end_frames[right] - frame - 2)
            half = min(MAX_HALF_WINDOW, math.ceil(abs(offset) * fps) + 2, room)
            why = f"keyframe from {offset:+.2f} s away" if abs(offset) * fps >= 1 else f"mouth gap {gap:+.2f}"
            if half < 1:
                seam = seam.model_copy(update={"reason": f"{why}, but the segments are too short for a transition"})
            else:
                start = frame - half
                seam = seam.model_copy(
                    update={"needed": True, "reason": why, "start_frame": start, "num_frames": 2 * half + 1}
                )
                before, after = subclips.clips[left], subclips.clips[right]
                tasks.append(
                    TransitionTask(
                        run_root=str(run.run_dir.root),
                        backend=run.backend_ref,
                        inputs=run.inputs,
                        seam_index=right - 1,
                        start_frame=start,
                        num_frames=2 * half + 1,
                        before_clip=MediaRef(path=before.path, sha256=before.sha256),
                        before_frame=start - 1 - subclips.start_frames[left],
                        after_clip=MediaRef(path=after.path, sha256=after.sha256),
                        after_frame=frame + half + 1 - subclips.start_frames[right],
                        directions=(left, right),
                        width=run.settings.low_res.width,
                        height=run.settings.low_res.height,
                        sampler=derive_seed(run.settings.transitions, STAGE, right - 1),
                    )
                )
        seams.append(seam)
    if tasks:
        run.backend.require(Capability.AUDIO_INTERPOLATION, STAGE)
    items = iter(run.map(STAGE, run_transition_task, tasks))
    seams = [s.model_copy(update={"clip": FileRef.of(next(items))}) if s.needed else s for s in seams]
    return Transitions(seams=seams)
