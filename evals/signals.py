"""Pure-numpy helpers for the render metrics: audio loudness per video frame, lagged correlation, trend slopes.

`clean` rounds the numbers the metrics report.

Nothing here decodes media or knows about faces, so each function can be checked on arrays whose answer is known.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "MIN_PAIRED_FRAMES",
    "best_lag",
    "clean",
    "frame_envelope",
    "lagged_correlation",
    "pearson",
    "slope_per_minute",
    "smooth",
]

# Fewer paired samples than this and a correlation says more about chance than about the signals (2 s at 25 fps
# is 50; a lip-sync verdict on under half a second of speech would be noise).
MIN_PAIRED_FRAMES = 12


def frame_envelope(samples: np.ndarray, sample_rate: int, fps: float, num_frames: int) -> np.ndarray:
    """RMS loudness of mono audio around each video frame's time.

    Frame i is the picture at ``i / fps`` s, so it pairs with the frame-long span of audio centred there: samples
    ``round((i - 0.5) * rate / fps)`` up to ``round((i + 0.5) * rate / fps)`` (clipped at 0), rounded per frame so
    rates that do not divide (44.1 kHz at 24000/1001 fps) do not drift. Centring matters: a span that starts at
    ``i / fps`` is half a frame late and biases every measured lag by +0.5 frame. Audio shorter than the video
    reads as silence at the end.

    Args:
        samples: mono float samples.
        sample_rate: samples per second.
        fps: video frames per second.
        num_frames: how many frames to cover.

    Returns:
        float64 array of shape (num_frames,).
    """
    samples = np.asarray(samples, dtype=np.float64).reshape(-1)
    bounds = np.maximum(np.round((np.arange(num_frames + 1) - 0.5) * sample_rate / fps), 0).astype(np.int64)
    needed = int(bounds[-1]) if num_frames else 0
    if len(samples) < needed:
        samples = np.pad(samples, (0, needed - len(samples)))
    squares = np.concatenate([[0.0], np.cumsum(samples[:needed] ** 2)])
    counts = np.maximum(np.diff(bounds), 1)
    return np.sqrt(np.maximum(np.diff(squares[bounds]), 0.0) / counts)


def smooth(values: np.ndarray, taps: Sequence[float] = (0.25, 0.5, 0.25)) -> np.ndarray:
    """Convolve with a symmetric kernel (normalised), repeating the edge values; symmetric, so it shifts nothing."""
    kernel = np.asarray(taps, dtype=np.float64)
    kernel = kernel / kernel.sum()
    half = len(kernel) // 2
    padded = np.pad(np.asarray(values, dtype=np.float64), half, mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson correlation of the pairs where both are finite; None if too few pairs or either is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < MIN_PAIRED_FRAMES:
        return None
    x, y = x[keep], y[keep]
    # constant up to rounding, relative to the values' own scale: r of a flat series is undefined, not 0
    if any(np.ptp(v) <= 1e-9 * max(1e-12, float(np.abs(v).max())) for v in (x, y)):
        return None
    dx, dy = x - x.mean(), y - y.mean()
    return float((dx * dy).sum() / np.sqrt((dx * dx).sum() * (dy * dy).sum()))


def lagged_correlation(follower: np.ndarray, leader: np.ndarray, max_lag: int) -> tuple[list[int], list[float | None]]:
    """Pearson r of ``follower[t]`` against ``leader[t - k]`` for every lag k in ``-max_lag..max_lag``.

    A positive best lag means the follower repeats the leader k samples later (a mouth that opens k frames after
    the sound). NaN in either series marks a sample that does not count (a frame where the face was not seen).

    Returns:
        The lags and, for each, r or None where too few samples overlap.
    """
    follower = np.asarray(follower, dtype=np.float64)
    leader = np.asarray(leader, dtype=np.float64)
    length = min(len(follower), len(leader))
    lags = list(range(-max_lag, max_lag + 1))
    values: list[float | None] = []
    for lag in lags:
        if lag >= 0:
            pair = (follower[lag:length], leader[: max(0, length - lag)])
        else:
            pair = (follower[: max(0, length + lag)], leader[-lag:length])
        values.append(pearson(*pair))
    return lags, values


def best_lag(lags: Sequence[int], values: Sequence[float | None]) -> tuple[int, float] | None:
    """The lag of the highest r (the smallest |lag| among equals) and that r; None if no lag has one."""
    scored = [(value, -abs(lag), lag) for lag, value in zip(lags, values, strict=True) if value is not None]
    if not scored:
        return None
    value, _, lag = max(scored)
    return lag, value


def slope_per_minute(t_s: Sequence[float], values: Sequence[float]) -> float | None:
    """Least-squares slope of `values` against time, in units per minute; None with under two distinct times."""
    t = np.asarray(t_s, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(t) & np.isfinite(y)
    t, y = t[keep], y[keep]
    if len(t) < 2 or np.ptp(t) <= 0:
        return None
    dt = t - t.mean()
    return float((dt * (y - y.mean())).sum() / (dt * dt).sum() * 60.0)


def clean(value: float | None, digits: int = 4) -> float | None:
    """`value` rounded to `digits` places for the metrics and their details; None where it is None, NaN or infinite."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)
