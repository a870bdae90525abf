"""Metrics on a finished MP4: lip sync, identity and colour drift, seams, flicker, and whose mouth moves.

The video is decoded once, streaming, frame by frame. Each frame feeds:

* a face tracker on a grey copy of about 256 pixels. A search looks for each character's reference face itself
  at every size, then runs Haar cascades (frontal, and profiles while faces are missing) for the characters not
  found, and gives each face to at most one character by how much it looks like the character's reference, where
  the character was a moment ago, and the characters' left-to-right order in their references. Searches run every
  2 s, every second while a face is lost, and soon after a cut or a seam; between them each face is followed by
  template matching;
* the mouth extractor on each tracked face (lip sync, right mouth);
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
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from codirector.errors import MediaError
from codirector.evals.extractors import Box, Extractors, FaceEmbedder, crop_face
from codirector.evals.signals import best_lag, frame_envelope, lagged_correlation, slope_per_minute, smooth
from codirector.schemas.vocab import Subject

__all__ = ["CharacterTrack", "RenderMeasurement", "RenderSubject", "measure_render"]

logger = logging.getLogger(__name__)

_VIDEO_FIX = "Give a readable video file (MP4, MKV) with a video stream."
_SEARCH_SIDE = 256  # about the long side of the grey copy faces are searched and tracked on, pixels
_MIN_FACE = 16  # smallest face searched, pixels of that copy (a wide 480p two-shot has faces of about 27)
_TRACK_REACH = 0.35  # how far a face may move between frames, as a share of its side
_TRACK_MIN_SCORE = 0.5  # normalised cross-correlation below which the template has lost the face
_SEAM_REACH = 12  # frames on each side of a seam whose differences set its baseline
_SEAM_FLOOR = 0.5  # grey levels added to both sides of the seam ratio, so a still video's seam reads 1, not 0/0
_VOICED_RMS = 1e-3  # a track whose loudest frame is quieter than -60 dBFS is silence
_REFERENCE_SIDE = 96  # the reference face is matched at most this large, pixels
# normalised cross-correlation for the reference face itself to count as found: in the examples' preview renders
# the true place scored 0.88-0.97, the best elsewhere up to 0.7
_REFERENCE_MIN_SCORE = 0.8
_MIN_SIMILARITY = 0.05  # a face this unlike every reference is no character's (cosine; unrelated faces are ~0.1)
_SIMILARITY_TIE = 0.05  # cosines closer than this do not tell two characters apart
_HUMAN_CASCADES = (
    ("haarcascade_frontalface_alt2.xml", False),
    ("haarcascade_profileface.xml", False),
    ("haarcascade_profileface.xml", True),  # the profile cascade knows faces turned one way only
)


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


# ------------------------------------------------------------------------------------------------ references


@dataclass(frozen=True)
class _Reference:
    """What a character's reference picture gives: the face's look, embedding and colour, and its kind."""

    character: CharacterTrack
    x_center: float  # where the character stands, 0 (left) to 1 (right), for the left-to-right order
    embedding: np.ndarray | None
    lab: np.ndarray | None  # mean L*a*b* of the face's upper half
    face_gray: np.ndarray | None  # the face box, grey, at most _REFERENCE_SIDE pixels on its long side
    subject: Subject


def _upper_face(box: Box) -> Box:
    """The upper middle of a face box: forehead, eyes and cheeks, without the mouth, beard or background."""
    x0, y0, x1, y1 = box
    width, height = x1 - x0, y1 - y0
    return (x0 + 0.2 * width, y0 + 0.15 * height, x1 - 0.2 * width, y0 + 0.6 * height)


def _mean_lab(rgb: np.ndarray) -> np.ndarray | None:
    """The mean colour of an RGB uint8 image in CIE L*a*b* (L* 0-100): its mean sRGB value, converted.

    Averaging first and converting once keeps the value steady against a box that shifts by a pixel (a per-pixel
    Lab mean on a subsample jittered by 1-2 ΔE on a face). Images over 256 pixels a side are averaged on every
    n-th pixel, which is as good for a mean.
    """
    import cv2

    if rgb.size == 0:
        return None
    step = max(1, math.ceil(max(rgb.shape[:2]) / 256))
    mean = rgb[::step, ::step].reshape(-1, 3).mean(axis=0, dtype=np.float64)
    pixel = (mean / 255.0).astype(np.float32).reshape(1, 1, 3)
    return cv2.cvtColor(pixel, cv2.COLOR_RGB2Lab).reshape(3).astype(np.float64)


def _pixels(box: Box, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """A box rounded to whole pixels and clipped to an image of `shape`."""
    x0, y0, x1, y1 = (round(v) for v in box)
    return max(0, x0), max(0, y0), min(shape[1], x1), min(shape[0], y1)


def _region_lab(frame: np.ndarray, box: Box) -> np.ndarray | None:
    x0, y0, x1, y1 = _pixels(box, frame.shape)
    return _mean_lab(frame[y0:y1, x0:x1]) if x1 > x0 and y1 > y0 else None


@functools.lru_cache(maxsize=16)
def _reference_face(path: str, mtime_ns: int, box_norm: tuple[float, ...] | None) -> tuple[Box, Subject] | None:
    """The face in a reference picture (inside `box_norm`), by the slow voting search; cached per file and box."""
    from codirector.faces import detect_face
    from codirector.media import load_image

    image = load_image(path)
    height, width = image.shape[:2]
    left = top = 0
    if box_norm is not None:
        left, top = int(box_norm[0] * width), int(box_norm[1] * height)
        right, bottom = max(left + 1, int(box_norm[2] * width)), max(top + 1, int(box_norm[3] * height))
        image = image[top:bottom, left:right]
    found = detect_face(image)
    if found is None:
        return None
    x0, y0, x1, y1 = found.box
    return (x0 + left, y0 + top, x1 + left, y1 + top), found.subject


def _reference(character: CharacterTrack, embedder: FaceEmbedder) -> _Reference:
    import cv2

    from codirector.media import load_image

    box_norm = character.reference_box_xyxy_norm
    x_center = 0.5 if box_norm is None else (box_norm[0] + box_norm[2]) / 2
    if character.reference_image is None:
        return _Reference(character, x_center, None, None, None, Subject.HUMAN)
    path = Path(character.reference_image)
    if not path.is_file():
        raise MediaError(path, "no such reference image", "Check the path of the character's reference image.")
    found = _reference_face(str(path.resolve()), path.stat().st_mtime_ns, None if box_norm is None else tuple(box_norm))
    if found is None:
        logger.info("%s: no face found in %s; identity and colour are measured against the video's start",
                    character.id, path)  # fmt: skip
        return _Reference(character, x_center, None, None, None, Subject.HUMAN)
    box, subject = found
    image = load_image(path)
    crop = crop_face(image, box)
    embedding = None if crop is None else embedder.embed(crop)
    x0, y0, x1, y1 = _pixels(box, image.shape)
    face_gray = cv2.cvtColor(np.ascontiguousarray(image[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
    if max(face_gray.shape) > _REFERENCE_SIDE:
        shrink = _REFERENCE_SIDE / max(face_gray.shape)
        face_gray = cv2.resize(face_gray, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
    return _Reference(character, x_center, embedding, _region_lab(image, _upper_face(box)), face_gray, subject)


# ------------------------------------------------------------------------------------------------ tracking


@dataclass
class _Detection:
    box: Box  # frame pixels
    votes: int
    embedding: np.ndarray | None = None


def _iou(a: Box, b: Box) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _scaled(image: np.ndarray, zoom: float) -> np.ndarray:
    import cv2

    if abs(zoom - 1.0) < 1e-6:
        return image
    size = (max(4, round(image.shape[1] * zoom)), max(4, round(image.shape[0] * zoom)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR)


def _best_match(
    image: np.ndarray, template: np.ndarray, zooms: Sequence[float], exclude: Sequence[Box] = ()
) -> tuple[float, Box] | None:
    """The best normalised cross-correlation of `template` at any of `zooms` in `image`, and where (its pixels).

    Places whose centre falls inside one of the `exclude` boxes (image pixels) do not count.
    """
    import cv2

    best: tuple[float, Box] | None = None
    for zoom in zooms:
        resized = _scaled(template, zoom)
        th, tw = resized.shape
        if th > image.shape[0] or tw > image.shape[1]:
            continue
        scores = cv2.matchTemplate(image, resized, cv2.TM_CCOEFF_NORMED)
        for x0, y0, x1, y1 in exclude:  # the top-left corners that would centre the template in the box
            scores[max(0, int(y0 - th / 2)) : max(0, int(y1 - th / 2) + 1),
                   max(0, int(x0 - tw / 2)) : max(0, int(x1 - tw / 2) + 1)] = -1.0  # fmt: skip
        _, score, _, (x, y) = cv2.minMaxLoc(scores)
        if math.isfinite(score) and (best is None or score > best[0]):
            best = (float(score), (float(x), float(y), float(x + tw), float(y + th)))
    return best


@dataclass
class _Track:
    """Where one character's face is: its box in frame pixels and the grey template it is followed by."""

    box: Box | None = None
    template: np.ndarray | None = None  # the face as last found by a search, in search pixels
    zoom: float = 1.0  # the face's size now over the template's
    seen: int = 0  # frames with a box
    detections: int = 0  # searches that found this face


