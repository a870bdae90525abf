"""Local warps that make a still face talk and move: the jaw drop of an open mouth, and the head on its neck.

Both work in place on a small region of an RGB image with `cv2.remap`, so their cost follows the size of the face,
not of the frame. The mouth warp is exact where it matters: its backward map is built from a monotone row profile
(upper lip up, lips apart, lower lip and chin down, neck still), so lips never fold over each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from codirector.faces import Box
from codirector.generator.backends.preview.layout import MouthShape
from codirector.generator.backends.preview.performance import HeadPose

__all__ = ["HeadRig", "MouthGeometry", "mouth_geometry", "move_head", "open_mouth", "reset_mouth"]

_MOUTH_INSIDE = np.array([58.0, 18.0, 24.0], np.float32)  # the dark red of an open mouth, RGB, if no lips are seen
_UPPER_LIP_SHARE = 0.2  # of the opening: the upper lip rises a little, the jaw carries the rest


@dataclass(frozen=True)
class MouthGeometry:
    """A mouth in image pixels: the lip line's centre, half its width, the face height, widest opening, jaw length."""

    center_x: float
    center_y: float
    half_width: float
    face_height: float
    max_opening: float
    jaw_length: float

    def lerp(self, other: MouthGeometry, share: float) -> MouthGeometry:
        mix = [float((1 - share) * a + share * b) for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)]
        return MouthGeometry(*mix)

    def as_tuple(self) -> tuple[float, float, float, float, float, float]:
        return (self.center_x, self.center_y, self.half_width, self.face_height, self.max_opening, self.jaw_length)


def mouth_geometry(face_box: Box, shape: MouthShape) -> MouthGeometry:
    """The mouth of a face box in pixels, from where the mouth sits in the character's reference face."""
    x0, y0, x1, y1 = face_box
    width, height = x1 - x0, y1 - y0
    return MouthGeometry(
        center_x=x0 + shape.center_x * width,
        center_y=y0 + shape.center_y * height,
        half_width=shape.half_width * width,
        face_height=height,
        max_opening=shape.max_opening * height,
        jaw_length=shape.jaw_length * height,
    )


def _window(offsets: np.ndarray, plateau: float, reach: float) -> np.ndarray:
    """1 within `plateau` of zero, a raised cosine down to 0 at `reach`."""
    share = np.clip((np.abs(offsets) - plateau) / max(reach - plateau, 1e-6), 0.0, 1.0)
    return (0.5 + 0.5 * np.cos(np.pi * share)).astype(np.float32)


