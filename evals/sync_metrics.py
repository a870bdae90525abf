"""Lip sync and the right mouth: how each character's mouth follows their own voice, and not the others'.

`lip_sync` correlates the mouth-opening series with each voice's loudness; `scored_sync` hands each voiced
character's mouth crops and voice to a SyncNet-style scorer (`codirector.evals.sync_scorers`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codirector.evals.face_references import Reference
from codirector.evals.signals import best_lag, clean, frame_envelope, lagged_correlation, smooth
from codirector.evals.sync_scorers import LipSyncScorer

__all__ = ["Voice", "lip_sync", "load_voices", "scored_sync"]

_VOICED_RMS = 1e-3  # a track whose loudest frame is quieter than -60 dBFS is silence
VOICE_RATE = 16_000  # Hz: what SyncNet-style audio nets take, and plenty for a loudness envelope


@dataclass(frozen=True)
class Voice:
    """A voiced character's own track: mono float32 samples at `VOICE_RATE`, and its smoothed RMS per frame."""

    samples: np.ndarray
    envelope: np.ndarray


def load_voices(references: Sequence[Reference], fps: float, num_frames: int) -> dict[int, Voice]:
    """The tracks of the characters who speak during the video, by their number; silent tracks are left out."""
    from codirector.media import load_audio

    voices: dict[int, Voice] = {}
    for number, reference in enumerate(references):
        if reference.character.audio is not None:
            signal = load_audio(Path(reference.character.audio), VOICE_RATE)
            envelope = smooth(frame_envelope(signal.samples, signal.sample_rate, fps, num_frames))
            if float(envelope.max(initial=0.0)) > _VOICED_RMS:
                voices[number] = Voice(signal.samples, envelope)
    return voices


def lip_sync(
    references: Sequence[Reference], voices: dict[int, Voice], mouths: Sequence[list[float]], max_lag: int
) -> tuple[dict[str, float | None], dict[str, Any], dict[str, Any]]:
    """Own-voice lip sync per character, and whose mouth follows whose voice."""
    envelopes = {number: voice.envelope for number, voice in voices.items()}
    lags = list(range(-max_lag, max_lag + 1))
    details: dict[str, Any] = {"lags": lags}
    cross: dict[str, dict[str, float | None]] = {}
    rs, offsets, margins, right = [], [], [], []
    for number, envelope in envelopes.items():
        mouth = np.asarray(mouths[number], dtype=np.float64)
        character = references[number].character.id
        _, own = lagged_correlation(mouth, envelope, max_lag)
        found = best_lag(lags, own)
        details[character] = {
            "corr_by_lag": [clean(v) for v in own],
            "best_lag": None if found is None else found[0],
            "r": None if found is None else clean(found[1]),
        }
        if found is None:
            continue
        rs.append(found[1])
        offsets.append(found[0])
        # the other voices get the same freedom of lag as the own one, so neither side is favoured
        others = {}
        for other, other_envelope in envelopes.items():
            if other != number:
                peak = best_lag(lags, lagged_correlation(mouth, other_envelope, max_lag)[1])
                others[references[other].character.id] = None if peak is None else peak[1]
        cross[character] = {character: clean(found[1]), **{k: clean(v) for k, v in others.items()}}
        rivals = [v for v in others.values() if v is not None]
        if rivals:
            margins.append(found[1] - max(rivals))
            right.append(float(found[1] > max(rivals)))
    several = len(envelopes) >= 2
    metrics = {
        "render.lip_sync_corr": clean(float(np.mean(rs))) if rs else None,
        "render.lip_sync_offset_frames": float(round(float(np.mean(offsets)))) if offsets else None,
        # each character's own |lag|: +2 and -2 frames are both off, where their mean would read 0
        "render.lip_sync_offset_abs_frames": clean(float(np.mean(np.abs(offsets)))) if offsets else None,
        "render.right_mouth": clean(float(np.mean(right))) if several and right else None,
        "render.right_mouth_margin": clean(float(np.mean(margins))) if several and margins else None,
    }
    return metrics, details, cross


def scored_sync(
    references: Sequence[Reference], voices: dict[int, Voice], crops: Sequence[list[np.ndarray | None]],
    scorer: LipSyncScorer, fps: float, max_lag: int,
) -> tuple[dict[str, float | None], dict[str, Any]]:  # fmt: skip
    """Each voiced character's mouth crops scored against their own voice by a SyncNet-style scorer.

    Args:
        references: the characters.
        voices: the voiced ones' tracks, by number (`load_voices`).
        crops: per character, one crop per frame (`codirector.evals.sync_scorers.mouth_crop`), None where the face
            was not seen.
        scorer: the scorer.
        fps: video frames per second.
        max_lag: the largest offset tried each way, frames.

    Returns:
        ``render.sync_*`` metrics, means over the characters the scorer could score (None where it scored none;
        the offset rounded to whole frames, as the lip-sync offset is), and each character's curve.
    """
    size = scorer.crop_size
    details: dict[str, Any] = {}
    offsets, distances, confidences = [], [], []
    for number, voice in voices.items():
        frames = crops[number]
        visible = np.array([crop is not None for crop in frames], dtype=bool)
        score = None
        if visible.any():
            # one character's stack at a time: at 112 pixels a minute of video is about 56 MB of crops
            stack = np.zeros((len(frames), size, size, 3), np.uint8)
            for index, crop in enumerate(frames):
                if crop is not None:
                    stack[index] = crop
            score = scorer.score(stack, visible, voice.samples, VOICE_RATE, fps, max_lag)
        character = references[number].character.id
        details[character] = None if score is None else score.as_json()
        if score is None or score.best_lag is None:
            continue
        offsets.append(score.best_lag)
        distances.append(score.min_distance)
        confidences.append(score.confidence)
    metrics = {
        "render.sync_offset_frames": float(round(float(np.mean(offsets)))) if offsets else None,
        "render.sync_offset_abs_frames": clean(float(np.mean(np.abs(offsets)))) if offsets else None,
        "render.sync_distance": clean(float(np.mean(distances))) if distances else None,
        "render.sync_confidence": clean(float(np.mean(confidences))) if confidences else None,
    }
    return metrics, details