class _FaceTracker:
    """Follows each character's face through the video: sparse searches, template matching in between.

    A search runs the Haar cascades (frontal, then profile both ways while faces are missing) and gives each face
    to at most one character; a character the cascades miss is then looked for by their reference face itself,
    at every size (a profile the profile cascade misses). Between searches each face is followed by its template
    at three nearby sizes, so pans and zooms keep it.
    """

    def __init__(self, references: Sequence[_Reference], embedder: FaceEmbedder, fps: float) -> None:
        self.references = list(references)
        self.embedder = embedder
        self.tracks = [_Track() for _ in references]
        # A search costs about 100 ms against 1 ms for following a template, so it runs every 2 s to re-anchor
        # the templates, once a second while a character is lost, and soon after a cut or a lost face.
        self.detect_every = max(1, round(2 * fps))
        self.retry_every = max(1, round(fps))
        self.soon = max(1, round(fps / 4))
        self.last_search = -(10**9)
        self.search_next = False
        self.animal = bool(references) and all(r.subject == Subject.ANIMAL for r in references)
        self.have_references = any(r.embedding is not None for r in references)

    def update(self, index: int, frame: np.ndarray, small: np.ndarray, scale: float, cut: bool) -> list[Box | None]:
        """The face box of each character in this frame (None where not seen).

        Args:
            index: frame number.
            frame: the RGB frame.
            small: its grey copy, `scale` times the frame's size.
            scale: search pixels per frame pixel.
            cut: the picture jumped here (a cut or a sub-clip boundary): search again soon.
        """
        since = index - self.last_search
        lost = any(track.box is None for track in self.tracks)
        assigned: set[int] = set()
        if (
            since >= self.detect_every
            or (lost and since >= self.retry_every)
            or ((cut or self.search_next) and since >= self.soon)
        ):
            self.last_search, self.search_next = index, False
            assigned = self._search(frame, small, scale)
        for number, track in enumerate(self.tracks):
            if number not in assigned and track.box is not None:
                track.box = self._follow(track, small, scale)
                self.search_next |= track.box is None
            if track.box is not None:
                track.seen += 1
        return [track.box for track in self.tracks]

    def _follow(self, track: _Track, small: np.ndarray, scale: float) -> Box | None:
        """The template's best match near the last box, at its size or 4 % either way; None if none is good."""
        if track.template is None or track.box is None:
            return None
        x0, y0, x1, y1 = (v * scale for v in track.box)
        reach = _TRACK_REACH * max(x1 - x0, y1 - y0)
        left, top = max(0, int(x0 - reach)), max(0, int(y0 - reach))
        right, bottom = min(small.shape[1], int(x1 + reach) + 1), min(small.shape[0], int(y1 + reach) + 1)
        window = small[top:bottom, left:right]
        found = _best_match(window, track.template, [track.zoom])
        # another size only where it matches clearly better: noise alone would let the box grow or shrink
        other = _best_match(window, track.template, [track.zoom / 1.04, track.zoom * 1.04])
        if other is not None and (found is None or other[0] > found[0] + 0.02):
            found = other
        if found is None or found[0] < _TRACK_MIN_SCORE:
            return None
        bx0, by0, bx1, by1 = found[1]
        track.zoom = (bx1 - bx0) / track.template.shape[1]
        return ((bx0 + left) / scale, (by0 + top) / scale, (bx1 + left) / scale, (by1 + top) / scale)

    def _detect(self, small: np.ndarray, scale: float, wanted: int) -> list[_Detection]:
        """Faces in the grey copy (frame pixels), strongest first, merged across cascades."""
        import cv2

        from codirector.faces import FAST_SEARCHES, FaceView, find_face_fast, haar_cascade

        if self.animal:
            search = FAST_SEARCHES[Subject.ANIMAL]
            for side in search.long_sides:
                box = find_face_fast(FaceView.of(small, search, side), search)
                if box is not None:
                    return [_Detection(tuple(v / scale for v in box), 1)]  # type: ignore[arg-type]
            return []
        equalized = cv2.equalizeHist(small)
        found: list[_Detection] = []
        for number, (name, mirrored) in enumerate(_HUMAN_CASCADES):
            # profiles only where the frontal cascade found fewer faces than there are characters
            if number > 0 and len(found) >= wanted:
                break
            view = np.ascontiguousarray(equalized[:, ::-1]) if mirrored else equalized
            boxes, votes = haar_cascade(name).detectMultiScale2(
                view, scaleFactor=1.1, minNeighbors=3, minSize=(_MIN_FACE, _MIN_FACE)
            )
            for (x, y, w, h), vote in zip(np.reshape(boxes, (-1, 4)).tolist(), np.ravel(votes).tolist(), strict=True):
                left = view.shape[1] - x - w if mirrored else x
                box = (left / scale, y / scale, (left + w) / scale, (y + h) / scale)
                twin = next((d for d in found if _iou(d.box, box) > 0.3), None)
                if twin is None:
                    found.append(_Detection(box, int(vote)))
                elif vote > twin.votes:
                    twin.box, twin.votes = box, int(vote)
        return sorted(found, key=lambda d: -d.votes)[:6]

    def _search(self, frame: np.ndarray, small: np.ndarray, scale: float) -> set[int]:
        """Find the characters' faces anew; returns the characters found.

        Each character's reference face is looked for first, at every size: where the video shows the character
        as the reference does (a preview render, a faithful model) this is both the surest and the cheapest
        search (about 15 ms), and its box follows the reference's own box. The Haar cascades then look for the
        characters still missing, and each face they find goes to at most one character.
        """
        found: dict[int, Box] = {}
        # the best-matching character claims its face first; one whose best place was taken (a twin, a
        # look-alike) looks again with that face left out
        waiting = [number for number, reference in enumerate(self.references) if reference.face_gray is not None]
        while waiting:
            matches = []
            for number in waiting:
                face = self.references[number].face_gray
                match = self._find_reference(face, small, scale, exclude=list(found.values()))  # type: ignore[arg-type]
                if match is not None:
                    matches.append((match[0], number, match[1]))
            if not matches:
                break
            _, number, box = max(matches)
            found[number] = box
            waiting = [n for _, n, _ in matches if n != number]
        found = self._in_reference_order(found)
        missing = [number for number in range(len(self.tracks)) if number not in found]
        if missing:
            found.update(self._haar_search(frame, small, scale, missing, taken=list(found.values())))
        for number, box in found.items():
            self._anchor(number, box, small, scale)
        return set(found)

    def _haar_search(
        self, frame: np.ndarray, small: np.ndarray, scale: float, missing: Sequence[int], taken: Sequence[Box]
    ) -> dict[int, Box]:
        """Faces the cascades find, given to the `missing` characters they fit best (none of the `taken` boxes)."""
        detections = [
            d for d in self._detect(small, scale, wanted=len(missing)) if all(_iou(d.box, t) <= 0.3 for t in taken)
        ]
        if self.have_references:
            for detection in detections:
                crop = crop_face(frame, detection.box)
                detection.embedding = None if crop is None else self.embedder.embed(crop)
        width = frame.shape[1]
        pair_scores = {c: [self._score(c, d, width) for d in detections] for c in missing}
        best: tuple[float, tuple[int | None, ...]] = (0.0, (None,) * len(missing))
        for choice in itertools.product([None, *range(len(detections))], repeat=len(missing)):
            picked = [d for d in choice if d is not None]
            if len(picked) != len(set(picked)):
                continue
            pairs = [(c, d) for c, d in zip(missing, choice, strict=True) if d is not None]
            if any(pair_scores[c][d] is None for c, d in pairs) or not self._in_order(pairs, detections):
                continue
            total = sum(pair_scores[c][d] or 0.0 for c, d in pairs)
            if total > best[0]:
                best = (total, choice)
        return {c: detections[d].box for c, d in zip(missing, best[1], strict=True) if d is not None}

    def _anchor(self, number: int, box: Box, small: np.ndarray, scale: float) -> None:
        """Put a character's face at a box a search found, and take its template from there."""
        x0, y0, x1, y1 = _pixels(tuple(v * scale for v in box), small.shape)  # type: ignore[arg-type]
        if min(x1 - x0, y1 - y0) < 4:
            return
        track = self.tracks[number]
        track.box, track.template, track.zoom = box, np.ascontiguousarray(small[y0:y1, x0:x1]), 1.0
        track.detections += 1

    @staticmethod
    def _find_reference(
        face: np.ndarray, small: np.ndarray, scale: float, exclude: Sequence[Box] = ()
    ) -> tuple[float, Box] | None:
        """The reference face itself, searched at every size from the smallest face to the frame's height."""
        sides = []
        side = float(_MIN_FACE)
        while side <= 0.9 * min(small.shape):
            sides.append(side)
            side *= 1.12
        excluded = [tuple(v * scale for v in box) for box in exclude]
        found = _best_match(small, face, [side / max(face.shape) for side in sides], excluded)  # type: ignore[arg-type]
        if found is None or found[0] < _REFERENCE_MIN_SCORE:
            return None
        return found[0], tuple(v / scale for v in found[1])  # type: ignore[return-value]

    def _in_reference_order(self, found: dict[int, Box]) -> dict[int, Box]:
        """The same boxes, handed out again so that the characters stand left to right as in their references.

        Faces matched by look alone can swap between characters who look alike (twins, one picture used twice);
        the characters' places in the reference settle it. Characters of the same place keep their boxes.
        """
        placed = sorted(found, key=lambda number: self.references[number].x_center)
        if len({self.references[number].x_center for number in placed}) < len(placed):
            return found
        boxes = sorted(found.values(), key=lambda box: box[0] + box[2])
        return dict(zip(placed, boxes, strict=True))

    def _score(self, character: int, detection: _Detection, width: int) -> float | None:
        """How well a found face fits a character (higher is better); None if it cannot be theirs."""
        reference, track = self.references[character], self.tracks[character]
        overlap = _iou(track.box, detection.box) if track.box is not None else 0.0
        center = (detection.box[0] + detection.box[2]) / 2 / width
        score = 1.0 + overlap + 0.5 * (1.0 - abs(center - reference.x_center))
        if reference.embedding is not None and detection.embedding is not None:
            similarity = {
                number: float(other.embedding @ detection.embedding)
                for number, other in enumerate(self.references)
                if other.embedding is not None
            }
            # the face must look about as much like this character as like any other (look-alikes are left to the
            # left-to-right order), unless it is where they just were
            unlike = similarity[character] < max(similarity.values()) - _SIMILARITY_TIE
            if overlap < 0.3 and (unlike or similarity[character] < _MIN_SIMILARITY):
                return None
            score += similarity[character]
        return score

    def _in_order(self, pairs: Sequence[tuple[int, int]], detections: Sequence[_Detection]) -> bool:
        """Whether the (character, face) pairs stand left to right as the characters do in their references."""
        placed = [(self.references[c].x_center, (detections[d].box[0] + detections[d].box[2]) / 2) for c, d in pairs]
        for (ref_a, x_a), (ref_b, x_b) in itertools.combinations(placed, 2):
            if ref_a != ref_b and (ref_a < ref_b) != (x_a < x_b):
                return False
        return True


