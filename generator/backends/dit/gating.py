"""Where each character's voice may act: the one place the dit backend decides per-character audio gating.

KlingAvatar 2.0 sec. 3.3 gates each character's audio injection with a mask over the video tokens. With a trained
mask head (an adapter with `mask_layers`) the model predicts those masks from identity crops. Without one (a stock
checkpoint, or an adapter trained without the head) the masks are drawn here, soft, on the latent token grid:
- from the faces found in the clip's conditioning frame, matched to the characters left to right (the order of
  their scene boxes, else the job's order), each widened to head and shoulders;
- else from the characters' scene boxes, as if the frame showed the whole scene;
- else equal vertical strips in the characters' order.
The result says which source was used, so the log and the manifest can tell the user.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["CharacterGating", "GatingSource", "box_masks", "decide_gating"]

logger = logging.getLogger(__name__)

GatingSource = Literal["single", "mask_head", "faces", "scene_boxes", "strips"]
BoxNorm = tuple[float, float, float, float]  # x0, y0, x1, y1 in 0-1 of the frame


@dataclass(frozen=True)
class CharacterGating:
    """How a clip's voices are routed.

    Attributes:
        source: "single" (one voice: no gate), "mask_head" (predicted from `identity_crops`), or the drawn
            masks' origin ("faces", "scene_boxes", "strips").
        masks: (N, Ht, Wt) float32 soft masks in [0, 1] on the token grid, for drawn sources; else None.
        boxes: the boxes the masks were drawn from (normalised), for the log.
    """

    source: GatingSource
    masks: np.ndarray | None = None
    boxes: tuple[BoxNorm, ...] = ()


def box_masks(boxes: Sequence[BoxNorm], token_grid: tuple[int, int], softness_tokens: float = 1.0) -> np.ndarray:
    """Soft masks (N, Ht, Wt) in [0, 1]: each box filled with 1, its edge blurred over about `softness_tokens`."""
    import cv2

    height, width = token_grid
    masks = np.zeros((len(boxes), height, width), np.float32)
    # draw at 8x the token grid so that boxes smaller than a token still cover their share, then area-pool
    scale = 8
    for index, (x0, y0, x1, y1) in enumerate(boxes):
        canvas = np.zeros((height * scale, width * scale), np.float32)
        left, right = round(x0 * width * scale), max(round(x1 * width * scale), round(x0 * width * scale) + 1)
        top, bottom = round(y0 * height * scale), max(round(y1 * height * scale), round(y0 * height * scale) + 1)
        canvas[top:bottom, left:right] = 1.0
        if softness_tokens > 0:
            sigma = softness_tokens * scale / 2
            canvas = cv2.GaussianBlur(canvas, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)
        masks[index] = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA)
    return np.clip(masks, 0.0, 1.0)


def _head_and_shoulders(face: tuple[float, float, float, float], width: int, height: int) -> BoxNorm:
    """A face box (pixels) widened to the head and shoulders below it, normalised: the region a voice moves."""
    x0, y0, x1, y1 = face
    face_width, face_height = x1 - x0, y1 - y0
    return (max(0.0, (x0 - 0.6 * face_width) / width), max(0.0, (y0 - 0.4 * face_height) / height),
            min(1.0, (x1 + 0.6 * face_width) / width), 1.0)  # fmt: skip


def _order(regions: Sequence[BoxNorm | None]) -> list[int]:
    """The characters left to right by their scene boxes' centres (the job's order where a box is missing)."""
    if any(box is None for box in regions):
        return list(range(len(regions)))
    return sorted(range(len(regions)), key=lambda index: regions[index][0] + regions[index][2])  # type: ignore[index]


def decide_gating(
    num_voices: int, *, has_mask_head: bool, frame: np.ndarray | None, regions: Sequence[BoxNorm | None],
    token_grid: tuple[int, int],
) -> CharacterGating:  # fmt: skip
    """Route `num_voices` voices (one per character, in `regions`' order) for one clip.

    Args:
        num_voices: characters with an audio row in this clip (silent ones included: their silence keeps their
            mouth still).
        has_mask_head: the model has a trained mask head (KlingAvatar 2.0 sec. 3.3).
        frame: the clip's conditioning frame (RGB uint8), where faces are looked for; None when there is none.
        regions: each character's box in the scene image (normalised), or None.
        token_grid: (Ht, Wt) the transformer's tokens per latent frame.
    """
    if num_voices != len(regions):
        raise ValueError(f"num_voices ({num_voices}) must equal the number of character regions ({len(regions)})")
    if num_voices <= 1:
        return CharacterGating("single")
    if has_mask_head:
        return CharacterGating("mask_head")
    order = _order(regions)
    if frame is not None:
        from codirector.faces import detect_faces

        faces = detect_faces(frame)
        if len(faces) >= num_voices:
            height, width = frame.shape[:2]
            chosen = sorted(faces[:num_voices], key=lambda face: face.box[0] + face.box[2])
            boxes: list[BoxNorm] = [(0.0, 0.0, 0.0, 0.0)] * num_voices
            for character, face in zip(order, chosen, strict=True):
                boxes[character] = _head_and_shoulders(face.box, width, height)
            return CharacterGating("faces", box_masks(boxes, token_grid), tuple(boxes))
    if all(region is not None for region in regions):
        boxes = [region for region in regions if region is not None]
        return CharacterGating("scene_boxes", box_masks(boxes, token_grid), tuple(boxes))
    strips: list[BoxNorm] = [(0.0, 0.0, 0.0, 0.0)] * num_voices
    for slot, character in enumerate(order):
        strips[character] = (slot / num_voices, 0.0, (slot + 1) / num_voices, 1.0)
    return CharacterGating("strips", box_masks(strips, token_grid), tuple(strips))