def open_mouth(image: np.ndarray, mouth: MouthGeometry, opening: float, roundness: float) -> None:
    """Open a mouth in place: drop the lower lip and jaw, spread or round the lips, and darken the gap.

    Args:
        image: RGB uint8 (height, width, 3), changed in place around the mouth.
        mouth: where the mouth is.
        opening: 0 (closed, nothing changes) to 1 (the widest talking opening); up to 1.5 with a high gain.
        roundness: 0 spreads the lips wide (i, e), 1 rounds them (o, u).
    """
    gap = opening * mouth.max_opening  # pixels between the lips at the centre
    fh, hw = mouth.face_height, mouth.half_width
    lip = 0.045 * fh
    if gap < 0.5 or lip < 0.6:  # closed, or a face too small to show a mouth
        return
    height, width = image.shape[:2]
    neck = mouth.jaw_length + 0.34 * fh
    x0, x1 = max(0, int(mouth.center_x - 2.1 * hw)), min(width, int(np.ceil(mouth.center_x + 2.1 * hw)) + 1)
    y0, y1 = max(0, int(mouth.center_y - 0.33 * fh)), min(height, int(np.ceil(mouth.center_y + neck)) + 1)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return
    dx = np.arange(x0, x1, dtype=np.float32) - mouth.center_x
    dy = np.arange(y0, y1, dtype=np.float32) - mouth.center_y

    # Rows, as output row -> source row: the upper lip rises by a fifth of the gap, the lips part around the line
    # between them (which is stretched, then darkened), the lower lip and chin drop by the rest, the neck stays.
    up, down = _UPPER_LIP_SHARE * gap, (1 - _UPPER_LIP_SHARE) * gap
    out_rows = [-0.32 * fh, -lip - up, -up, down, down + lip, mouth.jaw_length + down, neck]
    src_rows = [-0.32 * fh, -lip, -0.3, 0.3, lip, mouth.jaw_length, neck]
    row_shift = (np.interp(dy, out_rows, src_rows) - dy).astype(np.float32)
    across = _window(dx, 0.3 * hw, 2.0 * hw)  # the jaw drops fully under the mouth, less towards the cheeks
    map_y = (dy[:, None] + mouth.center_y) + across[None, :] * row_shift[:, None]

    # Columns: round vowels pull the corners in (sample from further out), bright ones push them out.
    squeeze = 0.45 * (roundness - 0.5) * min(opening, 1.0)
    near_lips = _window(dy - 0.3 * gap, lip + 0.5 * gap, lip + 0.5 * gap + 0.12 * fh)
    map_x = (dx[None, :] + mouth.center_x) + squeeze * dx[None, :] * near_lips[:, None] * across[None, :]

    map_x, map_y = (np.asarray(m - o, dtype=np.float32) for m, o in ((map_x, x0), (map_y, y0)))
    patch = cv2.remap(image[y0:y1, x0:x1], map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    # The gap between the lips: an ellipse as wide as the mouth (narrower when rounded), in the darkest tone of the
    # lips (so a grey photo gets a grey mouth, a cat a dark one), lighter at the top where the upper teeth show.
    semi_x = hw * (0.9 - 0.3 * roundness)
    semi_y = 0.5 * gap
    across_gap = dy[:, None] - (down - up) / 2
    ellipse = (dx[None, :] / semi_x) ** 2 + (across_gap / semi_y) ** 2
    inside = np.clip((1.0 - ellipse) * min(semi_x, semi_y) / 1.5, 0.0, 1.0) * min(1.0, gap / 3.0)
    upper = np.clip(-across_gap / semi_y, 0.0, 1.0)
    inside = (inside * (0.85 - 0.4 * upper * upper))[..., None]
    band = image[
        max(0, int(mouth.center_y - lip)) : int(mouth.center_y + lip) + 1,
        int(mouth.center_x - hw) : int(mouth.center_x + hw) + 1,
    ]
    dark = np.percentile(band.reshape(-1, 3), 5, axis=0).astype(np.float32) * 0.55 if band.size else _MOUTH_INSIDE
    shaded = patch.astype(np.float32) * (1.0 - inside) + inside * dark
    image[y0:y1, x0:x1] = np.clip(shaded + 0.5, 0, 255).astype(np.uint8)


def reset_mouth(
    image: np.ndarray, mouth: MouthGeometry, reference: np.ndarray, at_rest: MouthGeometry, share: float
) -> None:
    """Put the reference's resting mouth over a frame's mouth, in place, before the audio opens it again.

    A keyframe shows the mouth as it was at its instant; carried through a whole sub-clip it would stay open
    while the audio goes quiet. Kling-Avatar sec. 2.2 has the model re-draw the mouth from the audio between
    anchors; the preview re-draws it from the reference (aligned by the two mouths' positions and the face size)
    and lets `open_mouth` do the rest.

    Args:
        image: RGB uint8 (height, width, 3), changed in place around `mouth`.
        mouth: the mouth in `image`.
        reference: the RGB image the resting mouth comes from (the canvas).
        at_rest: the mouth in `reference`.
        share: 0 (keep the frame's mouth) to 1 (the reference's mouth).
    """
    if share <= 0 or at_rest.face_height <= 0:
        return
    height, width = image.shape[:2]
    semi_x, semi_y = 1.5 * mouth.half_width, 0.24 * mouth.face_height
    center_y = mouth.center_y + 0.06 * mouth.face_height
    x0, x1 = max(0, int(mouth.center_x - 1.3 * semi_x)), min(width, int(np.ceil(mouth.center_x + 1.3 * semi_x)) + 1)
    y0, y1 = max(0, int(center_y - 1.3 * semi_y)), min(height, int(np.ceil(center_y + 1.3 * semi_y)) + 1)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return
    scale = at_rest.face_height / mouth.face_height  # reference pixels per frame pixel
    to_reference = np.array(
        [
            [scale, 0.0, at_rest.center_x + (x0 - mouth.center_x) * scale],
            [0.0, scale, at_rest.center_y + (y0 - mouth.center_y) * scale],
        ]
    )
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    patch = cv2.warpAffine(reference, to_reference, (x1 - x0, y1 - y0), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    dx = (np.arange(x0, x1, dtype=np.float32) - mouth.center_x) / semi_x
    dy = (np.arange(y0, y1, dtype=np.float32) - center_y) / semi_y
    radius = np.sqrt(dx[None, :] ** 2 + dy[:, None] ** 2)
    mask = np.clip((1.25 - radius) / 0.5, 0.0, 1.0)
    mask = (mask * mask * (3 - 2 * mask))[..., None]
    region = image[y0:y1, x0:x1].astype(np.float32)
    # Lighting from the frame: the reference patch is shifted to the frame's mean colour on the mask's soft rim.
    rim = ((mask > 0.05) & (mask < 0.6)).astype(np.float32)
    if rim.sum() > 0:
        patch = patch.astype(np.float32) + ((region - patch) * rim).sum(axis=(0, 1)) / rim.sum()
    blend = share * mask
    image[y0:y1, x0:x1] = np.clip(region * (1 - blend) + patch * blend + 0.5, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class HeadRig:
    """What moving one head needs, worked out once per canvas: the region and how much each pixel follows the head.

    Attributes:
        roi: (x0, y0, x1, y1) integer pixel bounds of the warped region.
        pivot: the neck point the head rolls about, pixels.
        face_size: face box (width, height), pixels.
        head: per-pixel share of the head's motion at `step` resolution, float32 (rows, cols).
        body: per-pixel share of the chest's motion at `step` resolution.
        step: the weights and displacements are computed every `step` pixels and resized: they are smooth.
    """

    roi: tuple[int, int, int, int]
    pivot: tuple[float, float]
    face_size: tuple[float, float]
    head: np.ndarray
    body: np.ndarray
    step: int

    @classmethod
    def build(cls, face_box: Box, image_size: tuple[int, int]) -> HeadRig:
        """A rig for the face at `face_box` in an image of `image_size` (height, width)."""
        height, width = image_size
        x0, y0, x1, y1 = face_box
        fw, fh = x1 - x0, y1 - y0
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        roi = (
            max(0, int(cx - 1.5 * fw)), max(0, int(cy - 1.55 * fh)),
            min(width, int(np.ceil(cx + 1.5 * fw))), min(height, int(np.ceil(y1 + 1.5 * fh))),
        )  # fmt: skip
        step = max(1, int(min(fw, fh) / 12))
        xs = np.arange(roi[0], roi[2] + step, step, dtype=np.float32)
        ys = np.arange(roi[1], roi[3] + step, step, dtype=np.float32)
        # Head: the face ellipse moves fully; the weight fades out by 1.6 radii (hair, neck).
        radius = np.sqrt(((xs[None, :] - cx) / (0.8 * fw)) ** 2 + ((ys[:, None] - cy) / (0.95 * fh)) ** 2)
        fade = np.clip((radius - 1.0) / 0.6, 0.0, 1.0)
        head = (1.0 - fade * fade * (3 - 2 * fade)).astype(np.float32)
        # Chest: below the chin, as wide as the shoulders, fading out before the region's edges.
        across = _window(xs - cx, 1.0 * fw, 1.5 * fw)
        below = np.clip((ys - y1) / (0.5 * fh), 0.0, 1.0) * _window(ys - (y1 + 0.75 * fh), 0.4 * fh, 0.75 * fh)
        body = (below[:, None] * across[None, :]).astype(np.float32)
        return cls(roi=roi, pivot=(cx, y1 + 0.05 * fh), face_size=(fw, fh), head=head, body=body, step=step)


def move_head(image: np.ndarray, rig: HeadRig, pose: HeadPose) -> None:
    """Move one head (roll about the neck, shift) and its chest (breathing, a little sway) in place.

    Args:
        image: RGB uint8 (height, width, 3), changed in place inside `rig.roi`.
        rig: the head's region and weights, for this image's geometry.
        pose: the head's offset at this frame.
    """
    x0, y0, x1, y1 = rig.roi
    if x1 - x0 < 3 or y1 - y0 < 3 or pose == HeadPose():
        return
    fw, fh = rig.face_size
    rows, cols = rig.head.shape
    xs = np.arange(cols, dtype=np.float32) * rig.step + x0 - rig.pivot[0]
    ys = np.arange(rows, dtype=np.float32) * rig.step + y0 - rig.pivot[1]
    # Backward map of a roll by theta about the pivot and a shift t: source = R(-theta) (x - pivot) + pivot - t.
    theta = np.deg2rad(pose.rotation_deg)
    cos, sin = np.float32(np.cos(theta) - 1.0), np.float32(np.sin(theta))
    shift_x, shift_y = pose.shift_x * fw, pose.shift_y * fh
    head_dx = cos * xs[None, :] + sin * ys[:, None] - shift_x
    head_dy = -sin * xs[None, :] + cos * ys[:, None] - shift_y
    # The chest rises with a breath (content moves up: sample from below) and follows the head a quarter of the way.
    body_dx, body_dy = -0.25 * shift_x, pose.breath * fh
    dx = rig.head * head_dx + rig.body * np.float32(body_dx)
    dy = rig.head * head_dy + rig.body * np.float32(body_dy)
    size = (x1 - x0, y1 - y0)
    full_x = cv2.resize(dx, (cols * rig.step, rows * rig.step), interpolation=cv2.INTER_LINEAR)[: size[1], : size[0]]
    full_y = cv2.resize(dy, (cols * rig.step, rows * rig.step), interpolation=cv2.INTER_LINEAR)[: size[1], : size[0]]
    full_x += np.arange(size[0], dtype=np.float32)[None, :]
    full_y += np.arange(size[1], dtype=np.float32)[:, None]
    region = image[y0:y1, x0:x1]
    image[y0:y1, x0:x1] = cv2.remap(region, full_x, full_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
