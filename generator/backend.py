"""The backend protocol: what a renderer must do for the cascade (KlingAvatar 2.0 sec. 3.1), one method per capability.

A backend declares the capabilities it has; a stage asks for the one it needs with `Backend.require`, which
raises `BackendCapabilityError` naming the backend, the capability and the stage. Requests are small frozen
dataclasses of numpy arrays and plain values, so they pickle to process-pool and Ray workers. Argument names
follow diffusers (`prompt`, `negative_prompt`, `height`, `width`, `num_frames`, `num_inference_steps`,
`guidance_scale`, `seed`).

Frames are RGB uint8 arrays of shape (height, width, 3). Video methods return iterators, so a stage writes
frames to disk as they come and memory does not grow with the length of the video. Write them as plain methods
that check their request and then return a generator: a generator function would only run its checks (and
`require`) at the first frame. Requests are built inside the worker that runs the task (a
`SuperResolutionRequest` holds a live iterator of frames), so they never need to travel between processes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

import numpy as np

from codirector.errors import BackendCapabilityError, ConfigError
from codirector.schemas.render_plan import DiffusionSettings, StageSettings
from codirector.schemas.storyline import Camera, EmotionCue
from codirector.schemas.vocab import ShotSize

__all__ = [
    "Backend",
    "Capability",
    "CharacterCondition",
    "ClipRequest",
    "Frame",
    "InterpolationRequest",
    "MaskRequest",
    "ShotDirection",
    "SuperResolutionRequest",
    "UpscaleRequest",
    "VideoRequest",
]

Frame = np.ndarray  # (height, width, 3) uint8 RGB


class Capability(StrEnum):
    """What a backend can do; each cascade stage needs one (docs/architecture.md, "The cascade")."""

    TEXT_TO_VIDEO = "text_to_video"  # the low-resolution blueprint of the whole video
    IMAGE_UPSCALE = "image_upscale"  # keyframes to high resolution, keeping identity and layout
    FIRST_LAST_FRAME = "first_last_frame"  # a sub-clip between two anchor keyframes
    AUDIO_INTERPOLATION = "audio_interpolation"  # transition frames driven by the audio at a seam
    VIDEO_SUPER_RESOLUTION = "video_super_resolution"  # sub-clips to the output resolution
    MULTI_CHARACTER = "multi_character"  # each character's audio gated to their own region (KlingAvatar 2.0 sec. 3.3)


@dataclass(frozen=True, kw_only=True)
class CharacterCondition:
    """One character as a request carries it.

    Attributes:
        id: the character's stable id.
        reference: the identity image, RGB uint8 (height, width, 3); None when the character is only in the scene.
        region_xyxy_norm: where the character stands in the scene image (x0, y0, x1, y1 in 0-1), if known.
        audio: this character's voice, mono float32 at the request's `sample_rate`, starting at the request's
            `start_s` and covering its frames; None for a character who does not speak here.
    """

    id: str
    reference: np.ndarray | None = None
    region_xyxy_norm: tuple[float, float, float, float] | None = None
    audio: np.ndarray | None = None


@dataclass(frozen=True, kw_only=True)
class ShotDirection:
    """The storyline's staging over a span of the timeline: one render-plan segment and the shot it belongs to.

    Camera moves run over the whole shot (`shot_start_s` to `shot_end_s`), not just over the segment, so that a
    push-in split across sub-clips is one continuous move.
    """

    start_s: float
    end_s: float
    shot_index: int
    shot_start_s: float
    shot_end_s: float
    shot_size: ShotSize
    camera: Camera
    emotion: EmotionCue
    speakers: tuple[str, ...] = ()
    prompt: str = ""
    negative_prompt: str = ""


@dataclass(frozen=True, kw_only=True)
class _Generation:
    """What every generation request shares: conditions, timeline position, size and sampler settings.

    Frame `i` of the output shows time `start_s + i / fps` on the audio timeline.
    """

    prompt: str
    negative_prompt: str = ""
    characters: tuple[CharacterCondition, ...]
    scene: np.ndarray | None = None
    directions: tuple[ShotDirection, ...]
    sample_rate: int = 16_000
    start_s: float = 0.0
    fps: float
    num_frames: int
    height: int
    width: int
    sampler: DiffusionSettings

    @property
    def seed(self) -> int:
        return self.sampler.seed

    def time_s(self, index: int) -> float:
        """Timeline time of output frame `index`."""
        return self.start_s + index / self.fps

    def direction_at(self, time_s: float) -> ShotDirection:
        """The staging in force at `time_s` (the last one that started at or before it)."""
        current = self.directions[0]
        for direction in self.directions:
            if direction.start_s <= time_s + 1e-9:
                current = direction
        return current


@dataclass(frozen=True, kw_only=True)
class VideoRequest(_Generation):
    """Text(-and-audio)-to-video: the blueprint, the whole timeline at low resolution from the global prompt."""


@dataclass(frozen=True, kw_only=True)
class ClipRequest(_Generation):
    """A first-last-frame sub-clip: `num_frames` frames whose first shows `first_frame` and last `last_frame`.

    The anchors come at any size (high resolution from the keyframe stage); the clip is made at height x width.
    """

    first_frame: Frame
    last_frame: Frame


@dataclass(frozen=True, kw_only=True)
class InterpolationRequest(_Generation):
    """Audio-conditioned transition: `num_frames` frames that go from `before` to `after`, exclusive of both.

    `before` is the frame just ahead of the window (time `start_s - 1/fps`), `after` the one just past it.
    """

    before: Frame
    after: Frame


@dataclass(frozen=True, kw_only=True)
class UpscaleRequest:
    """A keyframe to high resolution, keeping its identity, layout and expression (KlingAvatar 2.0 sec. 3.1)."""

    image: Frame
    time_s: float
    prompt: str
    negative_prompt: str = ""
    characters: tuple[CharacterCondition, ...]
    scene: np.ndarray | None = None
    direction: ShotDirection
    height: int
    width: int
    sampler: DiffusionSettings


@dataclass(frozen=True, kw_only=True)
class SuperResolutionRequest:
    """Low-resolution frames to height x width, guided by the high-resolution anchors of the sub-clip.

    `frames` is consumed once, in order; the result yields exactly one frame per input frame.
    """

    frames: Iterable[Frame]
    num_frames: int
    first_anchor: Frame
    last_anchor: Frame
    prompt: str
    negative_prompt: str = ""
    characters: tuple[CharacterCondition, ...]
    scene: np.ndarray | None = None
    sample_rate: int = 16_000
    start_s: float
    fps: float
    height: int
    width: int
    sampler: DiffusionSettings


@dataclass(frozen=True, kw_only=True)
class MaskRequest:
    """Where each character is in a frame: the masks that gate each character's audio (KlingAvatar 2.0 sec. 3.3)."""

    image: Frame
    characters: tuple[CharacterCondition, ...]
    scene: np.ndarray | None = None


