"""Long clips as overlapping model calls: every call 4k + 1 frames, the clip's frame count exact, no resampling.

Wan samples at most `max_frames` (81) frames per call, and only `4k + 1` of them (its VAE packs 4 frames per latent
frame after the first). A clip of any length is cut into windows of `max_frames` frames whose starts are spread
evenly, so that the last window ends on the clip's last frame and neighbours overlap by at least `min_overlap`
frames. Each window after the first is given the first frames its predecessor made there (motion frames), and the
rest of the overlap is cross-faded. A clip shorter than `max_frames` is one call of the next `4k + 1` length; the frames
past its end are sampled (against the audio that follows) and dropped. Audio is always sliced to each window's own
frames, so frame `i` of every call hears the audio at frame `i`.

Example:
    >>> [(w.start, w.num_frames, w.keep) for w in plan_windows(126, max_frames=81, min_overlap=8)]
    [(0, 81, 81), (45, 81, 81)]
    >>> [(w.start, w.num_frames, w.keep) for w in plan_windows(10, max_frames=81, min_overlap=8)]
    [(0, 13, 10)]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["Window", "plan_windows", "sample_windows"]


@dataclass(frozen=True)
class Window:
    """One model call: clip frames `start .. start + keep - 1`, sampled as `num_frames` (4k + 1) frames."""

    start: int
    num_frames: int
    keep: int


def _fit(num_frames: int, temporal_factor: int) -> int:
    """The smallest `temporal_factor * k + 1` >= num_frames."""
    return temporal_factor * math.ceil(max(num_frames - 1, 0) / temporal_factor) + 1


def plan_windows(num_frames: int, max_frames: int, min_overlap: int, temporal_factor: int = 4) -> list[Window]:
    """The windows that cover `num_frames` clip frames.

    Args:
        num_frames: the clip's frames, >= 1.
        max_frames: the longest call, `temporal_factor * k + 1`.
        min_overlap: frames neighbouring windows share at least (1 .. max_frames - 1).
        temporal_factor: the VAE's frames per latent frame (4 for Wan).
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if max_frames < temporal_factor + 1 or (max_frames - 1) % temporal_factor:
        raise ValueError(f"max_frames must be {temporal_factor}k + 1 >= {temporal_factor + 1}, got {max_frames}")
    if not 1 <= min_overlap < max_frames:
        raise ValueError(f"min_overlap must be in [1, {max_frames - 1}], got {min_overlap}")
    if num_frames <= max_frames:
        return [Window(0, _fit(num_frames, temporal_factor), num_frames)]
    count = math.ceil((num_frames - min_overlap) / (max_frames - min_overlap))
    last = num_frames - max_frames
    starts = [round(index * last / (count - 1)) for index in range(count)]
    return [Window(start, max_frames, max_frames) for start in starts]


def sample_windows(
    num_frames: int, given: dict[int, np.ndarray], windows: list[Window],
    sample: Callable[[Window, dict[int, np.ndarray]], list[np.ndarray]], motion_frames: int = 1,
) -> list[np.ndarray]:  # fmt: skip
    """Run `sample` over `windows` in order and join the results into `num_frames` frames.

    Args:
        num_frames: the clip's frames.
        given: clip frame index -> frame the clip must show there (anchors, a reference).
        windows: from `plan_windows`.
        sample: (window, given frames at window indices) -> the window's `num_frames` frames.
        motion_frames: how many of the frames an earlier window made at a window's start it is given (motion-frame
            conditioning: 5 fills Wan's first two latent frames, so the motion carries over, not only the pose).

    Each window after the first continues from the frames already made at its start (kept as they are); the rest
    of the overlap is cross-faded linearly from the earlier window's frames to the later one's.
    """
    if motion_frames < 1:
        raise ValueError(f"motion_frames must be >= 1, got {motion_frames}")
    frames: list[np.ndarray | None] = [None] * num_frames
    for window in windows:
        inside = {index - window.start: frame for index, frame in given.items()
                  if window.start <= index < window.start + window.keep}  # fmt: skip
        carried = 0
        if window.start > 0:
            for offset in range(min(motion_frames, window.keep)):
                earlier = frames[window.start + offset]
                if earlier is None:
                    break
                inside.setdefault(offset, earlier)
                carried += 1
        made = sample(window, inside)
        if len(made) != window.num_frames:
            raise RuntimeError(f"a window of {window.num_frames} frames came back with {len(made)}")
        overlap = [o for o in range(carried, window.keep) if frames[window.start + o] is not None]
        for offset in range(window.keep):
            index = window.start + offset
            earlier = frames[index]
            if earlier is None:
                frames[index] = made[offset]
            elif offset >= carried:  # carried frames stay as the earlier window made them
                weight = (overlap.index(offset) + 1) / (len(overlap) + 1)
                mixed = (1 - weight) * earlier.astype(np.float32) + weight * made[offset].astype(np.float32)
                frames[index] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    if any(frame is None for frame in frames):
        raise RuntimeError("the windows do not cover the clip")
    return frames  # type: ignore[return-value]
