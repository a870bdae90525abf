"""The preview's camera: shot size as a crop around the framed face, camera moves and angles as a per-frame homography.

Every frame is one `cv2.warpAffine` (or `warpPerspective` for a high or low angle) of the stage, with a 3x3 matrix
that maps output pixels to stage pixels. Moves run over the whole shot (`ShotDirection.shot_start_s` to
`shot_end_s`), so a push-in split across sub-clips is one continuous move, as the storyline meant it (KlingAvatar
2.0 sec. 3.2: the director plans camera language per shot).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codirector.faces import Box
from codirector.generator.backend import ShotDirection
from codirector.generator.backends.preview.performance import SmoothNoise
from codirector.schemas.storyline import Camera
from codirector.schemas.vocab import CameraAngle, CameraMovement, Direction, MotionSpeed, ShotSize

__all__ = ["Framing", "Move", "camera_move", "frame_shot", "move_matrix", "shot_progress"]

# Crop height in face heights (a Haar face box: brows to chin). A close-up shows the head and a little shoulder, a
# medium shot the waist up, a full shot the whole figure; wide shows the whole canvas.
_CROP_IN_FACES = {
    ShotSize.EXTREME_CLOSE_UP: 1.35,
    ShotSize.CLOSE_UP: 2.3,
    ShotSize.MEDIUM_CLOSE_UP: 3.3,
    ShotSize.MEDIUM: 4.6,
    ShotSize.MEDIUM_FULL: 6.5,
    ShotSize.FULL: 9.0,
}
# Where the face centre sits in the frame, from the top: headroom above it in every size but the tightest.
_FACE_LINE = {ShotSize.EXTREME_CLOSE_UP: 0.47, ShotSize.CLOSE_UP: 0.43}
_DEFAULT_FACE_LINE = 0.40
_SPEED = {MotionSpeed.SLOW: 0.6, MotionSpeed.MEDIUM: 1.0, MotionSpeed.FAST: 1.6}
_SIGN = {Direction.LEFT: -1.0, Direction.UP: -1.0, Direction.RIGHT: 1.0, Direction.DOWN: 1.0}  # crop's way
# Move sizes at medium speed: zoom factors, and shifts as shares of the crop over the whole shot.
_PUSH, _ZOOM = 0.25, 0.6
_PAN, _TRUCK, _TILT, _PEDESTAL, _ARC = 0.18, 0.24, 0.14, 0.18, 0.14
_ARC_ROLL_DEG = 3.0
_DUTCH_DEG = 8.0
_KEYSTONE = {CameraAngle.HIGH: -0.2, CameraAngle.LOW: 0.2, CameraAngle.OVERHEAD: -0.35}
_HANDHELD_SHIFT, _HANDHELD_ROLL_DEG, _HANDHELD_ZOOM = 0.012, 0.6, 0.01


@dataclass(frozen=True)
class Framing:
    """A shot's nominal crop: its centre and height in canvas pixels (width follows the output aspect)."""

    center: tuple[float, float]
    height: float


@dataclass(frozen=True)
class Move:
    """The camera's offset from the nominal crop at one frame.

    Attributes:
        zoom: crop shrink factor (2.0 shows half the height).
        shift: crop centre offset, shares of the crop (width, height); positive is right and down.
        roll_deg: image rotation, degrees.
        keystone: perspective of a high (negative) or low (positive) camera.
    """

    zoom: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)
    roll_deg: float = 0.0
    keystone: float = 0.0


def frame_shot(canvas_size: tuple[int, int], face_box: Box | None, shot_size: ShotSize, aspect: float) -> Framing:
    """The nominal crop of a shot size around a face.

    Args:
        canvas_size: (height, width) of the canvas, pixels.
        face_box: the framed character's face in canvas pixels; None frames the whole canvas.
        shot_size: how tight the shot is.
        aspect: output width / height.

    Wide fits the whole canvas in the frame (the rest is filled by the stage's blurred backdrop); tighter sizes crop
    around the face (with headroom above it), are kept inside the canvas where they fit in it, and are centred on it
    where they do not (the backdrop fills the rest).
    """
    height, width = canvas_size
    whole = max(float(height), width / aspect)  # the whole canvas fits in the frame
    if face_box is None or shot_size not in _CROP_IN_FACES:
        return Framing(center=(width / 2, height / 2), height=whole)
    x0, y0, x1, y1 = face_box
    crop = min(_CROP_IN_FACES[shot_size] * (y1 - y0), whole)
    line = _FACE_LINE.get(shot_size, _DEFAULT_FACE_LINE)
    center_x, center_y = (x0 + x1) / 2, (y0 + y1) / 2 + (0.5 - line) * crop
    crop_width = crop * aspect
    center_x = float(np.clip(center_x, crop_width / 2, width - crop_width / 2)) if crop_width <= width else width / 2
    center_y = float(np.clip(center_y, crop / 2, height - crop / 2)) if crop <= height else height / 2
    return Framing(center=(center_x, center_y), height=crop)


