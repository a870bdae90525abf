"""The preview's text-to-video: the reference canvas animated over the whole request (KlingAvatar 2.0 sec. 3.1's
low-resolution blueprint, which "captures global dynamics, content, and layout").

Per request the canvas is staged once per zoom level (scaled to about the output's resolution, inside its blurred
backdrop) with a head rig per character. Per frame: the characters' regions are restored from the stage, each
character's mouth opens to their own audio and their head moves, then one warp films the stage through the camera.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from codirector.generator.backend import Frame, ShotDirection, VideoRequest
from codirector.generator.backends.preview.camera import Framing, camera_move, frame_shot, move_matrix, shot_progress
from codirector.generator.backends.preview.face_motion import (
    HeadRig,
    MouthGeometry,
    mouth_geometry,
    move_head,
    open_mouth,
)
from codirector.generator.backends.preview.layout import Layout, Placement, with_backdrop
from codirector.generator.backends.preview.performance import Performer, SmoothNoise, Voice, stream_seed
from codirector.schemas.vocab import ShotSize

__all__ = ["Stage", "build_stage", "performers", "render_blueprint"]

logger = logging.getLogger(__name__)

_SHARPNESS = 1.1  # stage pixels per output pixel at the tightest point of a shot: a little supersampling
_ZOOM_LADDER = 4  # stages come in steps of 2^(1/4) in scale, so close sizes share one


@dataclass(frozen=True)
class Stage:
    """The canvas at one scale inside its backdrop, with each character's head rig and mouth in stage pixels.

    Attributes:
        scale: stage pixels per canvas pixel.
        image: RGB uint8 (height, width, 3).
        origin: where the canvas's top-left corner is on the stage, pixels.
        rigs: head rig per character id.
        mouths: mouth per character id.
    """

    scale: float
    image: np.ndarray
    origin: tuple[int, int]
    rigs: dict[str, HeadRig]
    mouths: dict[str, MouthGeometry]

    def from_canvas(self) -> np.ndarray:
        """The 3x3 matrix from canvas pixels to stage pixels."""
        return np.array([[self.scale, 0, self.origin[0]], [0, self.scale, self.origin[1]], [0, 0, 1]])


def build_stage(layout: Layout, scale: float, aspect: float) -> Stage:
    """Stage a layout at `scale` for an output of `aspect` (width / height).

    The backdrop reaches 35% past the widest crop this aspect can ask for, so moves and rolls of a wide shot stay
    on picture; beyond it the warp reflects the backdrop, never black.
    """
    canvas = layout.canvas
    height, width = canvas.shape[:2]
    scaled_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    scaled = canvas if scale == 1 else cv2.resize(canvas, scaled_size, interpolation=cv2.INTER_AREA)
    whole_h = max(scaled_size[1], scaled_size[0] / aspect)
    pad_x = math.ceil(max(0.3 * scaled_size[0], (1.35 * whole_h * aspect - scaled_size[0]) / 2))
    pad_y = math.ceil(max(0.3 * scaled_size[1], (1.35 * whole_h - scaled_size[1]) / 2))
    image = with_backdrop(scaled, pad_x, pad_y)

    def on_stage(placement: Placement) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = placement.face_box
        return (x0 * scale + pad_x, y0 * scale + pad_y, x1 * scale + pad_x, y1 * scale + pad_y)

    rigs = {p.id: HeadRig.build(on_stage(p), image.shape[:2]) for p in layout.placements}
    mouths = {p.id: mouth_geometry(on_stage(p), p.mouth) for p in layout.placements}
    return Stage(scale=scale, image=image, origin=(pad_x, pad_y), rigs=rigs, mouths=mouths)


def performers(request: VideoRequest, layout: Layout, *, motion: float, mouth_gain: float) -> list[Performer]:
    """One performer per placed character, each hearing only their own audio (and the others' for listening)."""
    voices = {c.id: Voice(c.audio, request.sample_rate, request.fps) for c in request.characters}
    cast = []
    for placement in layout.placements:
        voice = voices.get(placement.id, Voice(None, request.sample_rate, request.fps))
        others = [v for character_id, v in voices.items() if character_id != placement.id]
        cast.append(Performer(placement.id, request.seed, voice, others, motion=motion, mouth_gain=mouth_gain))
    return cast


def _framed(layout: Layout, direction: ShotDirection) -> Placement | None:
    """Whom the shot frames: its first speaker who is on the canvas, else the first character on it."""
    on_canvas = [p for p in layout.placements if p.id in direction.speakers]
    return on_canvas[0] if on_canvas else (layout.placements[0] if layout.placements else None)


class _Blueprint:
    """The per-request state of a blueprint render: stages, framings, performers, camera shake."""

    def __init__(self, request: VideoRequest, layout: Layout, *, motion: float, mouth_gain: float) -> None:
        self.request = request
        self.layout = layout
        self.size = (request.height, request.width)
        self.aspect = request.width / request.height
        self.cast = performers(request, layout, motion=motion, mouth_gain=mouth_gain)
        self.shake = SmoothNoise.seeded(stream_seed(request.seed, "camera"), 4, 0.3, 1.6)
        self._stages: dict[int, Stage] = {}
        self._buffers: dict[int, np.ndarray] = {}
        self._framings: dict[tuple[int, ShotSize, str], tuple[Framing, int]] = {}

    def _framing(self, direction: ShotDirection) -> tuple[Framing, int]:
        """The nominal crop of a direction's shot, and the stage level to film it from (cached per shot)."""
        framed = _framed(self.layout, direction)
        key = (direction.shot_index, direction.shot_size, framed.id if framed else "")
        if key not in self._framings:
            framing = frame_shot(
                self.layout.canvas.shape[:2], framed.face_box if framed else None, direction.shot_size, self.aspect
            )
            tightest = max(camera_move(direction.camera, p, 0.0, self.shake).zoom for p in (0.0, 1.0))
            wanted = min(1.0, _SHARPNESS * self.size[0] * tightest / framing.height)
            level = max(0, math.floor(-_ZOOM_LADDER * math.log2(wanted) + 1e-9))
            self._framings[key] = (framing, level)
        return self._framings[key]

    def _stage(self, level: int) -> tuple[Stage, np.ndarray]:
        if level not in self._stages:
            self._stages[level] = build_stage(self.layout, 2.0 ** (-level / _ZOOM_LADDER), self.aspect)
            self._buffers[level] = self._stages[level].image.copy()
        return self._stages[level], self._buffers[level]

    def frame(self, index: int) -> Frame:
        time_s = self.request.time_s(index)
        direction = self.request.direction_at(time_s)
        framing, level = self._framing(direction)
        stage, buffer = self._stage(level)
        for rig in stage.rigs.values():  # undo the previous frame's warps
            x0, y0, x1, y1 = rig.roi
            buffer[y0:y1, x0:x1] = stage.image[y0:y1, x0:x1]
        for performer in self.cast:
            opening, roundness = performer.mouth(index)
            open_mouth(buffer, stage.mouths[performer.character_id], opening, roundness)
            move_head(buffer, stage.rigs[performer.character_id], performer.pose(index, time_s))
        move = camera_move(direction.camera, shot_progress(direction, time_s), time_s, self.shake)
        matrix = stage.from_canvas() @ move_matrix(framing, move, self.size)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        out_size = (self.size[1], self.size[0])
        if move.keystone == 0.0:
            return cv2.warpAffine(buffer, matrix[:2], out_size, flags=flags, borderMode=cv2.BORDER_REFLECT_101)
        return cv2.warpPerspective(buffer, matrix, out_size, flags=flags, borderMode=cv2.BORDER_REFLECT_101)


def render_blueprint(request: VideoRequest, layout: Layout, *, motion: float, mouth_gain: float) -> Iterator[Frame]:
    """Yield the request's frames one at a time: RGB uint8 (height, width, 3).

    Args:
        request: the text-to-video request.
        layout: the request's canvas and characters (`compose_layout`).
        motion: head and body motion scale.
        mouth_gain: mouth opening scale.
    """
    blueprint = _Blueprint(request, layout, motion=motion, mouth_gain=mouth_gain)
    missing = [c.id for c in request.characters if layout.placement(c.id) is None]
    if missing:
        logger.warning("characters %s have no reference or scene region; the preview cannot show them", missing)
    for index in range(request.num_frames):
        yield blueprint.frame(index)
