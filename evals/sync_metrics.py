"""Lip sync and the right mouth: how each character's mouth follows their own voice, and not the others'."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from codirector.evals.face_references import Reference
from codirector.evals.signals import best_lag, clean, frame_envelope, lagged_correlation, smooth

__all__ = ["lip_sync"]

_VOICED_RMS = 1e-3  # a track whose loudest frame is quieter than -60 dBFS is silence


def _envelope(path: Path, fps: float, num_frames: int) -> np.ndarray:
    from codirector.media import load_audio

    signal = load_audio(path, 16_000)
    return smooth(frame_envelope(signal.samples, signal.sample_rate, fps, num_frames))


def lip_sync(
    references: Sequence[Reference], mouths: Sequence[list[float]], fps: float, num_frames: int, max_lag: int
) -> tuple[dict[str, float | None], dict[str, Any], dict[str, Any]]:
    """Own-voice lip sync per character, and whose mouth follows whose voice."""
    envelopes: dict[int, np.ndarray] = {}
    for number, reference in enumerate(references):
        if reference.character.audio is not None:
            envelope = _envelope(Path(reference.character.audio), fps, num_frames)
            if float(envelope.max(initial=0.0)) > _VOICED_RMS:
                envelopes[number] = envelope
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
