"""Morphs between two frames with the characters' mouths on top: first-last-frame sub-clips and seam transitions.

Kling-Avatar sec. 2.2 expands anchor keyframes into sub-clips "via first-last-frame conditioned generation" and
bridges the seams with "audio-conditioned interpolation". The preview estimates one affine motion between the two
frames (ECC at a small scale), slides each frame part of the way along it and cross-dissolves, and opens each
character's mouth to their own audio where they were found in the frames.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from codirector.generator.backend import CharacterCondition, Frame
from codirector.generator.backends.preview.face_motion import MouthGeometry, mouth_geometry, open_mouth, reset_mouth
from codirector.generator.backends.preview.layout import Layout, MouthShape
from codirector.generator.backends.preview.locate import FaceInFrame, locate_characters
from codirector.generator.backends.preview.performance import Performer, Voice

__all__ = ["Morph", "estimate_motion", "fit", "pixel_scale", "render_morph"]

logger = logging.getLogger(__name__)

_ECC_WIDTHS = (64, 160)  # coarse to fine
_ECC_MIN_CORRELATION = 0.6  # below this the two frames do not show the same thing: no motion is assumed
_FEATURE_WIDTH = 320  # corners are matched at this width


def fit(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """An RGB image resized to height x width (area-averaged when shrinking), or itself when it already fits."""
    if image.shape[:2] == (height, width):
        return np.ascontiguousarray(image[..., :3])
    shrink = image.shape[0] > height and image.shape[1] > width
    return cv2.resize(image[..., :3], (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def pixel_scale(factor: float) -> np.ndarray:
    """3x3 from pixels of an image to pixels of its copy resized by `factor` (pixel centres kept aligned)."""
    offset = 0.5 * factor - 0.5
    return np.array([[factor, 0.0, offset], [0.0, factor, offset], [0.0, 0.0, 1.0]])


def _feature_motion(target: np.ndarray, source: np.ndarray) -> np.ndarray | None:
    """3x3 with `target(x) ~ source(W x)` from ORB matches (a rotation, scale and shift), or None with too few.

    ECC only refines: from identity it loses a fast push-in or a wide pan; matched corners find those.
    """
    factor = min(1.0, _FEATURE_WIDTH / target.shape[1])
    small = [cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA) for image in (target, source)]
    orb = cv2.ORB_create(nfeatures=600, fastThreshold=10)
    (target_points, target_codes), (source_points, source_codes) = (orb.detectAndCompute(im, None) for im in small)
    if target_codes is None or source_codes is None or len(target_points) < 12 or len(source_points) < 12:
        return None
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(target_codes, source_codes)
    if len(matches) < 12:
        return None
    here = np.float32([target_points[m.queryIdx].pt for m in matches])
    there = np.float32([source_points[m.trainIdx].pt for m in matches])
    similarity, inliers = cv2.estimateAffinePartial2D(here, there, method=cv2.RANSAC, ransacReprojThreshold=2.0)
    if similarity is None or int(inliers.sum()) < 12:
        return None
    scale = pixel_scale(factor)
    return np.linalg.inv(scale) @ np.vstack([similarity, [0.0, 0.0, 1.0]]) @ scale


def estimate_motion(
    target: np.ndarray, source: np.ndarray, initial: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """The affine warp with `target(x) ~ source(W x)`, from grey images of one size, and its ECC correlation.

    Matched ORB corners give the start (or `initial`), ECC refines it coarse to fine over small copies (the motion
    between two keyframes of a shot is a camera move and a head turn, which an affine at 160 px width captures).
    Identity, with correlation 0, where neither finds a plausible motion.

    Args:
        target: grey uint8 (height, width).
        source: grey uint8, same size.
        initial: a starting 3x3 (or 2x3) warp in full-size pixels, if one is known.

    Returns:
        The 2x3 warp in full-size pixels, and the correlation ECC reached.
    """
    height, width = target.shape
    start = _feature_motion(target, source) if initial is None else np.vstack([initial[:2], [0.0, 0.0, 1.0]])
    warp = np.eye(3) if start is None else start
    correlation = 0.0
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 40, 1e-4)
    for level_width in _ECC_WIDTHS:
        factor = min(1.0, level_width / width)
        size = (max(8, round(width * factor)), max(8, round(height * factor)))
        small = [cv2.resize(image, size, interpolation=cv2.INTER_AREA) for image in (target, source)]
        scale = pixel_scale(size[0] / width)
        level_warp = (scale @ warp @ np.linalg.inv(scale))[:2].astype(np.float32)
        try:
            correlation, level_warp = cv2.findTransformECC(
                small[0], small[1], level_warp, cv2.MOTION_AFFINE, criteria, None, 3
            )
        except cv2.error:  # ECC raises when it diverges or an image is flat: keep what the coarser level found
            logger.debug("ECC did not converge at %d px", size[0])
            continue
        warp = np.linalg.inv(scale) @ np.vstack([level_warp.astype(np.float64), [0.0, 0.0, 1.0]]) @ scale
    if correlation >= _ECC_MIN_CORRELATION and _plausible(warp):
        return warp[:2], float(correlation)
    if start is not None and _plausible(start):
        return start[:2], float(correlation)
    return np.eye(2, 3), float(correlation)


def _plausible(warp: np.ndarray) -> bool:
    scale = np.sqrt(abs(np.linalg.det(warp[:2, :2])))
    return bool(0.6 < scale < 1.6)


def _homogeneous(warp: np.ndarray) -> np.ndarray:
    return np.vstack([warp, [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Morph:
    """A morph from `start` to `end` (RGB uint8, one size) along the affine motion between them.

    `warp` maps end pixels to start pixels (`end(x) ~ start(warp x)`); at share `a` the start is warped by
    `I + a (warp - I)`, the end by the rest of the way, and the two dissolve.
    """

    start: np.ndarray
    end: np.ndarray
    warp: np.ndarray  # 3x3

    @classmethod
    def between(cls, start: np.ndarray, end: np.ndarray) -> Morph:
        grey = [cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for image in (end, start)]
        warp, _ = estimate_motion(grey[0], grey[1])
        return cls(start=start, end=end, warp=_homogeneous(warp))

    def start_warp(self, share: float) -> np.ndarray:
        """3x3: frame-at-`share` pixels -> start pixels."""
        return np.eye(3) + share * (self.warp - np.eye(3))

    def end_warp(self, share: float) -> np.ndarray:
        """3x3: frame-at-`share` pixels -> end pixels."""
        return np.linalg.inv(self.warp) @ self.start_warp(share)

    def frame(self, share: float) -> np.ndarray:
        """The morph at `share` (0: the start itself, 1: the end itself), RGB uint8."""
        if share <= 0.0:
            return self.start.copy()
        if share >= 1.0:
            return self.end.copy()
        size = (self.start.shape[1], self.start.shape[0])
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        warps = (self.start_warp(share)[:2], self.end_warp(share)[:2])
        start, end = (
            cv2.warpAffine(image, warp, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
            for image, warp in zip((self.start, self.end), warps, strict=True)
        )
        if all(_inside(warp, size) for warp in warps):
            return cv2.addWeighted(start, 1.0 - share, end, share, 0.0)
        # Part of the frame is outside one of the two (the wide end of a push-in, the new side of a pan): there
        # the other one shows alone, so the dissolve never shows a smeared border.
        weights = [
            _coverage(warp, size) * np.float32(share_of) + np.float32(1e-3 * share_of)
            for warp, share_of in zip(warps, (1.0 - share, share), strict=True)
        ]
        return cv2.blendLinear(start, end, weights[0], weights[1])


def _coverage(warp: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Float32 (height, width), 1 where a 2x3 output -> input warp samples inside the input, feathered to 0 outside.

    Worked out at a quarter of the size and brought up: the edge is soft anyway.
    """
    small_size = (max(2, size[0] // 4), max(2, size[1] // 4))
    to_small = pixel_scale(small_size[0] / size[0])
    small_warp = (to_small @ _homogeneous(warp) @ np.linalg.inv(to_small))[:2]
    opaque = np.ones((small_size[1], small_size[0]), np.float32)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    seen = cv2.GaussianBlur(cv2.warpAffine(opaque, small_warp, small_size, flags=flags, borderValue=0.0), (0, 0), 0.6)
    return cv2.resize(seen, size, interpolation=cv2.INTER_LINEAR)


def _inside(warp: np.ndarray, size: tuple[int, int]) -> bool:
    """Whether a 2x3 output -> input warp samples only inside an input of `size` (width, height)."""
    width, height = size
    corners = np.array([[0, 0, 1], [width - 1, 0, 1], [0, height - 1, 1], [width - 1, height - 1, 1]], float)
    points = corners @ warp.T
    return bool((points >= -0.5).all() and (points[:, 0] <= width - 0.5).all() and (points[:, 1] <= height - 0.5).all())


def _mouth_track(
    morph: Morph, shape: MouthShape, faces: tuple[FaceInFrame, FaceInFrame]
) -> Callable[[float], MouthGeometry]:
    """Where a character's mouth is at each share of the morph, from where they were found in the two frames.

    Found in both: the mouth slides from one place to the other. Found in one: it rides the morph's motion.
    """
    at_start, at_end = (mouth_geometry(face.box, shape) for face in faces)
    found = [face.method != "canvas" for face in faces]
    if found[0] and found[1]:
        return lambda share: at_start.lerp(at_end, share)
    if found[1] and not found[0]:
        return lambda share: _moved(at_end, morph, share, from_end=True)
    return lambda share: _moved(at_start, morph, share, from_end=False)


def _moved(mouth: MouthGeometry, morph: Morph, share: float, *, from_end: bool) -> MouthGeometry:
    to_point = np.linalg.inv(morph.end_warp(share) if from_end else morph.start_warp(share))
    x, y, w = to_point @ np.array([mouth.center_x, mouth.center_y, 1.0])
    scale = float(np.sqrt(abs(np.linalg.det(to_point[:2, :2]))))
    sizes = (mouth.half_width, mouth.face_height, mouth.max_opening, mouth.jaw_length)
    return MouthGeometry(float(x / w), float(y / w), *(float(size * scale) for size in sizes))


def render_morph(
    morph: Morph,
    num_frames: int,
    schedule: Callable[[int], tuple[float, float]],
    layout: Layout,
    characters: Sequence[CharacterCondition],
    *,
    seed: int,
    sample_rate: int,
    fps: float,
    mouth_gain: float,
) -> Iterator[Frame]:
    """Yield the morph's frames with every located character's mouth re-drawn and driven by their own audio.

    Args:
        morph: the two frames and the motion between them.
        num_frames: how many frames to yield.
        schedule: frame index -> (share: how far from start (0) to end (1), strength: how much of the re-drawn,
            audio-driven mouth is applied (0-1); a sub-clip tapers it to zero at its anchors to keep them exactly).
        layout: the characters' canvas (their reference faces, for finding them and for their resting mouths).
        characters: the request's characters, with their audio (None: a closed mouth).
        seed, sample_rate, fps, mouth_gain: as in the request and the backend options.
    """
    faces = (locate_characters(morph.start, layout), locate_characters(morph.end, layout))
    tracks: list[tuple[Performer, Callable[[float], MouthGeometry], MouthGeometry]] = []
    found_anywhere = [
        p.id for p in layout.placements if faces[0][p.id].method != "canvas" or faces[1][p.id].method != "canvas"
    ]
    for character in characters:
        placement = layout.placement(character.id)
        if placement is None:
            continue
        # A character found in neither frame is only guessed at when they are alone (then the guess is the frame's
        # main subject); with several, a mouth drawn at a guessed place could land on someone else.
        if character.id not in found_anywhere and len(layout.placements) > 1:
            logger.info("character %r not found in the frames; their mouth is left as it is", character.id)
            continue
        voice = Voice(character.audio, sample_rate, fps)
        performer = Performer(character.id, seed, voice, (), motion=0.0, mouth_gain=mouth_gain)
        pair = (faces[0][character.id], faces[1][character.id])
        at_rest = mouth_geometry(placement.face_box, placement.mouth)
        tracks.append((performer, _mouth_track(morph, placement.mouth, pair), at_rest))
    for index in range(num_frames):
        share, strength = schedule(index)
        frame = morph.frame(share)
        if strength > 0:
            for performer, track, at_rest in tracks:
                opening, roundness = performer.mouth(index)
                mouth = track(share)
                reset_mouth(frame, mouth, layout.canvas, at_rest, strength)
                open_mouth(frame, mouth, opening * strength, roundness)
        yield frame
