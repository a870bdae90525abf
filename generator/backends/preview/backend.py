"""`PreviewBackend`: every capability of the cascade on a CPU, at preview fidelity, in milliseconds per frame.

It animates the reference images rather than generating new pixels, so a plan can be watched (camera language,
who speaks when, lip timing, sub-clip seams) before it is rendered with a diffusion backend. Each method does what
its cascade stage asks of a real model (KlingAvatar 2.0 sec. 3.1) in the cheapest way that still shows it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np

from codirector.errors import ConfigError
from codirector.generator.backend import (
    Backend,
    Capability,
    ClipRequest,
    Frame,
    InterpolationRequest,
    MaskRequest,
    SuperResolutionRequest,
    UpscaleRequest,
    VideoRequest,
)
from codirector.generator.backends.preview.blueprint import render_blueprint
from codirector.generator.backends.preview.detail import SuperResolver, upscale_with_reference
from codirector.generator.backends.preview.layout import compose_layout
from codirector.generator.backends.preview.locate import (
    canvas_region,
    head_and_shoulders,
    locate_characters,
    region_mask,
)
from codirector.generator.backends.preview.morph import Morph, fit, render_morph

__all__ = ["PreviewBackend"]

logger = logging.getLogger(__name__)

# option -> (default, lowest, highest, what it does)
_OPTIONS: dict[str, tuple[float, float, float, str]] = {
    "mouth_gain": (1.0, 0.0, 3.0, "scale of the audio-driven mouth opening"),
    "motion": (1.0, 0.0, 3.0, "scale of the characters' head and body motion"),
    "detail": (1.0, 0.0, 2.0, "strength of the reference detail added when upscaling"),
}
_TAPER_S = 0.12  # a sub-clip's mouth fades in and out over this much time at its anchors (3 frames at 25 fps)


def _option(name: str, value: Any) -> float:
    default, low, high, meaning = _OPTIONS[name]
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or not low <= number <= high:
        raise ConfigError(
            f"backend option {name}",
            f"must be a number from {low:g} to {high:g} ({meaning}), got {value!r}",
            f"Set it within range, e.g. {name}={default:g}.",
        )
    return number


def _check_size(what: str, height: int, width: int, num_frames: int | None = None) -> None:
    if height < 16 or width < 16:
        raise ValueError(f"{what}: height and width must be at least 16, got {height}x{width}")
    if num_frames is not None and num_frames < 1:
        raise ValueError(f"{what}: num_frames must be at least 1, got {num_frames}")


def _eased(distance: float, ramp: float) -> float:
    """0 at `distance` 0, 1 from `distance` = `ramp` on, smoothly in between."""
    share = min(1.0, max(0.0, distance) / ramp) if ramp > 0 else 1.0
    return share * share * (3 - 2 * share)


def _clip_schedule(num_frames: int, ramp: float) -> Callable[[int], tuple[float, float]]:
    """A sub-clip: frame i is i / (n - 1) of the way; the re-drawn mouth eases in from the first anchor and out
    into the last over `ramp` frames, so both anchors come out exactly as given."""

    def schedule(index: int) -> tuple[float, float]:
        share = index / (num_frames - 1) if num_frames > 1 else 0.0
        return share, _eased(min(index, num_frames - 1 - index), ramp)

    return schedule


def _seam_schedule(num_frames: int) -> Callable[[int], tuple[float, float]]:
    """A transition: frame i is (i + 1) / (n + 1) of the way from `before` to `after` (both outside the window).

    The seam is where lips must stay in sync, so the mouth follows the audio at full strength in every frame but
    the outermost ones, which ease it a little towards the already-rendered neighbours.
    """

    def schedule(index: int) -> tuple[float, float]:
        return (index + 1) / (num_frames + 1), _eased(min(index, num_frames - 1 - index) + 1, 1.5)

    return schedule


class PreviewBackend(Backend):
    """The embedded CPU backend: the reference images animated with a camera, an audio-driven mouth and idle motion.

    Args:
        mouth_gain: scale of the mouth opening (0-3; 0 keeps mouths closed).
        motion: scale of head and body motion (0-3; 0 keeps heads still). Camera moves are the storyline's, not this.
        detail: strength of the reference detail added by `upscale_image` and `super_resolve` (0-2; 0 upsamples only).

    Raises:
        ConfigError: an unknown option, or a value that is not a number in range.

    Example:
        >>> from codirector.generator.testing import make_requests
        >>> backend = PreviewBackend(motion=0.5)
        >>> frames = list(backend.text_to_video(make_requests(height=64, width=96, num_frames=4).video))
        >>> len(frames), frames[0].shape
        (4, (64, 96, 3))
    """

    name: ClassVar[str] = "preview"
    version: ClassVar[str] = "1"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(Capability)

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise ConfigError(
                "backend 'preview'",
                f"has no option(s) {', '.join(unknown)}",
                f"Use only {', '.join(sorted(_OPTIONS))} in render.backend_options or --backend-option.",
            )
        values = {name: _option(name, options[name]) if name in options else spec[0] for name, spec in _OPTIONS.items()}
        self.mouth_gain = values["mouth_gain"]
        self.motion = values["motion"]
        self.detail = values["detail"]

    def config(self) -> dict[str, Any]:
        return {"mouth_gain": self.mouth_gain, "motion": self.motion, "detail": self.detail}

    def text_to_video(self, request: VideoRequest) -> Iterator[Frame]:
        """The blueprint: the canvas framed by each shot's camera, mouths driven by each character's own audio."""
        self.require(Capability.TEXT_TO_VIDEO, "blueprint")
        _check_size("text_to_video", request.height, request.width, request.num_frames)
        layout = compose_layout(request.characters, request.scene)
        return render_blueprint(request, layout, motion=self.motion, mouth_gain=self.mouth_gain)

    def first_last_frame(self, request: ClipRequest) -> Iterator[Frame]:
        """A morph from the first anchor to the last; mouths fade in after the first and out before the last."""
        self.require(Capability.FIRST_LAST_FRAME, "subclips")
        _check_size("first_last_frame", request.height, request.width, request.num_frames)
        layout = compose_layout(request.characters, request.scene)
        morph = Morph.between(
            fit(request.first_frame, request.height, request.width),
            fit(request.last_frame, request.height, request.width),
        )
        schedule = _clip_schedule(request.num_frames, _TAPER_S * request.fps)
        return render_morph(
            morph, request.num_frames, schedule, layout, request.characters,
            seed=request.seed, sample_rate=request.sample_rate, fps=request.fps, mouth_gain=self.mouth_gain,
        )  # fmt: skip

    def interpolate(self, request: InterpolationRequest) -> Iterator[Frame]:
        """Transition frames between `before` and `after` whose mouths follow the audio across the whole window."""
        self.require(Capability.AUDIO_INTERPOLATION, "transitions")
        _check_size("interpolate", request.height, request.width, request.num_frames)
        layout = compose_layout(request.characters, request.scene)
        morph = Morph.between(
            fit(request.before, request.height, request.width), fit(request.after, request.height, request.width)
        )
        return render_morph(
            morph, request.num_frames, _seam_schedule(request.num_frames), layout, request.characters,
            seed=request.seed, sample_rate=request.sample_rate, fps=request.fps, mouth_gain=self.mouth_gain,
        )  # fmt: skip

    def upscale_image(self, request: UpscaleRequest) -> Frame:
        """The keyframe at height x width with the canvas's fine detail where they agree; layout and expression kept."""
        self.require(Capability.IMAGE_UPSCALE, "upscale_keyframes")
        _check_size("upscale_image", request.height, request.width)
        layout = compose_layout(request.characters, request.scene)
        return upscale_with_reference(request.image, layout, request.height, request.width, self.detail)

    def super_resolve(self, request: SuperResolutionRequest) -> Iterator[Frame]:
        """Each low-resolution frame at height x width, with detail from the two high-resolution anchors."""
        self.require(Capability.VIDEO_SUPER_RESOLUTION, "super_resolve")
        _check_size("super_resolve", request.height, request.width, request.num_frames)
        resolver = SuperResolver(request.first_anchor, request.last_anchor, request.height, request.width, self.detail)
        return resolver.stream(request.frames, request.num_frames)

    def predict_masks(self, request: MaskRequest) -> dict[str, np.ndarray]:
        """Per character a soft mask of where they are, float32 (height, width) in 0-1, keyed by character id.

        A character whose reference face is found in the image gets a head-and-shoulders mask around it; else their
        `region_xyxy_norm` (the image is taken to be the scene); else, with a reference, where the side-by-side
        canvas has them; else an empty mask.
        """
        self.require(Capability.MULTI_CHARACTER, "subclips")
        height, width = request.image.shape[:2]
        referenced = [c for c in request.characters if c.reference is not None]
        layout = compose_layout(referenced, None) if referenced else None
        faces = locate_characters(request.image[..., :3], layout) if layout is not None else {}
        masks: dict[str, np.ndarray] = {}
        for character in request.characters:
            face = faces.get(character.id)
            if face is not None and face.method != "canvas":
                masks[character.id] = head_and_shoulders((height, width), face.box)
            elif character.region_xyxy_norm is not None:
                x0, y0, x1, y1 = character.region_xyxy_norm
                masks[character.id] = region_mask((height, width), (x0 * width, y0 * height, x1 * width, y1 * height))
            elif layout is not None and (placement := layout.placement(character.id)) is not None:
                masks[character.id] = region_mask((height, width), canvas_region(layout, placement, width, height))
            else:
                masks[character.id] = np.zeros((height, width), np.float32)
        return masks