def shot_progress(direction: ShotDirection, time_s: float) -> float:
    """How far through its shot `time_s` is, 0-1."""
    span = direction.shot_end_s - direction.shot_start_s
    return float(np.clip((time_s - direction.shot_start_s) / span, 0.0, 1.0)) if span > 0 else 0.0


def _ease(progress: float) -> float:
    return progress * progress * (3 - 2 * progress)  # smoothstep: a move starts and ends gently


def _ease_fast(progress: float) -> float:
    return 1 - (1 - progress) ** 3  # a zoom: quick at first, settling


def camera_move(camera: Camera, progress: float, time_s: float, shake: SmoothNoise) -> Move:
    """The camera's offset at `progress` through the shot (and `time_s` on the timeline, for handheld shake).

    pan, truck and arc move the crop left or right (so the content moves the other way), tilt and pedestal up or
    down, over the whole shot and centred on the nominal crop; push_in and zoom_in end tighter than it, pull_out
    and zoom_out start tighter and end on it (so no move ever shows more than the shot size asked for).
    """
    amount = _SPEED.get(camera.speed, 1.0)
    eased = _ease(progress) - 0.5
    sign = _SIGN[camera.direction] if camera.direction is not None else 0.0
    zoom, shift_x, shift_y, roll = 1.0, 0.0, 0.0, 0.0
    movement = camera.movement
    if movement is CameraMovement.PUSH_IN:
        zoom = 1 + _PUSH * amount * _ease(progress)
    elif movement is CameraMovement.PULL_OUT:
        zoom = 1 + _PUSH * amount * (1 - _ease(progress))
    elif movement is CameraMovement.ZOOM_IN:
        zoom = 1 + _ZOOM * amount * _ease_fast(progress)
    elif movement is CameraMovement.ZOOM_OUT:
        zoom = 1 + _ZOOM * amount * (1 - _ease_fast(progress))
    elif movement in (CameraMovement.PAN, CameraMovement.TRUCK):
        shift_x = sign * (_PAN if movement is CameraMovement.PAN else _TRUCK) * amount * eased
    elif movement in (CameraMovement.TILT, CameraMovement.PEDESTAL):
        shift_y = sign * (_TILT if movement is CameraMovement.TILT else _PEDESTAL) * amount * eased
    elif movement is CameraMovement.ARC:  # orbiting: the view slides sideways and the horizon leans into the turn
        shift_x = sign * _ARC * amount * eased
        roll = -sign * _ARC_ROLL_DEG * amount * eased
    elif movement is CameraMovement.HANDHELD:
        wobble = shake(time_s)
        shift_x, shift_y = _HANDHELD_SHIFT * amount * wobble[0], _HANDHELD_SHIFT * amount * wobble[1]
        roll = _HANDHELD_ROLL_DEG * amount * wobble[2]
        zoom = 1 + _HANDHELD_ZOOM * amount * max(0.0, 1.0 + wobble[3])  # breathing in, never wider than the shot
    if camera.angle is CameraAngle.DUTCH:
        roll += _DUTCH_DEG
    return Move(zoom=zoom, shift=(shift_x, shift_y), roll_deg=roll, keystone=_KEYSTONE.get(camera.angle, 0.0))


def move_matrix(framing: Framing, move: Move, output_size: tuple[int, int]) -> np.ndarray:
    """The 3x3 matrix from output pixels to canvas pixels for a framing and a move (for `WARP_INVERSE_MAP`).

    Output pixels are centred and measured in output heights, bent by the keystone, rolled, scaled to the crop
    (shrunk by the zoom) and moved to the crop centre (plus the move's shift).
    """
    height, width = output_size
    to_unit = np.array([[1 / height, 0, -width / (2 * height)], [0, 1 / height, -0.5], [0, 0, 1]])
    keystone = np.array([[1, 0, 0], [0, 1, 0], [0, move.keystone, 1]])
    theta = np.deg2rad(move.roll_deg)
    roll = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    crop = framing.height / move.zoom
    aspect = width / height
    center_x = framing.center[0] + move.shift[0] * framing.height * aspect
    center_y = framing.center[1] + move.shift[1] * framing.height
    place = np.array([[crop, 0, center_x], [0, crop, center_y], [0, 0, 1]])
    return place @ roll @ keystone @ to_unit
