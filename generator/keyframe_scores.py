"""Scoring candidate anchor keyframes: which blueprint frame near a segment boundary makes the best anchor.

Kling-Avatar sec. 2.2: "Around each segmentation point, we then select a high-quality frame that preserves identity
consistency, exhibits significant motion, avoids occlusion, and conveys expressive facial details." Each of those
becomes a score in 0-1 (higher is better), computed over the candidates of one boundary:

- face: a face is found and is unoccluded: not cut by the frame's border, its lower half not flat (covered);
- sharpness: variance of the Laplacian of the face (of the frame where there is none), relative to the sharpest;
- motion: how much the frame differs from its neighbours among the candidates, relative to the most;
- expressiveness: how far the eye and mouth regions depart from the reference face's, relative to the most;
- identity: cosine similarity of the face's features to the closest reference face's (pluggable embedder).

The total is their weighted sum (`ScoreWeights`). Everything is a pure function of the frames and the references,
and fast: a boundary's ~10 candidates at 640x360 take a few tens of ms, because one full Haar search (on the middle
candidate) finds the face and the other candidates are searched only around it, at its size.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np

from codirector.errors import ConfigError
from codirector.faces import FAST_SEARCHES, Box, FaceView, FastSearch, detect_face, find_face_fast
from codirector.schemas.vocab import Subject

__all__ = [
    "IdentityEmbedder",
    "KeyframeScorer",
    "KeyframeScores",
    "ScoreWeights",
    "default_identity_embedder",
]

logger = logging.getLogger(__name__)

_MAX_FULL_SEARCHES = 3  # candidates searched whole, from the middle out, before a window counts as faceless

IdentityEmbedder = Callable[[np.ndarray], np.ndarray]  # RGB uint8 face crop (h, w, 3) -> 1-D feature vector

_CROP = 64  # side of the normalised grayscale face crop that expressiveness and occlusion compare
_SHARPNESS_SIDE = 96  # faces are resampled to this side before the Laplacian, so crops of any size compare
_MOTION_SIDE = 160  # long side of the grayscale copies that frame differences are taken on
_HEAD_MARGIN = 0.2  # a Haar box covers eyes to mouth; the head reaches this share of its side beyond it
# Rows and columns of the normalised crop (shares of its side) where expressions show: brows and eyes, mouth.
_EYES = (slice(int(0.15 * _CROP), int(0.5 * _CROP)), slice(int(0.12 * _CROP), int(0.88 * _CROP)))
_MOUTH = (slice(int(0.62 * _CROP), int(0.95 * _CROP)), slice(int(0.2 * _CROP), int(0.8 * _CROP)))
_ALIGN = 4  # pixels of the normalised crop that two crops are shifted by, at most, to line them up


@dataclass(frozen=True)
class KeyframeScores:
    """One candidate's scores, each in 0-1 (higher is better), and their weighted total."""

    face: float
    sharpness: float
    motion: float
    expressiveness: float
    identity: float
    total: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class ScoreWeights:
    """How much each score counts in the total; the defaults sum to 1, so the total is in 0-1 too.

    A frame that shows the character whole and recognisable matters most (face, identity: an anchor with a covered
    or drifted face spoils both sub-clips it starts and ends); then sharpness, which the high-resolution keyframe
    inherits; expressiveness and motion pick the livelier of otherwise equal frames.
    """

    face: float = 0.3
    sharpness: float = 0.2
    motion: float = 0.1
    expressiveness: float = 0.15
    identity: float = 0.25

    def __post_init__(self) -> None:
        values = {field.name: getattr(self, field.name) for field in fields(self)}
        bad = {name: value for name, value in values.items() if not (math.isfinite(value) and value >= 0)}
        if bad or not any(values.values()):
            raise ConfigError(
                "keyframe score weights", f"must be finite, non-negative and not all zero, got {values}",
                "Give each weight a value of 0 or more.",
            )  # fmt: skip