# ------------------------------------------------------------------------------------------------ decoding


@dataclass
class _Stream:
    frames: Iterator[np.ndarray]
    fps: float
    expected_frames: int | None
    container: Any


def _open_video(path: Path) -> _Stream:
    import av

    if not path.is_file():
        raise MediaError(path, "no such video file", _VIDEO_FIX)
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as error:
        raise MediaError(path, f"cannot be opened as video ({error})", _VIDEO_FIX) from None
    if not container.streams.video:
        container.close()
        raise MediaError(path, "has no video stream", _VIDEO_FIX)
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    rate = stream.average_rate or stream.guessed_rate or Fraction(25)
    fps = float(rate)
    expected = int(stream.frames) if stream.frames else None
    if expected is None and stream.duration is not None and stream.time_base is not None:
        expected = round(float(stream.duration * stream.time_base) * fps)
    return _Stream(_rgb_frames(container, stream), fps, expected, container)


def _rgb_frames(container: Any, stream: Any) -> Iterator[np.ndarray]:
    """Decoded frames as RGB uint8; 4:2:0 frames are converted by OpenCV, twice as fast as swscale here."""
    import cv2

    for frame in container.decode(stream):
        if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
            yield cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2RGB_I420)
        else:
            yield frame.to_ndarray(format="rgb24")


