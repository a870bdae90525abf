"""Finding each character in a frame the preview did not draw itself (an anchor keyframe, a transition's neighbours).

The reference face of each character is searched in the frame by normalized cross-correlation over a ladder of
sizes, so a hit is already an identity match (the role of KlingAvatar 2.0 sec. 3.3's reference cross-attention);
where that fails, one quick Haar pass proposes faces and the one most like the reference is taken; where that fails
too, the character is put where the canvas has them, as if the frame showed the whole canvas.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from codirector.faces import Box, haar_cascade, iou
from codirector.generator.backends.preview.layout import Layout, Placement
from codirector.schemas.vocab import Subject

__all__ = ["FaceInFrame", "canvas_region", "head_and_shoulders", "locate_characters", "region_mask"]

logger = logging.getLogger(__name__)

_WORK_HEIGHT = 180  # frames are searched at this height: faces of 14 px and up are still found
_MIN_TEMPLATE = 14
_LADDER = 1.16  # ratio between searched face sizes
_VERIFY_SIDE = 48
_VERIFY_ACCEPT = 0.45
_DETECTOR_ACCEPT = 0.25  # a detected face must look at least this much like the reference (32 px NCC)


@dataclass(frozen=True)
class FaceInFrame:
    """A character's face in a frame: its box in frame pixels, how it was found, and how much it looks like them."""

    box: Box
    score: float
    method: Literal["template", "detector", "canvas"]


def _face_patch(gray: np.ndarray, placement: Placement) -> tuple[np.ndarray, Box]:
    """The face in the canvas, clipped to it, and the share of the patch the face box covers (for mapping back)."""
    height, width = gray.shape
    x0, y0, x1, y1 = placement.face_box
    cx0, cy0, cx1, cy1 = max(0, int(x0)), max(0, int(y0)), min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1)))
    patch = gray[cy0:cy1, cx0:cx1]
    pw, ph = max(1, cx1 - cx0), max(1, cy1 - cy0)
    inside = ((x0 - cx0) / pw, (y0 - cy0) / ph, (x1 - cx0) / pw, (y1 - cy0) / ph)  # face box in patch shares
    return patch, inside


def _to_face_box(patch_box: Box, inside: Box) -> Box:
    x0, y0, x1, y1 = patch_box
    w, h = x1 - x0, y1 - y0
    return (x0 + inside[0] * w, y0 + inside[1] * h, x0 + inside[2] * w, y0 + inside[3] * h)


def _acceptance(area: float) -> float:
    """The score a match of a template of `area` pixels must reach: small templates correlate by chance.

    On the examples and scikit-image's photos, a wrong face or background reached 0.65-0.72 with 14-22 px templates
    and under 0.55 with 50 px ones, while true faces scored 0.65-0.97 at any size.
    """
    return 0.5 + 5.0 / np.sqrt(max(area, 1.0))


