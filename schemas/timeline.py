"""Rules for spans on the audio timeline, shared by reports, storylines and render plans."""

from __future__ import annotations

from collections.abc import Sequence

from codirector.schemas.base import Loc

__all__ = ["check_inside", "check_ordered", "check_tiling"]


def check_inside(
    spans: Sequence[tuple[float, float]], duration_s: float, field: str, tolerance_s: float = 1e-3
) -> list[tuple[Loc, str]]:
    """Each span must be non-empty (start < end) and lie inside [0, duration_s]."""
    issues: list[tuple[Loc, str]] = []
    for index, (start_s, end_s) in enumerate(spans):
        if end_s <= start_s:
            issues.append(((field, index, "end_s"), f"ends at {end_s:.3f} s, not after its start {start_s:.3f} s"))
        if end_s > duration_s + tolerance_s:
            issues.append(((field, index, "end_s"), f"ends at {end_s:.3f} s, past the audio's {duration_s:.3f} s"))
    return issues


def check_ordered(spans: Sequence[tuple[float, float]], field: str) -> list[tuple[Loc, str]]:
    """Spans must be sorted by start time; they may touch or overlap (an utterance may hold a pause)."""
    return [
        (
            (field, index, "start_s"),
            f"starts at {spans[index][0]:.3f} s, before the previous one ({previous:.3f} s)",
        )
        for index in range(1, len(spans))
        if spans[index][0] < (previous := spans[index - 1][0])
    ]


def check_tiling(
    spans: Sequence[tuple[float, float]], duration_s: float, tolerance_s: float, field: str
) -> list[tuple[Loc, str]]:
    """Spans must tile [0, duration_s] in order: no gap and no overlap longer than `tolerance_s` (one frame).

    Returns every violation found, each located at the span and field that breaks the rule.
    """
    issues = check_inside(spans, duration_s, field, tolerance_s)
    if not spans:
        return [((field,), "needs at least one span")]
    if spans[0][0] > tolerance_s:
        issues.append(((field, 0, "start_s"), f"starts at {spans[0][0]:.3f} s: the timeline must start at 0"))
    for index in range(1, len(spans)):
        start_s, previous_end_s = spans[index][0], spans[index - 1][1]
        delta = start_s - previous_end_s
        if delta > tolerance_s:
            issues.append(
                (
                    (field, index, "start_s"),
                    f"gap of {delta:.3f} s after {field}[{index - 1}] (allowed: one frame, {tolerance_s:.3f} s)",
                )
            )
        elif delta < -tolerance_s:
            issues.append(
                (
                    (field, index, "start_s"),
                    f"overlaps {field}[{index - 1}] by {-delta:.3f} s (allowed: one frame, {tolerance_s:.3f} s)",
                )
            )
    last_end_s = spans[-1][1]
    if last_end_s < duration_s - tolerance_s:
        issues.append(
            (
                (field, len(spans) - 1, "end_s"),
                f"ends at {last_end_s:.3f} s, short of the audio's {duration_s:.3f} s",
            )
        )
    return issues
