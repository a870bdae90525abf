"""The canvas a preview animates, and where each character's face and mouth are on it.

The canvas is what a diffusion backend would condition on (KlingAvatar 2.0 sec. 3.1: the blueprint keeps "content and
layout" of the references): the scene image with the characters at their boxes; else the one reference; else the
references side by side. Faces are found once per image with `codirector.faces.detect_face` (slow and robust) and
cached by the image's content; the mouth is then placed inside the face box and refined on the darkest row between
the lips.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from codirector.faces import Box, FaceDetection, detect_face
from codirector.generator.backend import CharacterCondition
from codirector.schemas.vocab import Subject

__all__ = ["Layout", "MouthShape", "Placement", "compose_layout", "detect_face_cached", "face_shape", "with_backdrop"]

logger = logging.getLogger(__name__)

_MAX_CANVAS_HEIGHT = 720  # references side by side are brought to one height, at most this
_FACE_CACHE: OrderedDict[bytes, FaceDetection | None] = OrderedDict()
_FACE_CACHE_SIZE = 64


@dataclass(frozen=True)
class MouthShape:
    """Where the mouth sits inside a face box, as shares of the box, so it carries over to a box found in a frame.

    Attributes:
        center_x: mouth centre, share of the box width from its left edge.
        center_y: the line between the lips, share of the box height from its top edge.
        half_width: half the mouth width, share of the box width.
        max_opening: the widest jaw drop, share of the box height.
        jaw_length: from the lip line to the chin, share of the box height.
    """

    center_x: float
    center_y: float
    half_width: float
    max_opening: float
    jaw_length: float


@dataclass(frozen=True)
class Placement:
    """One character on the canvas.

    Attributes:
        id: the character's id.
        face_box: the face, (x0, y0, x1, y1) in canvas pixels; may reach past the canvas for a face cut by its edge.
        subject: human or animal (a cat's mouth sits lower and is narrower in its face box).
        mouth: the mouth inside `face_box`.
        detected: whether a detector found the face (else it is a guess from the image or region).
        region: the character's region on the canvas in pixels (their reference, or their scene box).
    """

    id: str
    face_box: Box
    subject: Subject
    mouth: MouthShape
    detected: bool
    region: Box


@dataclass(frozen=True)
class Layout:
    """The composed canvas, RGB uint8 (height, width, 3), and where the characters are on it."""

    canvas: np.ndarray
    placements: tuple[Placement, ...]

    def placement(self, character_id: str) -> Placement | None:
        return next((p for p in self.placements if p.id == character_id), None)


def _digest(image: np.ndarray) -> bytes:
    return hashlib.blake2b(
        np.ascontiguousarray(image).data, digest_size=16, person=str(image.shape).encode()[:16]
    ).digest()


def detect_face_cached(image: np.ndarray) -> FaceDetection | None:
    """`detect_face`, remembered by image content: a reference is searched once per process, not once per request."""
    key = _digest(image)
    if key in _FACE_CACHE:
        _FACE_CACHE.move_to_end(key)
        return _FACE_CACHE[key]
    found = detect_face(image)
    _FACE_CACHE[key] = found
    if len(_FACE_CACHE) > _FACE_CACHE_SIZE:
        _FACE_CACHE.popitem(last=False)
    return found


def _square_up(box: Box, width: int, height: int) -> Box:
    """Undo `detect_face`'s clipping: Haar windows are square, so a box cut by the image edge is regrown past it."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if w > h * 1.05:
        y0, y1 = (y1 - w, y1) if y0 <= 0.5 else (y0, y0 + w) if y1 >= height - 0.5 else (y0, y1)
    elif h > w * 1.05:
        x0, x1 = (x1 - h, x1) if x0 <= 0.5 else (x0, x0 + h) if x1 >= width - 0.5 else (x0, x1)
    return (x0, y0, x1, y1)


# Mouth inside a Haar face box: a frontal human box runs from the brows to the chin, the lips meet at about 0.78 of
# its height; a cat box holds the whole head with the ears, its mouth under the nose at about 0.92
# (examples/cat). Only human lips are searched: the darkest line under a cat's nose is the nose itself.
_DEFAULT_MOUTH = {
    Subject.HUMAN: MouthShape(center_x=0.5, center_y=0.78, half_width=0.19, max_opening=0.11, jaw_length=0.26),
    Subject.ANIMAL: MouthShape(center_x=0.5, center_y=0.92, half_width=0.11, max_opening=0.09, jaw_length=0.12),
}
_SEARCH_BAND = {Subject.HUMAN: (0.70, 0.86)}


def face_shape(gray: np.ndarray, box: Box, subject: Subject) -> MouthShape:
    """Place the mouth in a face box, moving a human's lip line onto the darkest row of the band where lips can be.

    The gap between closed lips is the darkest horizontal line of the lower face in nearly every portrait; if no row
    stands out (a beard, a blur), or the face is an animal's, the anatomical default is kept.
    """
    default = _DEFAULT_MOUTH.get(subject, _DEFAULT_MOUTH[Subject.HUMAN])
    if subject not in _SEARCH_BAND:
        return default
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    lo, hi = _SEARCH_BAND[subject]
    cx = x0 + default.center_x * w
    cols = slice(
        max(0, int(cx - 0.6 * default.half_width * w)), min(gray.shape[1], int(cx + 0.6 * default.half_width * w) + 1)
    )
    rows = np.arange(max(0, int(y0 + lo * h)), min(gray.shape[0], int(y0 + hi * h) + 1))
    if len(rows) < 5 or cols.stop - cols.start < 3:
        return default
    profile = gray[rows[0] : rows[-1] + 1, cols].astype(np.float32).mean(axis=1)
    profile = np.convolve(profile, np.ones(3) / 3, mode="same")[1:-1]
    rows = rows[1:-1]
    darkest = int(np.argmin(profile))
    if np.median(profile) - profile[darkest] < 4.0:  # no clear lip line (a beard, a blur): keep the default
        return default
    center_y = (rows[darkest] - y0) / h
    return dataclasses.replace(default, center_y=float(center_y))


def _guess_box(region: Box) -> Box:
    """A face where one is likely in a region with no detection: centred, near the top (head-and-shoulders framing)."""
    x0, y0, x1, y1 = region
    side = 0.3 * min(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, y0 + 0.12 * (y1 - y0) + side / 2
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def _place(character_id: str, canvas: np.ndarray, gray: np.ndarray, region: Box) -> Placement:
    """Detect the face inside `region` of the canvas and build the character's placement."""
    height, width = canvas.shape[:2]
    rx0, ry0, rx1, ry1 = (round(v) for v in region)
    rx0, ry0, rx1, ry1 = max(0, rx0), max(0, ry0), min(width, rx1), min(height, ry1)
    crop = np.ascontiguousarray(canvas[ry0:ry1, rx0:rx1])
    found = detect_face_cached(crop) if crop.shape[0] >= 24 and crop.shape[1] >= 24 else None
    if found is None:
        logger.info("no face found for character %r; guessing it at the top of its region", character_id)
        box, subject = _guess_box((rx0, ry0, rx1, ry1)), Subject.HUMAN
    else:
        local = _square_up(found.box, crop.shape[1], crop.shape[0])
        box, subject = (local[0] + rx0, local[1] + ry0, local[2] + rx0, local[3] + ry0), found.subject
    return Placement(
        id=character_id,
        face_box=box,
        subject=subject,
        mouth=face_shape(gray, box, subject),
        detected=found is not None,
        region=(float(rx0), float(ry0), float(rx1), float(ry1)),
    )


def compose_layout(characters: Sequence[CharacterCondition], scene: np.ndarray | None) -> Layout:
    """Compose the canvas and place every character on it.

    With a scene, the scene is the canvas and a character stands in their `region_xyxy_norm` (characters without
    one share the scene in equal vertical strips, in their order). Without one, the references stand side by side
    at a common height, in the characters' order; a character with neither is left off (no pixels to animate).

    Raises:
        ValueError: there is no scene and no character has a reference image.
    """
    if scene is not None:
        canvas = np.ascontiguousarray(scene[..., :3])
        height, width = canvas.shape[:2]
        regions = {}
        for index, character in enumerate(characters):
            if character.region_xyxy_norm is not None:
                x0, y0, x1, y1 = character.region_xyxy_norm
                regions[character.id] = (x0 * width, y0 * height, x1 * width, y1 * height)
            else:  # no box: characters share the scene in equal strips, in their order
                strip = width / len(characters)
                regions[character.id] = (index * strip, 0.0, (index + 1) * strip, float(height))
    else:
        references = [(c.id, c.reference) for c in characters if c.reference is not None]
        if not references:
            raise ValueError("the preview backend needs a scene image or at least one character reference image")
        common = min(_MAX_CANVAS_HEIGHT, max(image.shape[0] for _, image in references))
        parts, regions, left = [], {}, 0.0
        for character_id, image in references:
            scale = common / image.shape[0]
            part_width = max(1, round(image.shape[1] * scale))
            interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
            parts.append(
                image[..., :3]
                if scale == 1
                else cv2.resize(image[..., :3], (part_width, common), interpolation=interpolation)
            )
            regions[character_id] = (left, 0.0, left + part_width, float(common))
            left += part_width
        canvas = (
            np.ascontiguousarray(np.concatenate(parts, axis=1)) if len(parts) > 1 else np.ascontiguousarray(parts[0])
        )
    gray = cv2.cvtColor(canvas, cv2.COLOR_RGB2GRAY)
    placements = tuple(_place(character_id, canvas, gray, region) for character_id, region in regions.items())
    return Layout(canvas=canvas, placements=placements)


def with_backdrop(canvas: np.ndarray, pad_x: int, pad_y: int) -> np.ndarray:
    """The canvas inside a blurred, stretched copy of itself, `pad_x` and `pad_y` pixels wider on each side.

    A crop that leaves the canvas (a wide shot of a portrait, a pan past its edge) then shows soft continuation of
    the picture instead of black bars; the seam is feathered over 2% of the canvas.
    """
    height, width = canvas.shape[:2]
    long_side = max(height, width)
    tiny_size = (max(4, round(48 * width / long_side)), max(4, round(48 * height / long_side)))
    tiny = cv2.GaussianBlur(cv2.resize(canvas, tiny_size, interpolation=cv2.INTER_AREA), (0, 0), 1.2)
    stage = cv2.resize(tiny, (width + 2 * pad_x, height + 2 * pad_y), interpolation=cv2.INTER_LINEAR)
    feather = max(2.0, 0.02 * min(height, width))
    ramp_x = np.minimum(np.arange(width) + 1.0, width - np.arange(width)) / feather
    ramp_y = np.minimum(np.arange(height) + 1.0, height - np.arange(height)) / feather
    alpha = np.clip(np.minimum(ramp_y[:, None], ramp_x[None, :]), 0.0, 1.0).astype(np.float32)[..., None]
    inner = stage[pad_y : pad_y + height, pad_x : pad_x + width].astype(np.float32)
    stage[pad_y : pad_y + height, pad_x : pad_x + width] = (alpha * canvas + (1 - alpha) * inner + 0.5).astype(np.uint8)
    return stage
