"""Metrics on a finished MP4: lip sync, identity and colour drift, seams, flicker, and whose mouth moves.

The video is decoded once, streaming, frame by frame. Each frame feeds:

* a face tracker on a grey copy of about 256 pixels. A search looks for each character's reference face itself
  at every size, then runs Haar cascades (frontal, and profiles while faces are missing) for the characters not
  found, and gives each face to at most one character by how much it looks like the character's reference, where
  the character was a moment ago, and the characters' left-to-right order in their references. Searches run every
  2 s, every second while a face is lost, and soon after a cut or a seam; between them each face is followed by
  template matching;
* the mouth extractor on each tracked face (lip sync, right mouth), and, with a SyncNet-style scorer, the mouth
  crop of each voiced character's face;
* the mean colour of each face's upper half (forehead, eyes, cheeks: colour drift with mouths and beards kept out);
* the identity embedder on each face once per curve window (identity drift);
* the frame-to-frame difference of the grey copy (seams) and the second temporal difference of 8x8-block mean
  luminance (flicker).

Curves have one point per window of max(1 s, duration / 60), so an hour-long video still gives 60 points; the
combined curve in the details is the mean over the characters seen in a window, and each character's own curve is
kept beside it. The defaults need no model weights (see `codirector.evals.extractors`). How to read the numbers:

* ``render.lip_sync_corr`` is Pearson r between a character's mouth series (frames where the face was seen) and
  the RMS loudness of their own track per frame (lightly smoothed, [1, 2, 1] / 4), at the best lag within
  ``±max_lag`` frames; ``render.lip_sync_offset_frames`` is that lag, positive when the mouth moves after the sound.
  With several voiced characters both are means over them (the lag rounded to whole frames), and
  ``render.lip_sync_offset_abs_frames`` is the mean of each character's |lag|.
* ``render.sync_*`` (only with a lip-sync scorer, `codirector.evals.sync_scorers`): each voiced character's mouth
  crops and voice go to the scorer, which gives an embedding distance per lag in ``±max_lag``.
  ``render.sync_offset_frames`` is the lag of the smallest distance (same sign as the lip-sync offset; the mean
  over characters, rounded) and ``render.sync_offset_abs_frames`` the mean |lag|; ``render.sync_distance`` is
  that smallest distance (SyncNet's LSE-D, lower is better) and ``render.sync_confidence`` the median distance
  over the lags minus it (LSE-C, higher is better), both means over the characters.
* ``render.right_mouth`` is, with two or more voiced characters, the share of them whose mouth correlates best
  with their own track (every track gets the same ±max_lag); ``render.right_mouth_margin`` the mean of own r minus
  the best other r.
* ``render.identity_similarity`` is a cosine (HOG by default: 0.7-0.85 for the same face in a preview render,
  about 0.1 for another person); ``render.identity_drift_per_min`` the slope of 1 - similarity per minute.
* ``render.color_drift_de`` is CIE76 ΔE (L* 0-100) between the faces' mean colour in the last window they were
  seen and in the reference picture (or, without one, the video's first window); ``render.color_drift_per_min``
  the slope of the ΔE curve per minute. Where no face is seen at all, whole frames are compared instead.
* Drift slopes and means are taken per character and then averaged, so characters coming and going on screen do
  not read as drift.
* ``render.seam_jump`` is the frame difference across a sub-clip boundary over the median difference of the frames
  around it: about 1 for an invisible seam. A camera cut placed on a boundary on purpose reads as a jump too.
* ``render.flicker`` is the mean absolute second temporal difference of 8x8-block mean luminance, in grey levels
  (0-255) per frame², leaving out the frames across seams: steady motion cancels out, brightness that goes up and
  down does not (±d every other frame reads 4d).

This module is the entry point. The parts live beside it: `frame_samples` (decoding and the per-frame samples),
`face_references` and `face_tracks` (the faces), `sync_metrics` (lip sync, right mouth), `drift_metrics` (identity
and colour curves) and `stability_metrics` (seams, flicker); `signals` holds the pure-numpy helpers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codirector.errors import MediaError
from codirector.evals.drift_metrics import color_curves, curve_windows, identity_curves
from codirector.evals.extractors import Extractors
from codirector.evals.face_references import load_reference
from codirector.evals.frame_samples import VIDEO_FIX, open_video, scan
from codirector.evals.signals import clean
from codirector.evals.stability_metrics import mean_flicker, seam_jumps
from codirector.evals.sync_metrics import lip_sync, load_voices, scored_sync

__all__ = ["METRICS_VERSION", "CharacterTrack", "RenderMeasurement", "RenderSubject", "measure_render"]

METRICS_VERSION = 2
"""Bumped whenever a metric's definition changes, so cached measurements of an unchanged video are redone
(2: audio envelopes centred on each frame's time)."""


@dataclass(frozen=True)
class CharacterTrack:
    """One character of the job: their voice and what they look like.

    Attributes:
        id: the character's id in the job.
        audio: the character's own voice track (any format ffmpeg decodes), or None for a silent character.
        reference_image: a picture of the character; for a scene job, the scene image.
        reference_box_xyxy_norm: where the character is in `reference_image` (x0, y0, x1, y1 in 0..1); None means
            the whole image.
    """

    id: str
    audio: Path | None
    reference_image: Path | None
    reference_box_xyxy_norm: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class RenderSubject:
    """A rendered video and what it was rendered from.

    Attributes:
        video: the MP4 (or any video file PyAV decodes).
        characters: the job's characters, in the job's order.
        seam_frames: index of the first frame of each sub-clip after the first.
    """

    video: Path
    characters: tuple[CharacterTrack, ...]
    seam_frames: tuple[int, ...] = ()


@dataclass(frozen=True)
class RenderMeasurement:
    """What `measure_render` found.

    Attributes:
        metrics: ``render.*`` scalars; None where a metric does not apply (no seams, one character, no face seen).
        details: curves and per-character breakdowns, JSON-serialisable (plain lists, dicts, floats).
    """

    metrics: dict[str, float | None]
    details: dict[str, Any]


def measure_render(
    subject: RenderSubject, extractors: Extractors | None = None, *, max_frames: int | None = None,
    max_lag: int = 8,
) -> RenderMeasurement:  # fmt: skip
    """Measure a rendered video: lip sync, identity and colour drift, seams, flicker and the right mouth.

    Args:
        subject: the video, its characters (voices and reference pictures) and its sub-clip boundaries.
        extractors: the mouth and identity extractors, and the lip-sync scorer if any; `Extractors.default()` when
            None.
        max_frames: decode at most this many frames (the metrics then cover only those).
        max_lag: the largest audio-to-mouth offset searched, in frames, each way.

    Returns:
        The ``render.*`` metrics (see the module's docstring) and their curves and breakdowns.

    Raises:
        MediaError: the video, a reference image or an audio track is missing or cannot be decoded.
    """
    extractors = extractors or Extractors.default()
    references = [load_reference(character, extractors.identity) for character in subject.characters]
    stream = open_video(Path(subject.video))
    try:
        fps = stream.fps
        expected = stream.expected_frames or 0
        if max_frames is not None:
            expected = min(expected, max_frames) if expected else max_frames
        window_s = max(1.0, expected / fps / 60.0) if expected else 1.0
        window_frames = max(1, round(window_s * fps))
        series, tracker, num_frames = scan(
            stream, references, extractors, set(subject.seam_frames), window_frames, max_frames
        )
    finally:
        stream.container.close()
    if num_frames == 0:
        raise MediaError(subject.video, "contains no video frames", VIDEO_FIX)

    windows = curve_windows(num_frames, window_frames, fps)
    voices = load_voices(references, fps, num_frames)
    lip_metrics, lip_details, cross = lip_sync(references, voices, series.mouth, max_lag)
    sync_metrics: dict[str, float | None] = {}
    sync_details: dict[str, Any] = {}
    if extractors.sync is not None and series.crops is not None:
        sync_metrics, sync_details = scored_sync(references, voices, series.crops, extractors.sync, fps, max_lag)
    identity = identity_curves(references, series, windows)
    color, color_region = color_curves(references, series, windows)
    seam_rows = seam_jumps(series.diffs, subject.seam_frames)
    metrics: dict[str, float | None] = {
        **{key: value for key, value in lip_metrics.items() if key.startswith("render.lip_sync")},
        **sync_metrics,
        "render.identity_similarity": clean(identity.mean()),
        "render.identity_drift_per_min": clean(identity.slope_per_minute(lambda v: 1.0 - v)),
        "render.color_drift_de": clean(color.last()),
        "render.color_drift_per_min": clean(color.slope_per_minute()),
        "render.seam_jump": max(row["jump"] for row in seam_rows) if seam_rows else None,
        "render.seam_jump_mean": clean(float(np.mean([row["jump"] for row in seam_rows]))) if seam_rows else None,
        "render.flicker": clean(mean_flicker(series.flicker, subject.seam_frames)),
        "render.right_mouth": lip_metrics["render.right_mouth"],
        "render.right_mouth_margin": lip_metrics["render.right_mouth_margin"],
        "render.num_frames_measured": float(num_frames),
        "render.duration_s": round(num_frames / fps, 4),
    }
    details: dict[str, Any] = {
        "render.identity_curve": identity.as_json("similarity"),
        "render.color_curve": {**color.as_json("delta_e"), "region": color_region},
        "render.lip_sync": lip_details,
        **({"render.sync": sync_details} if extractors.sync is not None else {}),
        "render.seams": seam_rows,
        "render.right_mouth": cross if len(cross) >= 2 else {},
        "render.faces": {
            reference.character.id: {
                "visible_share": round(track.seen / num_frames, 4),
                "detections": track.detections,
                "reference_face": reference.embedding is not None,
            }
            for reference, track in zip(references, tracker.tracks, strict=True)
        },
        "render.extractors": {
            "mouth": extractors.mouth.name,
            "identity": extractors.identity.name,
            **({"sync": extractors.sync.name} if extractors.sync is not None else {}),
        },
        "render.fps": fps,
    }
    return RenderMeasurement(metrics, details)
