"""Identity and colour drift: curves of a quantity per time window, per character, against the reference face."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from codirector.evals.face_references import Reference, mean_lab
from codirector.evals.signals import clean, slope_per_minute

if TYPE_CHECKING:
    from codirector.evals.frame_samples import FrameSamples

__all__ = ["Curves", "color_curves", "curve_windows", "identity_curves"]


def curve_windows(num_frames: int, window_frames: int, fps: float) -> list[tuple[int, int, float]]:
    """(first, end, centre time) of each curve window."""
    return [
        (start, min(num_frames, start + window_frames), (start + min(num_frames, start + window_frames)) / 2 / fps)
        for start in range(0, num_frames, window_frames)
    ]


@dataclass(frozen=True)
class Curves:
    """A quantity per curve window, per character (None where the character was not seen) and combined."""

    t_s: list[float]  # window centres
    by_character: dict[str, list[float | None]]

    def combined(self) -> tuple[list[float], list[float]]:
        """The mean over the characters seen in each window, for the windows where any was."""
        t_s, values = [], []
        for index, centre in enumerate(self.t_s):
            seen = [curve[index] for curve in self.by_character.values() if curve[index] is not None]
            if seen:
                t_s.append(centre)
                values.append(float(np.mean(seen)))  # type: ignore[arg-type]
        return t_s, values

    def slope_per_minute(self, transform: Any = None) -> float | None:
        """The mean over characters of each one's own trend: who is on screen when must not read as drift."""
        slopes = []
        for curve in self.by_character.values():
            pairs = [(t, v if transform is None else transform(v)) for t, v in zip(self.t_s, curve, strict=True)
                     if v is not None]  # fmt: skip
            slope = slope_per_minute([t for t, _ in pairs], [v for _, v in pairs])
            if slope is not None:
                slopes.append(slope)
        return float(np.mean(slopes)) if slopes else None

    def mean(self) -> float | None:
        means = [float(np.mean([v for v in c if v is not None])) for c in self.by_character.values() if any(
            v is not None for v in c)]  # fmt: skip
        return float(np.mean(means)) if means else None

    def last(self) -> float | None:
        """The mean over characters of each one's value in the last window they were seen in."""
        lasts = [next(v for v in reversed(c) if v is not None) for c in self.by_character.values()
                 if any(v is not None for v in c)]  # fmt: skip
        return float(np.mean(lasts)) if lasts else None

    def as_json(self, key: str) -> dict[str, Any]:
        t_s, values = self.combined()
        return {
            "t_s": t_s,
            key: [round(v, 4) for v in values],
            "by_character": {
                name: {"t_s": self.t_s, key: [clean(v) for v in curve]} for name, curve in self.by_character.items()
            },
        }


def color_curves(
    references: Sequence[Reference], series: FrameSamples, windows: Sequence[tuple[int, int, float]]
) -> tuple[Curves, str]:
    """ΔE per window against the reference: faces' upper halves where faces were seen, else whole frames."""
    use_faces = any(any(v is not None for v in labs) for labs in series.lab)
    by_character: dict[str, list[float | None]] = {}
    if use_faces:
        sources = [(r.character.id, labs, r.lab) for r, labs in zip(references, series.lab, strict=True)]
    else:  # no face anywhere: the whole frame against the whole of the first reference picture there is
        whole = next((_whole_lab(r) for r in references if r.character.reference_image is not None), None)
        sources = [("frame", series.frame_lab, whole)]  # type: ignore[list-item]
    for name, labs, reference in sources:
        means = []
        for start, end, _ in windows:
            seen = [v for v in labs[start:end] if v is not None]
            means.append(np.mean(seen, axis=0) if seen else None)
        if reference is None:  # no reference picture: drift from the video's own first window with this face
            reference = next((m for m in means if m is not None), None)
        by_character[name] = [
            None if m is None or reference is None else float(np.linalg.norm(m - reference)) for m in means
        ]
    return Curves([round(centre, 3) for _, _, centre in windows], by_character), "face" if use_faces else "frame"


def _whole_lab(reference: Reference) -> np.ndarray | None:
    from codirector.media import load_image

    if reference.character.reference_image is None:
        return None
    return mean_lab(load_image(reference.character.reference_image))


def identity_curves(
    references: Sequence[Reference], series: FrameSamples, windows: Sequence[tuple[int, int, float]]
) -> Curves:
    """Similarity to the reference face per window, for the characters with a reference face."""
    by_character: dict[str, list[float | None]] = {}
    for reference, samples in zip(references, series.identity, strict=True):
        if reference.embedding is None:
            continue
        curve: list[float | None] = []
        for start, end, _ in windows:
            values = [similarity for frame, similarity in samples if start <= frame < end]
            curve.append(float(np.mean(values)) if values else None)
        by_character[reference.character.id] = curve
    return Curves([round(centre, 3) for _, _, centre in windows], by_character)
