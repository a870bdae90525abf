"""Reference-guided upscaling: keyframes and sub-clips to high resolution with detail from sharper images.

KlingAvatar 2.0 sec. 3.1 upscales keyframes "enriching fine details while preserving identity and scene
composition", then super-resolves the sub-clips. The preview keeps every low frequency of the image it is given
(layout, expression, colour) and adds only the high frequencies of a sharper image of the same content, aligned to
it: the canvas for a keyframe, the sub-clip's two high-resolution anchors for its frames. Detail is weighted by
where the two agree at low frequency, so a mouth that is open in the keyframe but closed in the reference keeps
the keyframe's open mouth, softly, instead of borrowing closed lips.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import cv2
import numpy as np

from codirector.generator.backend import Frame
from codirector.generator.backends.preview.layout import Layout
from codirector.generator.backends.preview.locate import locate_characters
from codirector.generator.backends.preview.morph import estimate_motion, fit, pixel_scale

__all__ = ["SuperResolver", "upscale_with_reference"]

logger = logging.getLogger(__name__)

_AGREE_LEVELS = 12.0  # grey levels of low-frequency difference at which detail falls to 1/e
_TRACK_WIDTH = 128  # frames are tracked against their anchors at this width
_TRACK_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 1e-3)


def _missing_detail(sharp: np.ndarray, low_size: tuple[int, int]) -> np.ndarray:
    """What upsampling loses: a sharp grey float32 image minus itself shrunk to `low_size` (w, h) and grown back.

    Added to an upsampled frame, it restores exactly the frequencies the low resolution could not hold.
    """
    height, width = sharp.shape
    small = cv2.resize(sharp, low_size, interpolation=cv2.INTER_AREA)
    return sharp - cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def _to_smaller(factor: float) -> np.ndarray:
    """3x3 from pixels of an image to pixels of its copy `factor` times smaller."""
    return pixel_scale(1.0 / factor)


def _add_detail(base: np.ndarray, detail: np.ndarray) -> np.ndarray:
    """Add a float32 (height, width) detail layer to every channel of an RGB uint8 image (a change of luma)."""
    return cv2.add(base, cv2.merge([detail, detail, detail]), dtype=cv2.CV_8U)


def _agreement(image: np.ndarray, reference: np.ndarray, sigma: float) -> np.ndarray:
    """Per pixel 0-1: how alike two grey float32 images are at low frequency."""
    difference = cv2.GaussianBlur(image, (0, 0), sigma) - cv2.GaussianBlur(reference, (0, 0), sigma)
    return np.exp(-((difference / _AGREE_LEVELS) ** 2)).astype(np.float32)


def _canvas_to_image(image: np.ndarray, layout: Layout) -> np.ndarray:
    """3x3 from image pixels to canvas pixels: a face match gives the start, ECC refines it.

    With no character found, the image is assumed to show the whole canvas fitted (a wide shot).
    """
    height, width = image.shape[:2]
    canvas_h, canvas_w = layout.canvas.shape[:2]
    faces = locate_characters(image, layout)
    found = [
        (face.score, face.box, placement.face_box)
        for placement in layout.placements
        if (face := faces[placement.id]).method != "canvas"
    ]
    if found:
        _, box, (cx0, cy0, cx1, cy1) = max(found, key=lambda item: item[0])
        scale = np.sqrt(((box[2] - box[0]) * (box[3] - box[1])) / ((cx1 - cx0) * (cy1 - cy0)))
        shift = ((box[0] + box[2]) / 2 - scale * (cx0 + cx1) / 2, (box[1] + box[3]) / 2 - scale * (cy0 + cy1) / 2)
    else:
        scale = min(width / canvas_w, height / canvas_h)
        shift = ((width - scale * canvas_w) / 2, (height - scale * canvas_h) / 2)
    to_image = np.array([[scale, 0, shift[0]], [0, scale, shift[1]], [0, 0, 1]])
    to_canvas = np.linalg.inv(to_image)
    # Refine: the canvas brought into the image's frame by the start, then ECC between the two.
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    canvas_grey = cv2.cvtColor(layout.canvas, cv2.COLOR_RGB2GRAY)
    if scale < 0.8:  # a shrinking warp samples, it does not average: blur first, as an area resize would
        canvas_grey = cv2.GaussianBlur(canvas_grey, (0, 0), 0.5 / scale)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    brought = cv2.warpAffine(
        canvas_grey, to_canvas[:2], (width, height), flags=flags, borderMode=cv2.BORDER_REFLECT_101
    )
    refine, correlation = estimate_motion(grey, brought)
    logger.debug("keyframe aligned to the canvas (ECC correlation %.2f, %d faces)", correlation, len(found))
    return to_canvas @ np.vstack([refine, [0.0, 0.0, 1.0]])


def upscale_with_reference(image: np.ndarray, layout: Layout, height: int, width: int, strength: float) -> Frame:
    """A keyframe at height x width: upsampled, plus the canvas's fine detail where canvas and keyframe agree.

    Args:
        image: the keyframe, RGB uint8 (h, w, 3).
        layout: the canvas the keyframe was made from.
        height, width: the output size.
        strength: how much of the detail is added (the backend's `detail` option).
    """
    up = cv2.resize(image[..., :3], (width, height), interpolation=cv2.INTER_CUBIC)
    if strength <= 0:
        return up
    factor = width / image.shape[1]
    to_canvas = _canvas_to_image(image, layout) @ _to_smaller(factor)  # output px -> canvas px
    canvas_grey = cv2.cvtColor(layout.canvas, cv2.COLOR_RGB2GRAY).astype(np.float32)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    reference = cv2.warpAffine(canvas_grey, to_canvas[:2], (width, height), flags=flags, borderValue=-1.0)
    valid = (reference >= 0).astype(np.float32)
    reference = np.maximum(reference, 0.0)
    detail = _missing_detail(reference, (image.shape[1], image.shape[0]))
    up_grey = cv2.cvtColor(up, cv2.COLOR_RGB2GRAY).astype(np.float32)
    weight = _agreement(up_grey, reference, max(1.0, factor)) * cv2.erode(valid, np.ones((5, 5), np.uint8))
    return _add_detail(up, strength * weight * detail)


class SuperResolver:
    """Streams a sub-clip's low-resolution frames to height x width with detail from its two high-res anchors.

    Frame `k` of `n` takes the first anchor's detail with weight 1 - a and the last's with a (a = k / (n - 1)),
    each where it agrees with the frame. Alignment is cheap: the anchors' own motion (one ECC per sub-clip) says
    how the frames travel between them, and a short ECC at 128 px against the nearer anchor, warm-started from the
    previous frame, refines it. The last anchor's detail is brought into the first anchor's frame once, so each
    frame costs one full-size warp.
    """

    def __init__(
        self, first_anchor: np.ndarray, last_anchor: np.ndarray, height: int, width: int, strength: float
    ) -> None:
        self.size = (height, width)
        self.strength = strength
        self.anchors = (fit(first_anchor, height, width), fit(last_anchor, height, width))
        self._low: tuple[int, int] | None = None

    def _prepare(self, low_height: int, low_width: int) -> None:
        """Everything that depends on the frames' size: detail layers, small anchors, the anchors' motion."""
        self._low = (low_height, low_width)
        self.to_low = _to_smaller(self.size[1] / low_width)
        low = [cv2.cvtColor(fit(anchor, low_height, low_width), cv2.COLOR_RGB2GRAY) for anchor in self.anchors]
        # end(x) ~ start(motion x), in low-res pixels; then in high-res pixels
        self.motion = np.vstack([estimate_motion(low[1], low[0])[0], [0.0, 0.0, 1.0]])
        end_to_start = np.linalg.inv(np.linalg.inv(self.to_low) @ self.motion @ self.to_low)  # start px -> end px
        greys = [cv2.cvtColor(anchor, cv2.COLOR_RGB2GRAY).astype(np.float32) for anchor in self.anchors]
        details = [_missing_detail(grey, (low_width, low_height)) for grey in greys]
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        self.details = (
            details[0],
            cv2.warpAffine(
                details[1], end_to_start[:2], self.size[::-1], flags=flags, borderMode=cv2.BORDER_REFLECT_101
            ),
        )
        # Small copies: for tracking (128 px) and for the agreement maps (256 px), all in the first anchor's frame.
        self.track_factor = min(1.0, _TRACK_WIDTH / low_width)
        self.track_size = (max(8, round(low_width * self.track_factor)), max(8, round(low_height * self.track_factor)))
        self.track_anchors = [cv2.resize(image, self.track_size, interpolation=cv2.INTER_AREA) for image in low]
        self.agree_factor = min(1.0, 2 * _TRACK_WIDTH / low_width)
        self.agree_size = (max(8, round(low_width * self.agree_factor)), max(8, round(low_height * self.agree_factor)))
        small = [cv2.resize(image, self.agree_size, interpolation=cv2.INTER_AREA).astype(np.float32) for image in low]
        to_agree = _to_smaller(1 / self.agree_factor)
        end_in_start = np.linalg.inv(to_agree) @ np.linalg.inv(self.motion) @ to_agree  # small start px -> small end px
        self.agree_anchors = (
            small[0],
            cv2.warpAffine(small[1], end_in_start[:2], self.agree_size, flags=flags, borderMode=cv2.BORDER_REFLECT_101),
        )
        self._warm: np.ndarray | None = None  # last frame -> start warp, low-res pixels

    def _track(self, frame_small: np.ndarray, share: float) -> np.ndarray:
        """3x3 frame px -> first anchor px (low-res): the anchors' motion refined by ECC against the nearer anchor."""
        nearer = 0 if share < 0.5 else 1
        guess = np.eye(3) + share * (self.motion - np.eye(3))  # frame px -> start px, as the morph moves
        if self._warm is not None:
            guess = self._warm
        to_nearer = guess if nearer == 0 else np.linalg.inv(self.motion) @ guess
        small = to_nearer[:2].astype(np.float32).copy()
        small[:, 2] *= self.track_factor
        try:
            _, small = cv2.findTransformECC(
                frame_small, self.track_anchors[nearer], small, cv2.MOTION_AFFINE, _TRACK_CRITERIA, None, 1
            )
        except cv2.error:  # lost track (a cut, a flat frame): fall back on the anchors' own motion
            self._warm = None
            return np.eye(3) + share * (self.motion - np.eye(3))
        refined = np.vstack([small.astype(np.float64), [0.0, 0.0, 1.0]])
        refined[:2, 2] /= self.track_factor
        to_start = refined if nearer == 0 else self.motion @ refined
        if np.abs(to_start - guess).max() > 0.25 * max(self._low or (1, 1)):  # a jump, not a refinement
            to_start = guess
        self._warm = to_start
        return to_start

    def frame(self, low: np.ndarray, index: int, count: int) -> Frame:
        """The frame `index` of `count`, at height x width."""
        if self._low != low.shape[:2]:
            self._prepare(*low.shape[:2])
        height, width = self.size
        up = cv2.resize(low[..., :3], (width, height), interpolation=cv2.INTER_CUBIC)
        if self.strength <= 0:
            return up
        share = min(1.0, index / (count - 1)) if count > 1 else 0.0
        low_grey = cv2.cvtColor(low, cv2.COLOR_RGB2GRAY)
        to_start = self._track(cv2.resize(low_grey, self.track_size, interpolation=cv2.INTER_AREA), share)
        # Agreement, in the first anchor's frame at 256 px: the frame brought there against each anchor.
        to_agree = _to_smaller(1 / self.agree_factor)
        start_to_frame = np.linalg.inv(to_agree) @ np.linalg.inv(to_start) @ to_agree
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        frame_small = cv2.resize(low_grey, self.agree_size, interpolation=cv2.INTER_AREA).astype(np.float32)
        brought = cv2.warpAffine(
            frame_small, start_to_frame[:2], self.agree_size, flags=flags, borderMode=cv2.BORDER_REFLECT_101
        )
        weights = [(1.0 - share) * self.strength, share * self.strength]
        detail = np.zeros(self.size, np.float32)
        for which, weight in enumerate(weights):
            if weight < 0.02:
                continue
            agree = _agreement(brought, self.agree_anchors[which], 1.0) * np.float32(weight)
            detail += cv2.resize(agree, (width, height), interpolation=cv2.INTER_LINEAR) * self.details[which]
        to_detail = (np.linalg.inv(self.to_low) @ to_start @ self.to_low)[:2]  # frame px -> first anchor px, high-res
        detail = cv2.warpAffine(detail, to_detail, (width, height), flags=flags, borderMode=cv2.BORDER_REFLECT_101)
        return _add_detail(up, detail)

    def stream(self, frames: Iterable[Frame], count: int) -> Iterator[Frame]:
        """Yield exactly one frame per input frame, in order."""
        for index, low in enumerate(frames):
            yield self.frame(low, index, count)
