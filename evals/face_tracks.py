"""Finding and following each character's face through the video.

Searches look for each character's reference face itself at every size, then run Haar cascades (frontal, and
profiles while faces are missing) for the characters not found, and give each face to at most one character by how
much it looks like the character's reference, where the character was a moment ago, and the characters'
left-to-right order in their references. Between searches each face is followed by template matching.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from codirector.evals.extractors import Box, FaceEmbedder, crop_face
from codirector.evals.face_references import Reference, pixels
from codirector.faces import iou
from codirector.schemas.vocab import Subject

__all__ = ["FaceTracker"]

_MIN_FACE = 16  # smallest face searched, pixels of the grey search copy (a wide 480p two-shot has faces of about 27)
_TRACK_REACH = 0.35  # how far a face may move between frames, as a share of its side
_TRACK_MIN_SCORE = 0.5  # normalised cross-correlation below which the template has lost the face
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


@dataclass
class _Detection:
    box: Box  # frame pixels
    votes: int
    embedding: np.ndarray | None = None


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


class FaceTracker:
    """Follows each character's face through the video: sparse searches, template matching in between.

    A search runs the Haar cascades (frontal, then profile both ways while faces are missing) and gives each face
    to at most one character; a character the cascades miss is then looked for by their reference face itself,
    at every size (a profile the profile cascade misses). Between searches each face is followed by its template
    at three nearby sizes, so pans and zooms keep it.
    """

    def __init__(self, references: Sequence[Reference], embedder: FaceEmbedder, fps: float) -> None:
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
                twin = next((d for d in found if iou(d.box, box) > 0.3), None)
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
            d for d in self._detect(small, scale, wanted=len(missing)) if all(iou(d.box, t) <= 0.3 for t in taken)
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
        x0, y0, x1, y1 = pixels(tuple(v * scale for v in box), small.shape)  # type: ignore[arg-type]
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
        overlap = iou(track.box, detection.box) if track.box is not None else 0.0
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