def _template_candidates(small: np.ndarray, patch: np.ndarray) -> list[tuple[float, float, Box]]:
    """The best match of `patch` at each size of the ladder, and the runner-up away from it.

    Faces larger than the frame (an extreme close-up) are matched by the part of the face that fits, centred.

    Returns:
        (margin over the acceptance score, score, face-patch box in `small` pixels) triples.
    """
    height, width = small.shape
    aspect = patch.shape[1] / max(1, patch.shape[0])
    found: list[tuple[float, float, Box]] = []
    if np.ptp(patch) < 8:  # a flat patch matches anything
        return found
    size = float(_MIN_TEMPLATE)
    while size <= 2.2 * height:
        th, tw = round(size), max(4, round(size * aspect))
        size *= _LADDER
        template = cv2.resize(patch, (tw, th), interpolation=cv2.INTER_AREA)
        ch, cw = min(th, height), min(tw, width)  # the centred part of the face that fits in the frame
        oy, ox = (th - ch) // 2, (tw - cw) // 2
        template = template[oy : oy + ch, ox : ox + cw]
        scores = cv2.matchTemplate(small, template, cv2.TM_CCOEFF_NORMED)
        needed = _acceptance(ch * cw)
        for _ in range(2):
            _, best, _, (x, y) = cv2.minMaxLoc(scores)
            if not np.isfinite(best):
                break
            found.append(
                (
                    float(best) - needed,
                    float(best),
                    (float(x - ox), float(y - oy), float(x - ox + tw), float(y - oy + th)),
                )
            )
            scores[max(0, y - ch // 2) : y + ch // 2 + 1, max(0, x - cw // 2) : x + cw // 2 + 1] = -1.0
    return found


def _detector_candidates(small: np.ndarray, subject: Subject) -> list[Box]:
    """One quick Haar pass (`codirector.faces.detect_face` runs 16-24 and takes 100-300 ms; this takes a few)."""
    name = "haarcascade_frontalcatface.xml" if subject is Subject.ANIMAL else "haarcascade_frontalface_default.xml"
    boxes, _ = haar_cascade(name).detectMultiScale2(small, scaleFactor=1.1, minNeighbors=4, minSize=(16, 16))
    return [
        (float(x), float(y), float(x + w), float(y + h)) for x, y, w, h in np.asarray(boxes).reshape(-1, 4).tolist()
    ]


def _verify(gray: np.ndarray, box: Box, patch: np.ndarray) -> float:
    """Fine-detail likeness of the frame inside `box` and the reference patch: both at 48 px, high-passed.

    A chance match of blobs at the search scale does not survive this (0.07-0.36 on the examples' false matches)
    while a true face keeps its eyes, nostrils and lip line (0.6-0.92).
    """
    x0, y0, x1, y1 = box
    side = _VERIFY_SIDE
    shrink = max(x1 - x0, y1 - y0) / side
    if shrink > 1.5:  # a shrinking warp samples, it does not average: blur first, as an area resize would
        gray = cv2.GaussianBlur(gray, (0, 0), 0.5 * shrink)
    to_box = np.array([[(x1 - x0) / side, 0, x0], [0, (y1 - y0) / side, y0]], np.float32)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    crop = cv2.warpAffine(gray, to_box, (side, side), flags=flags, borderMode=cv2.BORDER_REFLECT)
    reference = cv2.resize(patch, (side, side), interpolation=cv2.INTER_AREA)
    crop, reference = (image.astype(np.float32) for image in (crop, reference))
    crop -= cv2.GaussianBlur(crop, (0, 0), 4.0)
    reference -= cv2.GaussianBlur(reference, (0, 0), 4.0)
    return float(cv2.matchTemplate(crop, reference, cv2.TM_CCOEFF_NORMED)[0, 0])


def _likeness(small: np.ndarray, box: Box, patch: np.ndarray) -> float:
    x0, y0, x1, y1 = (round(v) for v in box)
    crop = small[max(0, y0) : y1, max(0, x0) : x1]
    if crop.size == 0 or np.ptp(patch) < 8:
        return 0.0
    resized = cv2.resize(crop, (patch.shape[1], patch.shape[0]), interpolation=cv2.INTER_AREA)
    return float(cv2.matchTemplate(resized, patch, cv2.TM_CCOEFF_NORMED)[0, 0])


def _canvas_box(layout: Layout, placement: Placement, width: int, height: int) -> Box:
    """Where the face would be if the frame showed the whole canvas, fitted and centred (a wide shot)."""
    canvas_h, canvas_w = layout.canvas.shape[:2]
    scale = min(width / canvas_w, height / canvas_h)
    ox, oy = (width - scale * canvas_w) / 2, (height - scale * canvas_h) / 2
    x0, y0, x1, y1 = placement.face_box
    return (ox + scale * x0, oy + scale * y0, ox + scale * x1, oy + scale * y1)


def locate_characters(frame: np.ndarray, layout: Layout) -> dict[str, FaceInFrame]:
    """Find every placed character's face in an RGB frame, one face per character.

    Args:
        frame: RGB uint8 (height, width, 3).
        layout: the canvas the characters' faces come from.

    Returns:
        Each placed character's face, by id; `method` says whether it was found by identity ("template"), by a
        face detector ("detector") or only assumed from the canvas ("canvas", score 0).
    """
    height, width = frame.shape[:2]
    factor = min(1.0, _WORK_HEIGHT / height)
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA) if factor < 1 else gray
    canvas_gray = cv2.cvtColor(layout.canvas, cv2.COLOR_RGB2GRAY)
    patches = {p.id: _face_patch(canvas_gray, p) for p in layout.placements}

    # Greedy assignment, best score first, one face per character and no two characters on one face.
    pairs = [
        (margin, score, placement.id, box)
        for placement in layout.placements
        for margin, score, box in _template_candidates(small, patches[placement.id][0])
    ]
    result: dict[str, FaceInFrame] = {}
    for margin, score, character_id, box in sorted(pairs, key=lambda pair: -pair[0]):
        if margin < 0:
            break
        if character_id in result or any(iou(box, f.box) > 0.2 for f in result.values()):
            continue
        if _verify(gray, tuple(v / factor for v in box), patches[character_id][0]) < _VERIFY_ACCEPT:
            continue
        result[character_id] = FaceInFrame(box, score, "template")

    for placement in layout.placements:
        if placement.id in result:
            continue
        patch = cv2.resize(patches[placement.id][0], (32, 32), interpolation=cv2.INTER_AREA)
        proposals = [
            (_likeness(small, box, patch), box)
            for box in _detector_candidates(small, placement.subject)
            if not any(iou(box, f.box) > 0.2 for f in result.values())
        ]
        if proposals and (best := max(proposals))[0] >= _DETECTOR_ACCEPT:
            score, box = best
            result[placement.id] = FaceInFrame(box, score, "detector")

    faces: dict[str, FaceInFrame] = {}
    for placement in layout.placements:
        found = result.get(placement.id)
        if found is None:
            logger.debug("character %r not found in the frame; assuming the canvas layout", placement.id)
            faces[placement.id] = FaceInFrame(_canvas_box(layout, placement, width, height), 0.0, "canvas")
            continue
        x0, y0, x1, y1 = found.box
        box: Box = (x0 / factor, y0 / factor, x1 / factor, y1 / factor)
        if found.method == "template":  # the template was the clipped face patch: grow it back to the face box
            box = _to_face_box(box, patches[placement.id][1])
        faces[placement.id] = FaceInFrame(box, found.score, found.method)
    return faces


def _soft(size: tuple[int, int], draw: Callable[[np.ndarray, float], None], softness_px: float) -> np.ndarray:
    """A float32 0-1 mask of `size` (height, width): shapes drawn small by `draw(canvas, factor)`, blurred, resized."""
    height, width = size
    factor = min(1.0, 256 / max(height, width))  # drawn small and smooth, then brought to size
    small = np.zeros((max(1, round(height * factor)), max(1, round(width * factor))), np.float32)
    draw(small, factor)
    small = cv2.GaussianBlur(small, (0, 0), max(1.0, softness_px * factor))
    return np.clip(cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)


def head_and_shoulders(size: tuple[int, int], face_box: Box) -> np.ndarray:
    """A soft mask of a person (or animal) from their face box: a head ellipse and a shoulder ellipse below it."""
    x0, y0, x1, y1 = face_box
    w, h = x1 - x0, y1 - y0

    def draw(canvas: np.ndarray, factor: float) -> None:
        cx, cy, fw, fh, bottom = (x0 + x1) / 2 * factor, (y0 + y1) / 2 * factor, w * factor, h * factor, y1 * factor
        cv2.ellipse(canvas, (int(cx), int(cy)), (int(0.68 * fw) + 1, int(0.8 * fh) + 1), 0, 0, 360, 1.0, -1)
        cv2.ellipse(
            canvas, (int(cx), int(bottom + 1.35 * fh)), (int(1.6 * fw) + 1, int(1.3 * fh) + 1), 0, 0, 360, 1.0, -1
        )

    return _soft(size, draw, 0.08 * max(w, 4.0))


def region_mask(size: tuple[int, int], region: Box) -> np.ndarray:
    """A soft mask of a box (a character's region when their face is not found)."""
    x0, y0, x1, y1 = region

    def draw(canvas: np.ndarray, factor: float) -> None:
        cv2.rectangle(canvas, (int(x0 * factor), int(y0 * factor)), (int(x1 * factor), int(y1 * factor)), 1.0, -1)

    return _soft(size, draw, 0.03 * max(x1 - x0, 4.0))


def canvas_region(layout: Layout, placement: Placement, width: int, height: int) -> Box:
    """A character's canvas region where it would be if the frame showed the whole canvas."""
    return _canvas_box(layout, dataclasses.replace(placement, face_box=placement.region), width, height)
