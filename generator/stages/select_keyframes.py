"""Stage 2, keyframe selection: near each anchor time, the blueprint frame that makes the best anchor.

Kling-Avatar sec. 2.2: "Around each segmentation point, we then select a high-quality frame that preserves
identity consistency, exhibits significant motion, avoids occlusion, and conveys expressive facial details."
The render plan's anchors are the segmentation points (cut in pauses by the director); candidates are the
blueprint frames within a short window of each, scored by `KeyframeScorer`, and every candidate's scores are
kept in the stage output, so a reader can see why a frame won.

The blueprint is read once, front to back, holding only the frames of the windows still open: memory does not
grow with the length of the video.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from codirector.generator.artifacts import BlueprintVideo, FileRef, KeyframeCandidate, KeyframeChoice, Keyframes
from codirector.generator.context import RenderRun
from codirector.generator.images import write_png
from codirector.generator.keyframe_scores import KeyframeScorer
from codirector.generator.videoio import read_frames

__all__ = ["MAX_WINDOW_S", "candidate_frames", "select_keyframes"]

STAGE = "select_keyframes"
MAX_WINDOW_S = 0.4  # search this far either side of an anchor, at most...
_WINDOW_SHARE = 0.25  # ...and at most this share of the shorter neighbouring segment, so windows never overlap


def candidate_frames(anchors_s: Sequence[float], duration_s: float, fps: int, num_frames: int) -> list[list[int]]:
    """Blueprint frame indices searched around each anchor time."""
    windows = []
    for index, anchor in enumerate(anchors_s):
        gaps = [anchor - anchors_s[index - 1]] if index > 0 else []
        gaps += [anchors_s[index + 1] - anchor] if index + 1 < len(anchors_s) else []
        half = min(MAX_WINDOW_S, _WINDOW_SHARE * min(gaps)) if gaps else MAX_WINDOW_S
        first = max(0, int(np.ceil((anchor - half) * fps - 1e-9)))
        last = min(num_frames - 1, int(np.floor(min(anchor + half, duration_s) * fps + 1e-9)))
        nearest = min(num_frames - 1, max(0, round(anchor * fps)))
        windows.append(list(range(first, last + 1)) or [nearest])
    return windows


def select_keyframes(run: RenderRun, blueprint: BlueprintVideo) -> Keyframes:
    """Pick, save and explain one low-resolution keyframe per anchor of the render plan."""
    anchors = run.plan.anchors_s
    windows = candidate_frames(anchors, run.inputs.duration_s, blueprint.fps, blueprint.num_frames)
    references = [
        image
        for character in run.inputs.conditions(0.0, 1, run.inputs.fps, audio=False)
        if (image := character.reference) is not None
    ]
    scene = run.inputs.scene_image()
    scorer = KeyframeScorer(references or ([scene] if scene is not None else []))
    wanted = sorted({index for window in windows for index in window})
    choices: list[KeyframeChoice] = []
    pending: dict[int, np.ndarray] = {}
    next_anchor = 0
    if run.progress is not None:
        run.progress(STAGE, 0, len(anchors))
    frames = read_frames(run.run_dir.path(blueprint.video.path), wanted)
    for index, frame in zip(wanted, frames, strict=True):
        pending[index] = frame
        while next_anchor < len(windows) and windows[next_anchor][-1] <= index:
            choices.append(_choose(run, blueprint, scorer, next_anchor, windows[next_anchor], pending))
            next_anchor += 1
            if run.progress is not None:
                run.progress(STAGE, next_anchor, len(anchors))
            keep = windows[next_anchor][0] if next_anchor < len(windows) else index + 1
            pending = {i: f for i, f in pending.items() if i >= keep}
    return Keyframes(choices=choices)


def _choose(
    run: RenderRun, blueprint: BlueprintVideo, scorer: KeyframeScorer, anchor_index: int, window: list[int],
    frames: dict[int, np.ndarray],
) -> KeyframeChoice:  # fmt: skip
    candidates = [frames[i] for i in window]
    best, scores = scorer.best(candidates)
    chosen = window[best]
    key = hashlib.sha256(f"{blueprint.video.sha256}:{anchor_index}:{chosen}".encode()).hexdigest()[:20]
    relative = f"{STAGE}/{key}.png"
    item = run.run_dir.existing(relative)
    if item is None:
        write_png(run.run_dir.path(relative), candidates[best], STAGE)
        item = run.run_dir.item(relative, reused=False)
    return KeyframeChoice(
        anchor_index=anchor_index,
        anchor_s=run.plan.anchors_s[anchor_index],
        source_s=chosen / blueprint.fps,
        frame=chosen,
        image=FileRef.of(item),
        candidates=[
            KeyframeCandidate(frame=i, time_s=i / blueprint.fps, scores=s.as_dict())
            for i, s in zip(window, scores, strict=True)
        ],
    )
