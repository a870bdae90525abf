"""Seam jumps and flicker: how steadily the picture runs from one frame to the next."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["mean_flicker", "seam_jumps"]

_SEAM_REACH = 12  # frames on each side of a seam whose differences set its baseline
_SEAM_FLOOR = 0.5  # grey levels added to both sides of the seam ratio, so a still video's seam reads 1, not 0/0


def seam_jumps(diffs: Sequence[float], seams: Sequence[int]) -> list[dict[str, float]]:
    """Each seam's jump: the difference into its first frame over the median difference around it."""
    values = np.asarray(diffs, dtype=np.float64)  # values[i - 1] = difference from frame i - 1 to frame i
    found = []
    for seam in sorted(set(seams)):
        if not 1 <= seam <= len(values):
            continue
        around = [values[i - 1] for i in range(seam - _SEAM_REACH, seam + _SEAM_REACH + 1)
                  if i != seam and 1 <= i <= len(values)]  # fmt: skip
        if not around:
            continue
        jump = (values[seam - 1] + _SEAM_FLOOR) / (float(np.median(around)) + _SEAM_FLOOR)
        found.append({"frame": seam, "jump": round(float(jump), 4)})
    return found


def mean_flicker(flicker: Sequence[float], seams: Sequence[int]) -> float | None:
    """Mean second difference, leaving out the two frames whose difference straddles a seam."""
    # flicker[j] is about frames j, j + 1, j + 2; a seam at s spoils j = s - 2 and s - 1
    spoiled = {j for seam in seams for j in (seam - 2, seam - 1)}
    values = [v for j, v in enumerate(flicker) if j not in spoiled]
    return float(np.mean(values)) if values else None
