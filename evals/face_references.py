"""A character's reference face, and the face colour measured on it and on the video's frames.

The reference picture gives what the video is held against: the face's look (a grey patch the tracker searches
for), its identity embedding, its mean CIE L*a*b* colour, its kind (human or animal), and where the character
stands, left to right. The colour helpers measure a face's upper half, so mouths and beards stay out of it.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from codirector.errors import MediaError
from codirector.evals.extractors import Box, FaceEmbedder, crop_face
from codirector.schemas.vocab import Subject

if TYPE_CHECKING:
    from codirector.evals.render_metrics import CharacterTrack

__all__ = ["Reference", "load_reference", "mean_lab", "pixels", "region_lab", "upper_face"]

logger = logging.getLogger(__name__)

_REFERENCE_SIDE = 96  # the reference face is matched at most this large, pixels


@dataclass(frozen=True)
class Reference:
    """What a character's reference picture gives: the face's look, embedding and colour, and its kind."""

    character: CharacterTrack
    x_center: float  # where the character stands, 0 (left) to 1 (right), for the left-to-right order
    embedding: np.ndarray | None
    lab: np.ndarray | None  # mean L*a*b* of the face's upper half
    face_gray: np.ndarray | None  # the face box, grey, at most _REFERENCE_SIDE pixels on its long side
    subject: Subject


def upper_face(box: Box) -> Box:
    """The upper middle of a face box: forehead, eyes and cheeks, without the mouth, beard or background."""
    x0, y0, x1, y1 = box
    width, height = x1 - x0, y1 - y0
    return (x0 + 0.2 * width, y0 + 0.15 * height, x1 - 0.2 * width, y0 + 0.6 * height)


def mean_lab(rgb: np.ndarray) -> np.ndarray | None:
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


def pixels(box: Box, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """A box rounded to whole pixels and clipped to an image of `shape`."""
    x0, y0, x1, y1 = (round(v) for v in box)
    return max(0, x0), max(0, y0), min(shape[1], x1), min(shape[0], y1)


def region_lab(frame: np.ndarray, box: Box) -> np.ndarray | None:
    """The mean L*a*b* colour of a box of an RGB frame; None if the box holds no pixel."""
    x0, y0, x1, y1 = pixels(box, frame.shape)
    return mean_lab(frame[y0:y1, x0:x1]) if x1 > x0 and y1 > y0 else None


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


def load_reference(character: CharacterTrack, embedder: FaceEmbedder) -> Reference:
    """What `character`'s reference picture gives; only their place when there is no picture or no face in it."""
    import cv2

    from codirector.media import load_image

    box_norm = character.reference_box_xyxy_norm
    x_center = 0.5 if box_norm is None else (box_norm[0] + box_norm[2]) / 2
    if character.reference_image is None:
        return Reference(character, x_center, None, None, None, Subject.HUMAN)
    path = Path(character.reference_image)
    if not path.is_file():
        raise MediaError(path, "no such reference image", "Check the path of the character's reference image.")
    found = _reference_face(str(path.resolve()), path.stat().st_mtime_ns, None if box_norm is None else tuple(box_norm))
    if found is None:
        logger.info("%s: no face found in %s; identity and colour are measured against the video's start",
                    character.id, path)  # fmt: skip
        return Reference(character, x_center, None, None, None, Subject.HUMAN)
    box, subject = found
    image = load_image(path)
    crop = crop_face(image, box)
    embedding = None if crop is None else embedder.embed(crop)
    x0, y0, x1, y1 = pixels(box, image.shape)
    face_gray = cv2.cvtColor(np.ascontiguousarray(image[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
    if max(face_gray.shape) > _REFERENCE_SIDE:
        shrink = _REFERENCE_SIDE / max(face_gray.shape)
        face_gray = cv2.resize(face_gray, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
    return Reference(character, x_center, embedding, region_lab(image, upper_face(box)), face_gray, subject)