def default_identity_embedder(crop: np.ndarray) -> np.ndarray:
    """Identity features without model weights: the face's layout and its colours, each half of a unit vector.

    Layout is the crop as a zero-mean 32x32 grayscale image; colour is the square root of a 12x4 hue-saturation
    histogram (so the cosine of two histograms is their Bhattacharyya coefficient). It tells people apart only
    roughly; plug in a face-recognition model (ArcFace) through `KeyframeScorer(embedder=...)` where there is one.

    Args:
        crop: RGB uint8 face crop, (height, width, 3).

    Returns:
        float32 vector of 32 * 32 + 12 * 4 values, each half of norm 1/sqrt(2) (0 where the crop is flat).

    Example:
        >>> import numpy as np
        >>> default_identity_embedder(np.full((40, 30, 3), 128, np.uint8)).shape
        (1072,)
    """
    import cv2

    layout = cv2.resize(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), (32, 32), interpolation=cv2.INTER_AREA)
    layout = layout.astype(np.float32).ravel()
    layout -= layout.mean()
    hsv = cv2.cvtColor(cv2.resize(crop, (48, 48), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2HSV)
    colour = np.sqrt(cv2.calcHist([hsv], [0, 1], None, [12, 4], [0, 180, 0, 256]).ravel())
    return (np.concatenate([_unit(layout), _unit(colour)]) / math.sqrt(2)).astype(np.float32)


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _clip(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    return max(0, int(x0)), max(0, int(y0)), min(width, math.ceil(x1)), min(height, math.ceil(y1))


def _head_inside_share(box: Box, width: int, height: int) -> float:
    """Share of the head (the face box grown by `_HEAD_MARGIN`) inside the frame: below 1 when the border cuts it."""
    margin = _HEAD_MARGIN * (box[2] - box[0])
    x0, y0, x1, y1 = box[0] - margin, box[1] - margin, box[2] + margin, box[3] + margin
    inside = max(0.0, min(x1, width) - max(x0, 0)) * max(0.0, min(y1, height) - max(y0, 0))
    return inside / ((x1 - x0) * (y1 - y0))


# --- comparing faces -----------------------------------------------------------------------------------------------


def _normalised_crop(gray: np.ndarray) -> np.ndarray:
    """A face crop as a zero-mean, unit-variance _CROP x _CROP float image: lighting drops out of comparisons."""
    import cv2

    crop = cv2.resize(gray, (_CROP, _CROP), interpolation=cv2.INTER_AREA).astype(np.float32)
    deviation = float(crop.std())
    return (crop - crop.mean()) / deviation if deviation > 1e-6 else np.zeros_like(crop)


def _lower_texture_ratio(crop: np.ndarray) -> float:
    """Gradient energy of the lower half of a normalised face crop over the upper half's.

    A hand, a microphone or a box over the mouth and chin flattens the lower half; blur lowers both halves alike.
    """
    import cv2

    energy = np.abs(cv2.Sobel(crop, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(crop, cv2.CV_32F, 0, 1))
    columns = slice(_CROP // 8, _CROP - _CROP // 8)
    upper = float(energy[: _CROP // 2, columns].mean())
    return float(energy[_CROP // 2 :, columns].mean()) / upper if upper > 1e-6 else 0.0


def _departure(crop: np.ndarray, reference: np.ndarray) -> float:
    """Mean difference of the eye-and-brow and mouth regions of two normalised face crops, best aligned.

    Two Haar boxes of the same face differ by a few pixels; comparing at the best of the shifts up to `_ALIGN`
    pixels halves what that jitter adds (0.24-0.44 to 0.10-0.24 on still copies of examples/english_portrait),
    while an opened mouth still differs.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    reach = _ALIGN
    padded = np.pad(reference, reach, mode="edge")
    by_shift = np.zeros((2 * reach + 1, 2 * reach + 1), np.float32)
    for rows, columns in (_EYES, _MOUTH):
        target = crop[rows, columns]
        # every shift of the reference region at once: (shifts_y, shifts_x, height, width)
        shifted = sliding_window_view(
            padded[rows.start : rows.stop + 2 * reach, columns.start : columns.stop + 2 * reach], target.shape
        )
        by_shift += np.abs(shifted - target).mean(axis=(2, 3))
    return float(by_shift.min()) / 2


def _sharpness(gray: np.ndarray) -> float:
    import cv2

    return float(
        cv2.Laplacian(
            cv2.resize(gray, (_SHARPNESS_SIDE, _SHARPNESS_SIDE), interpolation=cv2.INTER_AREA).astype(np.float32),
            cv2.CV_32F,
        ).var()
    )


@dataclass(frozen=True)
class _Reference:
    """A reference face, prepared once: identity features, normalised crop, lower-half texture."""

    embedding: np.ndarray  # unit norm
    crop: np.ndarray
    texture_ratio: float


# Floors of the relative scores: a window whose frames barely differ should not have that noise stretched to 0-1.
_MOTION_FLOOR = 2.0  # mean absolute difference in grey levels (0-255) that counts as full motion at the least
_DEPARTURE_FLOOR = 0.4  # departure (in standard deviations) that counts as fully expressive; jitter gives < 0.25
_COVER_TOLERANCE = 0.75  # a lower half keeping this share of the reference's texture counts as uncovered


class KeyframeScorer:
    """Scores the candidate frames around one segment boundary against the character's reference picture(s).

    Args:
        references: RGB uint8 reference images, one per character (or several of one); the face in each is found
            once with `codirector.faces.detect_face` (the whole image where there is none). With no references,
            identity is 0 everywhere and expressiveness is measured against the candidates' average face.
        embedder: identity features of an RGB face crop; `default_identity_embedder` when None.
        weights: how the scores add up to the total; `ScoreWeights()` when None.

    Example:
        >>> import numpy as np
        >>> scorer = KeyframeScorer([])
        >>> frames = [np.full((36, 64, 3), value, np.uint8) for value in (0, 0, 80)]
        >>> index, scores = scorer.best(frames)
        >>> [round(s.motion, 2) for s in scores]  # differences from neighbours: none, half, all
        [0.0, 0.5, 1.0]
        >>> index  # no faces: motion decides
        2
    """

    def __init__(
        self,
        references: Sequence[np.ndarray],
        *,
        embedder: IdentityEmbedder | None = None,
        weights: ScoreWeights | None = None,
    ) -> None:
        import cv2

        self.embedder = embedder or default_identity_embedder
        self.weights = weights or ScoreWeights()
        detections = [detect_face(_check_image(image, f"references[{i}]")) for i, image in enumerate(references)]
        found = [detection.subject for detection in detections if detection is not None]
        # the searched kinds of face: the references' (humans first: their cascade is cheaper), humans by default
        self._subjects = sorted(set(found), key=[Subject.HUMAN, Subject.ANIMAL].index) or [Subject.HUMAN]
        self._references: list[_Reference] = []
        for image, detection in zip(references, detections, strict=True):
            height, width = image.shape[:2]
            box: Box = (0.0, 0.0, float(width), float(height))
            if detection is not None:
                # Re-find the face with the fast search, so reference and candidate crops are framed alike.
                search = FAST_SEARCHES[detection.subject]
                gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
                refined = (
                    find_face_fast(FaceView.of(gray, search, size), search, detection.box) for size in search.long_sides
                )
                box = next((b for b in refined if b is not None), detection.box)
            else:
                logger.info("no face in reference %d; its whole image stands for the face", len(self._references))
            x0, y0, x1, y1 = _clip(box, width, height)
            crop = image[y0:y1, x0:x1]
            normalised = _normalised_crop(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY))
            self._references.append(
                _Reference(_embed(self.embedder, crop), normalised, _lower_texture_ratio(normalised))
            )

    def score(self, frames: Sequence[np.ndarray]) -> list[KeyframeScores]:
        """Score consecutive candidate frames around one boundary.

        Args:
            frames: RGB uint8 frames of one size, (height, width, 3), in time order.

        Returns:
            One `KeyframeScores` per frame, in order.
        """
        import cv2

        if not frames:
            raise ValueError("frames: need at least one candidate frame, got none")
        shape = _check_image(frames[0], "frames[0]").shape
        for index, frame in enumerate(frames):
            if _check_image(frame, f"frames[{index}]").shape != shape:
                raise ValueError(f"frames[{index}]: must have the shape of frames[0], {shape}, got {frame.shape}")
        height, width = shape[:2]
        grays = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]
        boxes, regions = _same_size(*self._find_faces(grays))

        motion_raw = _motion(grays)
        sharpness_raw, face, identity, departure = [], [], [], []
        for frame, gray, box, region in zip(frames, grays, boxes, regions, strict=True):
            x0, y0, x1, y1 = _clip(region, width, height) if region is not None else (0, 0, width, height)
            sharpness_raw.append(_sharpness(gray[y0:y1, x0:x1]))
            if box is None:
                face.append(0.0)
                identity.append(0.0)
                departure.append(None)
                continue
            crop = _normalised_crop(gray[y0:y1, x0:x1])
            features = _embed(self.embedder, frame[y0:y1, x0:x1])
            similarities = [float(reference.embedding @ features) for reference in self._references]
            closest = self._references[int(np.argmax(similarities))] if similarities else None
            identity.append(min(1.0, max(0.0, max(similarities, default=0.0))))
            expected = closest.texture_ratio if closest is not None else None
            face.append(_head_inside_share(box, width, height) * _uncovered(_lower_texture_ratio(crop), expected))
            departure.append((crop, closest.crop if closest is not None else None))
        expressiveness = _relative(_departures(departure), _DEPARTURE_FLOOR)
        sharpness = _relative(sharpness_raw, 0.0)
        motion = _relative(motion_raw, _MOTION_FLOOR)
        return [
            self._total(face=f, sharpness=s, motion=m, expressiveness=e, identity=i)
            for f, s, m, e, i in zip(face, sharpness, motion, expressiveness, identity, strict=True)
        ]

    def _total(self, **scores: float) -> KeyframeScores:
        total = sum(getattr(self.weights, name) * value for name, value in scores.items())
        return KeyframeScores(**scores, total=total)

    def best(self, frames: Sequence[np.ndarray]) -> tuple[int, list[KeyframeScores]]:
        """The index of the best candidate (ties go to the one nearest the middle, the boundary) and all scores."""
        scores = self.score(frames)
        middle = (len(frames) - 1) / 2
        best = max(range(len(scores)), key=lambda i: (scores[i].total, -abs(i - middle), -i))
        return best, scores

    def _find_faces(self, grays: Sequence[np.ndarray]) -> tuple[list[Box | None], list[Box | None]]:
        """Each frame's face box (None where there is none) and the region its sharpness is measured on.

        The middle candidate is searched whole (then its neighbours, if it shows no face); the others are searched
        only near the face of the nearest frame that has one, going outwards, which follows a moving face.
        """
        count = len(grays)
        outwards = sorted(range(count), key=lambda i: (abs(i - (count - 1) / 2), i))
        anchor: tuple[int, FastSearch, int, Box] | None = None
        for index in outwards[:_MAX_FULL_SEARCHES]:
            for subject in self._subjects:
                search = FAST_SEARCHES[subject]
                for size in search.long_sides:
                    if (box := find_face_fast(FaceView.of(grays[index], search, size), search)) is not None:
                        anchor = (index, search, size, box)
                        break
                if anchor:
                    break
            if anchor:
                break
        boxes: list[Box | None] = [None] * count
        regions: list[Box | None] = [None] * count
        if anchor is None:
            return boxes, regions
        start, search, size, box = anchor
        boxes[start] = regions[start] = box
        # the anchor's copy size first; a cat's face is found on some sizes and missed on others
        sizes = [size, *(other for other in search.long_sides if other != size)]
        for step in (-1, 1):  # walk out from the anchor both ways, each frame searched near the last face seen
            near = box
            for index in range(start + step, count if step > 0 else -1, step):
                views = (FaceView.of(grays[index], search, side) for side in sizes)
                found = next((b for view in views if (b := find_face_fast(view, search, near)) is not None), None)
                boxes[index] = found
                regions[index] = found or near
                near = found or near
        return boxes, regions


def _same_size(boxes: list[Box | None], regions: list[Box | None]) -> tuple[list[Box | None], list[Box | None]]:
    """The boxes re-centred at one side, the window's median: Haar's boxes of one still face vary by +-10% in size,
    and crops that differ in scale would differ in identity and expression for no reason."""
    sides = [box[2] - box[0] for box in boxes if box is not None]
    if not sides:
        return boxes, regions
    half = float(np.median(sides)) / 2

    def resize(box: Box | None) -> Box | None:
        if box is None:
            return None
        x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        return (x - half, y - half, x + half, y + half)

    return [resize(box) for box in boxes], [resize(region) for region in regions]


def _check_image(image: np.ndarray, name: str) -> np.ndarray:
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        got = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{name}: must be an RGB uint8 array of shape (height, width, 3), got {got}")
    if min(image.shape[:2]) < 8:
        raise ValueError(f"{name}: must be at least 8x8 pixels, got {image.shape[1]}x{image.shape[0]}")
    return image


def _embed(embedder: IdentityEmbedder, crop: np.ndarray) -> np.ndarray:
    """The embedder's features of a crop as a unit vector (cosine similarity is then a dot product)."""
    features = np.asarray(embedder(np.ascontiguousarray(crop)), dtype=np.float64)
    if features.ndim != 1 or not np.all(np.isfinite(features)):
        raise ValueError(f"embedder: must return a finite 1-D feature vector, got shape {features.shape}")
    return _unit(features)


def _uncovered(ratio: float, expected: float | None) -> float:
    """1 while the lower half of the face keeps its texture, falling to 0 as it goes flat."""
    if expected is None or expected <= 0:  # no reference face to compare with: only a flat lower half counts
        expected = 1.0
    return min(1.0, ratio / (_COVER_TOLERANCE * expected))


def _motion(grays: Sequence[np.ndarray]) -> list[float]:
    """Mean absolute difference (grey levels) of each frame from its neighbours among the candidates."""
    import cv2

    scale = min(1.0, _MOTION_SIDE / max(grays[0].shape))
    small = [
        cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA).astype(np.float32) for gray in grays
    ]
    steps = [float(np.abs(b - a).mean()) for a, b in itertools.pairwise(small)]
    return [float(np.mean(steps[max(0, i - 1) : i + 1])) if steps else 0.0 for i in range(len(grays))]


def _departures(pairs: Sequence[tuple[np.ndarray, np.ndarray | None] | None]) -> list[float]:
    """Departure of each face from its reference (from the candidates' mean face without one); 0 without a face."""
    faces = [pair[0] for pair in pairs if pair is not None]
    mean_face = np.mean(faces, axis=0) if faces else None
    return [
        0.0 if pair is None else _departure(pair[0], pair[1] if pair[1] is not None else mean_face) for pair in pairs
    ]


def _relative(values: Sequence[float], floor: float) -> list[float]:
    """Values divided by the largest (or by `floor` when all are below it), so the top one scores 1."""
    top = max(max(values, default=0.0), floor)
    return [value / top if top > 0 else 0.0 for value in values]