class Backend:
    """Base class of render backends. Subclasses set `name`, `capabilities` and implement those methods.

    Options come from the job's `render.backend_options` or `--backend-option KEY=VALUE`; each backend validates
    its own in `__init__` and raises `ConfigError` for a bad one. `version` goes into every resume key: bump it
    when the same request would render differently, so that old artifacts are not reused.

    Example:
        >>> from codirector.generator import load_backend
        >>> backend = load_backend("preview")  # doctest: +SKIP
        >>> Capability.FIRST_LAST_FRAME in backend.capabilities  # doctest: +SKIP
        True
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    def __init__(self, **options: Any) -> None:
        if options:
            raise ConfigError(
                f"backend {self.name!r}",
                f"takes no option(s) {', '.join(sorted(options))}",
                "Remove them from render.backend_options or --backend-option.",
            )

    def config(self) -> dict[str, Any]:
        """The options this backend was built with, as JSON values: recorded in the manifest and resume keys."""
        return {}

    def report(self) -> dict[str, Any]:
        """What this backend wants the user to know about the render, as JSON values (the manifest's
        `backend_report`): which weights, what conditioning is trained and what is not. Cheap: loads no model."""
        return {}

    def require(self, capability: Capability, stage: str) -> None:
        """Raise `BackendCapabilityError` unless this backend declares `capability`."""
        if capability not in self.capabilities:
            raise BackendCapabilityError(self.name or type(self).__name__, capability.value, stage)

    def stage_settings(self, planned: StageSettings) -> StageSettings:
        """The stage settings to render with, given the plan's; a backend may change sizes, steps or scales."""
        return planned

    def text_to_video(self, request: VideoRequest) -> Iterator[Frame]:
        self.require(Capability.TEXT_TO_VIDEO, "blueprint")
        raise NotImplementedError

    def upscale_image(self, request: UpscaleRequest) -> Frame:
        self.require(Capability.IMAGE_UPSCALE, "upscale_keyframes")
        raise NotImplementedError

    def first_last_frame(self, request: ClipRequest) -> Iterator[Frame]:
        self.require(Capability.FIRST_LAST_FRAME, "subclips")
        raise NotImplementedError

    def interpolate(self, request: InterpolationRequest) -> Iterator[Frame]:
        self.require(Capability.AUDIO_INTERPOLATION, "transitions")
        raise NotImplementedError

    def super_resolve(self, request: SuperResolutionRequest) -> Iterator[Frame]:
        self.require(Capability.VIDEO_SUPER_RESOLUTION, "super_resolve")
        raise NotImplementedError

    def predict_masks(self, request: MaskRequest) -> dict[str, np.ndarray]:
        """Per-character masks, float32 (height, width) in 0-1, keyed by character id."""
        self.require(Capability.MULTI_CHARACTER, "subclips")
        raise NotImplementedError