# ------------------------------------------------------------------------------------------------ measuring


@dataclass
class _Series:
    """Everything gathered per frame while decoding, by character where it is about a face."""

    mouth: list[list[float]]
    lab: list[list[np.ndarray | None]]
    frame_lab: list[np.ndarray] = field(default_factory=list)
    identity: list[list[tuple[int, float]]] = field(default_factory=list)  # (frame, similarity) per character
    diffs: list[float] = field(default_factory=list)  # mean |grey difference| to the previous frame
    flicker: list[float] = field(default_factory=list)  # per frame from the third: mean |2nd difference|


def _scan(
    stream: _Stream, references: Sequence[_Reference], extractors: Extractors, seams: set[int],
    window_frames: int, max_frames: int | None,
) -> tuple[_Series, _FaceTracker, int]:  # fmt: skip
    import cv2

    tracker = _FaceTracker(references, extractors.identity, stream.fps)
    series = _Series(mouth=[[] for _ in references], lab=[[] for _ in references])
    series.identity = [[] for _ in references]
    previous_small: np.ndarray | None = None
    blocks: list[np.ndarray] = []
    recent: list[float] = []
    count = 0
    for frame in stream.frames:
        if max_frames is not None and count >= max_frames:
            break
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        height, width = gray.shape
        # whole-number shrink factors: OpenCV's area resampling is several times faster for them
        shrink = max(1, round(max(height, width) / _SEARCH_SIDE))
        scale = 1.0 / shrink
        small = cv2.resize(gray, (width // shrink, height // shrink), interpolation=cv2.INTER_AREA)
        cut = False
        if previous_small is not None:
            diff = float(cv2.absdiff(small, previous_small).mean())
            series.diffs.append(diff)
            # a jump several times the recent motion is a cut: the faces must be searched again
            baseline = float(np.median(recent)) if recent else 0.0
            cut = len(recent) >= 3 and diff > max(8.0, 4.0 * baseline)
            recent = [*recent[-24:], diff]
        previous_small = small
        # 8x8-block means of the full-size luminance (area resampling by exactly 1/8 is the block mean)
        columns, rows = max(1, width // 8), max(1, height // 8)
        block = cv2.resize(gray[: rows * 8, : columns * 8], (columns, rows), interpolation=cv2.INTER_AREA)
        blocks = [*blocks[-2:], block.astype(np.float32)]
        if len(blocks) == 3:
            series.flicker.append(float(np.abs(blocks[2] - 2 * blocks[1] + blocks[0]).mean()))
        series.frame_lab.append(_mean_lab(frame))  # type: ignore[arg-type]
        boxes = tracker.update(count, frame, small, scale, cut=cut or count in seams)
        sample_identity = count % window_frames == window_frames // 2
        for number, box in enumerate(boxes):
            opening = extractors.mouth.measure(frame, box) if box is not None else None
            series.mouth[number].append(math.nan if opening is None else float(opening))
            series.lab[number].append(_region_lab(frame, _upper_face(box)) if box is not None else None)
            if sample_identity and box is not None and references[number].embedding is not None:
                crop = crop_face(frame, box)
                if crop is not None:
                    similarity = float(extractors.identity.embed(crop) @ references[number].embedding)
                    series.identity[number].append((count, similarity))
        count += 1
    return series, tracker, count


def _envelope(path: Path, fps: float, num_frames: int) -> np.ndarray:
    from codirector.media import load_audio

    signal = load_audio(path, 16_000)
    return smooth(frame_envelope(signal.samples, signal.sample_rate, fps, num_frames))


def _clean(value: float | None, digits: int = 4) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _lip_sync(
    references: Sequence[_Reference], mouths: Sequence[list[float]], fps: float, num_frames: int, max_lag: int
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
            "corr_by_lag": [_clean(v) for v in own],
            "best_lag": None if found is None else found[0],
            "r": None if found is None else _clean(found[1]),
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
        cross[character] = {character: _clean(found[1]), **{k: _clean(v) for k, v in others.items()}}
        rivals = [v for v in others.values() if v is not None]
        if rivals:
            margins.append(found[1] - max(rivals))
            right.append(float(found[1] > max(rivals)))
    several = len(envelopes) >= 2
    metrics = {
        "render.lip_sync_corr": _clean(float(np.mean(rs))) if rs else None,
        "render.lip_sync_offset_frames": float(round(float(np.mean(offsets)))) if offsets else None,
        # each character's own |lag|: +2 and -2 frames are both off, where their mean would read 0
        "render.lip_sync_offset_abs_frames": _clean(float(np.mean(np.abs(offsets)))) if offsets else None,
        "render.right_mouth": _clean(float(np.mean(right))) if several and right else None,
        "render.right_mouth_margin": _clean(float(np.mean(margins))) if several and margins else None,
    }
    return metrics, details, cross


def _windows(num_frames: int, window_frames: int, fps: float) -> list[tuple[int, int, float]]:
    """(first, end, centre time) of each curve window."""
    return [
        (start, min(num_frames, start + window_frames), (start + min(num_frames, start + window_frames)) / 2 / fps)
        for start in range(0, num_frames, window_frames)
    ]


@dataclass(frozen=True)
class _Curves:
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
                name: {"t_s": self.t_s, key: [_clean(v) for v in curve]} for name, curve in self.by_character.items()
            },
        }


def _color_curves(
    references: Sequence[_Reference], series: _Series, windows: Sequence[tuple[int, int, float]]
) -> tuple[_Curves, str]:
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
    return _Curves([round(centre, 3) for _, _, centre in windows], by_character), "face" if use_faces else "frame"


def _whole_lab(reference: _Reference) -> np.ndarray | None:
    from codirector.media import load_image

    if reference.character.reference_image is None:
        return None
    return _mean_lab(load_image(reference.character.reference_image))


def _identity_curves(
    references: Sequence[_Reference], series: _Series, windows: Sequence[tuple[int, int, float]]
) -> _Curves:
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
    return _Curves([round(centre, 3) for _, _, centre in windows], by_character)


def _seams(diffs: Sequence[float], seams: Sequence[int]) -> list[dict[str, float]]:
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


def _flicker(flicker: Sequence[float], seams: Sequence[int]) -> float | None:
    """Mean second difference, leaving out the two frames whose difference straddles a seam."""
    # flicker[j] is about frames j, j + 1, j + 2; a seam at s spoils j = s - 2 and s - 1
    spoiled = {j for seam in seams for j in (seam - 2, seam - 1)}
    values = [v for j, v in enumerate(flicker) if j not in spoiled]
    return float(np.mean(values)) if values else None


def measure_render(
    subject: RenderSubject, extractors: Extractors | None = None, *, max_frames: int | None = None,
    max_lag: int = 8,
) -> RenderMeasurement:  # fmt: skip
    """Measure a rendered video: lip sync, identity and colour drift, seams, flicker and the right mouth.

    Args:
        subject: the video, its characters (voices and reference pictures) and its sub-clip boundaries.
        extractors: the mouth and identity extractors; `Extractors.default()` when None.
        max_frames: decode at most this many frames (the metrics then cover only those).
        max_lag: the largest audio-to-mouth offset searched, in frames, each way.

    Returns:
        The ``render.*`` metrics (see the module's docstring) and their curves and breakdowns.

    Raises:
        MediaError: the video, a reference image or an audio track is missing or cannot be decoded.
    """
    extractors = extractors or Extractors.default()
    references = [_reference(character, extractors.identity) for character in subject.characters]
    stream = _open_video(Path(subject.video))
    try:
        fps = stream.fps
        expected = stream.expected_frames or 0
        if max_frames is not None:
            expected = min(expected, max_frames) if expected else max_frames
        window_s = max(1.0, expected / fps / 60.0) if expected else 1.0
        window_frames = max(1, round(window_s * fps))
        series, tracker, num_frames = _scan(
            stream, references, extractors, set(subject.seam_frames), window_frames, max_frames
        )
    finally:
        stream.container.close()
    if num_frames == 0:
        raise MediaError(subject.video, "contains no video frames", _VIDEO_FIX)

    windows = _windows(num_frames, window_frames, fps)
    lip_metrics, lip_details, cross = _lip_sync(references, series.mouth, fps, num_frames, max_lag)
    identity = _identity_curves(references, series, windows)
    color, color_region = _color_curves(references, series, windows)
    seam_rows = _seams(series.diffs, subject.seam_frames)
    metrics: dict[str, float | None] = {
        **{key: value for key, value in lip_metrics.items() if key.startswith("render.lip_sync")},
        "render.identity_similarity": _clean(identity.mean()),
        "render.identity_drift_per_min": _clean(identity.slope_per_minute(lambda v: 1.0 - v)),
        "render.color_drift_de": _clean(color.last()),
        "render.color_drift_per_min": _clean(color.slope_per_minute()),
        "render.seam_jump": max(row["jump"] for row in seam_rows) if seam_rows else None,
        "render.seam_jump_mean": _clean(float(np.mean([row["jump"] for row in seam_rows]))) if seam_rows else None,
        "render.flicker": _clean(_flicker(series.flicker, subject.seam_frames)),
        "render.right_mouth": lip_metrics["render.right_mouth"],
        "render.right_mouth_margin": lip_metrics["render.right_mouth_margin"],
        "render.num_frames_measured": float(num_frames),
        "render.duration_s": round(num_frames / fps, 4),
    }
    details: dict[str, Any] = {
        "render.identity_curve": identity.as_json("similarity"),
        "render.color_curve": {**color.as_json("delta_e"), "region": color_region},
        "render.lip_sync": lip_details,
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
        "render.extractors": {"mouth": extractors.mouth.name, "identity": extractors.identity.name},
        "render.fps": fps,
    }
    return RenderMeasurement(metrics, details)
