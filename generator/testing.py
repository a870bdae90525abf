"""A conformance suite for render backends, and small synthetic requests to drive it (like `fsspec.tests.abstract`).

A backend's test module subclasses `BackendConformance` and says how to build the backend::

    from codirector.generator.testing import BackendConformance

    class TestMyBackendConformance(BackendConformance):
        def make_backend(self):
            return MyBackend(steps=2)

Every capability the backend declares is then checked for what the cascade relies on (frame count, size and type,
determinism per seed, anchors kept, low frequencies kept by the upscalers, masks per character), and every capability
it does not declare must raise `BackendCapabilityError`. The requests are synthetic (a drawn face, a buzzing voice),
so no files are needed. This module imports pytest: import it from tests only.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import cv2
import numpy as np
import pytest

from codirector.errors import BackendCapabilityError
from codirector.generator.backend import (
    Backend,
    Capability,
    CharacterCondition,
    ClipRequest,
    Frame,
    InterpolationRequest,
    MaskRequest,
    ShotDirection,
    SuperResolutionRequest,
    UpscaleRequest,
    VideoRequest,
)
from codirector.schemas.render_plan import DiffusionSettings
from codirector.schemas.storyline import Camera, EmotionCue
from codirector.schemas.vocab import Emotion, ShotSize

__all__ = [
    "BackendConformance",
    "ConformanceRequests",
    "low_frequency_error",
    "make_direction",
    "make_requests",
    "mean_abs_error",
    "synthetic_face",
    "synthetic_voice",
]


def synthetic_face(height: int = 128, width: int = 128, *, seed: int = 0) -> np.ndarray:
    """A drawn head-and-shoulders portrait, RGB uint8 (height, width, 3): skin, hair, brows, eyes, nose, lips.

    Colours and a fine skin texture come from `seed`, so two seeds give two people a face matcher can tell apart.
    """
    rng = np.random.default_rng(seed)
    skin = rng.uniform([170, 120, 90], [235, 190, 160])
    hair = rng.uniform([20, 10, 5], [120, 80, 50])
    backdrop = rng.uniform([40, 60, 80], [160, 170, 200])
    shirt = rng.uniform(20, 220, size=3)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.empty((height, width, 3), np.float32)
    image[:] = backdrop * (0.8 + 0.4 * ys[..., None] / height)  # a lit wall
    cx, cy, face_w, face_h = width / 2, 0.42 * height, 0.2 * min(height, width), 0.26 * min(height, width)

    def ellipse(x: float, y: float, rx: float, ry: float) -> np.ndarray:
        return ((xs - x) / rx) ** 2 + ((ys - y) / ry) ** 2 <= 1.0

    image[ellipse(cx, height * 1.05, 0.45 * width, 0.38 * height)] = shirt
    image[(np.abs(xs - cx) < 0.35 * face_w) & (ys > cy) & (ys < cy + 1.6 * face_h)] = skin * 0.85  # neck
    image[ellipse(cx, cy - 0.15 * face_h, 1.12 * face_w, 1.1 * face_h)] = hair
    face = ellipse(cx, cy, face_w, face_h)
    image[face] = skin
    for side in (-1, 1):
        eye_x, eye_y = cx + side * 0.4 * face_w, cy - 0.15 * face_h
        image[ellipse(eye_x, eye_y - 0.22 * face_h, 0.28 * face_w, 0.05 * face_h)] = hair  # brow
        image[ellipse(eye_x, eye_y, 0.2 * face_w, 0.09 * face_h)] = (240, 240, 235)
        image[ellipse(eye_x, eye_y, 0.08 * face_w, 0.08 * face_h)] = (40, 30, 25)
    image[ellipse(cx, cy + 0.25 * face_h, 0.1 * face_w, 0.1 * face_h)] = skin * 0.75  # nose
    mouth_y = cy + 0.55 * face_h
    image[ellipse(cx, mouth_y, 0.38 * face_w, 0.1 * face_h)] = (170, 60, 70)  # lips
    image[(np.abs(ys - mouth_y) < 0.02 * face_h + 0.5) & (np.abs(xs - cx) < 0.34 * face_w)] = (70, 20, 30)
    texture = cv2.GaussianBlur(rng.normal(0, 6, (height, width)).astype(np.float32), (0, 0), 0.7)
    image += texture[..., None] * face[..., None]
    return np.clip(cv2.GaussianBlur(image, (0, 0), 0.6), 0, 255).astype(np.uint8)


def synthetic_voice(duration_s: float, sample_rate: int = 16_000, *, seed: int = 0) -> np.ndarray:
    """A voice-like mono float32 signal: harmonic bursts at syllable rate (about 4 Hz) with silences between words.

    Returns:
        float32 samples, peak about 0.3.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    pitch = 120 + 40 * rng.random() + 10 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = np.clip(np.sin(2 * np.pi * (3.5 + rng.random()) * t + rng.uniform(0, 2 * np.pi)), 0, None)
    words = (np.sin(2 * np.pi * 0.6 * t + rng.uniform(0, 2 * np.pi)) > -0.3).astype(np.float64)
    return (0.12 * voiced * syllables * words).astype(np.float32)


def make_direction(
    start_s: float,
    end_s: float,
    *,
    shot_size: ShotSize = ShotSize.MEDIUM_CLOSE_UP,
    camera: Camera | None = None,
    speakers: tuple[str, ...] = (),
    shot_index: int = 0,
) -> ShotDirection:
    """One shot over start_s-end_s (the segment is the whole shot), neutral emotion."""
    return ShotDirection(
        start_s=start_s, end_s=end_s, shot_index=shot_index, shot_start_s=start_s, shot_end_s=end_s,
        shot_size=shot_size, camera=camera or Camera(), emotion=EmotionCue(label=Emotion.NEUTRAL),
        speakers=speakers, prompt="a person talks to the camera",
    )  # fmt: skip


def _shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REFLECT_101)


@dataclass(frozen=True)
class ConformanceRequests:
    """One request of each kind, sized alike; `super_resolution()` builds a fresh one (its frames are consumed)."""

    video: VideoRequest
    clip: ClipRequest
    interpolation: InterpolationRequest
    upscale: UpscaleRequest
    masks: MaskRequest
    low_res_frames: tuple[Frame, ...]
    high_height: int
    high_width: int

    def super_resolution(self, frames: Iterable[Frame] | None = None) -> SuperResolutionRequest:
        return SuperResolutionRequest(
            frames=self.low_res_frames if frames is None else frames, num_frames=len(self.low_res_frames),
            first_anchor=self.clip.first_frame, last_anchor=self.clip.last_frame, prompt=self.video.prompt,
            characters=self.video.characters, start_s=0.0, fps=self.video.fps, height=self.high_height,
            width=self.high_width, sampler=self.video.sampler,
        )  # fmt: skip


def make_requests(
    *, height: int = 64, width: int = 96, num_frames: int = 8, seed: int = 0, fps: float = 25.0, upscale: int = 2
) -> ConformanceRequests:
    """Synthetic requests of every kind for one talking character (two for the masks), from no files.

    Args:
        height, width: the low resolution (blueprint, sub-clips); keyframes and anchors are `upscale` times larger.
        num_frames: frames of every video request.
        seed: the sampler seed of every request.
        fps: frame rate.
        upscale: high resolution over low resolution.
    """
    duration_s = num_frames / fps
    high_h, high_w = height * upscale, width * upscale
    portrait = synthetic_face(high_h, high_w, seed=1)
    host = CharacterCondition(id="host", reference=portrait, audio=synthetic_voice(duration_s + 0.2, seed=1))
    common: dict[str, Any] = {
        "prompt": "a person talks to the camera",
        "characters": (host,),
        "directions": (make_direction(0.0, duration_s, speakers=("host",)),),
        "fps": fps,
        "num_frames": num_frames,
        "height": height,
        "width": width,
        "sampler": DiffusionSettings(num_inference_steps=2, guidance_scale=1.0, seed=seed),
    }
    first, last = portrait, _shifted(portrait, 0.04 * high_w, 0.02 * high_h)  # the camera drifts a little
    low = cv2.resize(portrait, (width, height), interpolation=cv2.INTER_AREA)
    shares = [index / max(1, num_frames - 1) for index in range(num_frames)]
    low_frames = tuple(_shifted(low, 0.04 * width * a, 0.02 * height * a) for a in shares)
    stranger = synthetic_face(high_h, high_w, seed=2)
    guest = CharacterCondition(id="guest", reference=stranger)
    pair = np.concatenate([portrait, stranger], axis=1)
    return ConformanceRequests(
        video=VideoRequest(**common),
        clip=ClipRequest(**common, first_frame=first, last_frame=last),
        interpolation=InterpolationRequest(**common, before=low_frames[0], after=low_frames[-1]),
        upscale=UpscaleRequest(
            image=low,
            time_s=0.0,
            prompt=common["prompt"],
            characters=(host,),
            direction=common["directions"][0],
            height=high_h,
            width=high_w,
            sampler=common["sampler"],
        ),
        masks=MaskRequest(
            image=cv2.resize(pair, (2 * width, height), interpolation=cv2.INTER_AREA), characters=(host, guest)
        ),
        low_res_frames=low_frames,
        high_height=high_h,
        high_width=high_w,
    )


def mean_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two images, in 0-255 levels."""
    return float(np.mean(np.abs(a.astype(np.float32) - b.astype(np.float32))))


def low_frequency_error(a: np.ndarray, b: np.ndarray, sigma: float) -> float:
    """Mean absolute difference of two images after a Gaussian blur of `sigma` pixels: what survives is layout."""
    blur = [cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigma) for image in (a, b)]
    return mean_abs_error(blur[0], blur[1])


def _check_frames(frames: list[Frame], count: int, height: int, width: int) -> None:
    assert len(frames) == count, f"expected {count} frames, got {len(frames)}"
    for index, frame in enumerate(frames):
        assert isinstance(frame, np.ndarray), f"frame {index} is a {type(frame).__name__}, not a numpy array"
        assert frame.dtype == np.uint8, f"frame {index} is {frame.dtype}, not uint8"
        assert frame.shape == (height, width, 3), f"frame {index} is {frame.shape}, not {(height, width, 3)}"


def _assert_same(copy: Any, original: Any, where: str) -> None:
    """Equal values, looking inside dataclasses, sequences and arrays (whose == is element-wise)."""
    assert type(copy) is type(original), where
    if dataclasses.is_dataclass(original):
        for field in dataclasses.fields(original):
            _assert_same(getattr(copy, field.name), getattr(original, field.name), f"{where}.{field.name}")
    elif isinstance(original, np.ndarray):
        np.testing.assert_array_equal(copy, original, err_msg=where)
    elif isinstance(original, list | tuple):
        assert len(copy) == len(original), where
        for index, (a, b) in enumerate(zip(copy, original, strict=True)):
            _assert_same(a, b, f"{where}[{index}]")
    else:
        assert copy == original, where


def _fit(image: np.ndarray, height: int, width: int) -> np.ndarray:
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


class BackendConformance:
    """Tests every backend must pass; subclass it as `Test...` and implement `make_backend`.

    Thresholds are class attributes, in 0-255 grey levels, so a backend whose model is looser can say so:

    Attributes:
        anchor_tolerance: largest mean absolute error between a first-last-frame clip's first (last) frame and its
            first (last) anchor resized to the clip's size. 12 levels keeps the anchor recognisable to the eye
            while allowing a VAE's round trip (typically 3-8 levels).
        low_frequency_tolerance: largest mean absolute error, after a Gaussian blur of 2 x the upscale factor,
            between an upscaled image (or super-resolved frame) and its input upsampled: upscaling may add detail,
            not move or recolour things.
        max_lookahead_frames: how many input frames `super_resolve` may read before yielding its first output;
            None leaves it unchecked (a video model may need a window).
        judge_fidelity: False for a backend built with random weights (a tiny test model): the checks of what
            the pictures look like (anchors kept, interpolation direction, upscalers keeping the image) are then
            skipped, and only the contract's structure (sizes, counts, seeds, pickling, errors) is tested.
    """

    height: ClassVar[int] = 64
    width: ClassVar[int] = 96
    num_frames: ClassVar[int] = 8
    upscale_factor: ClassVar[int] = 2
    anchor_tolerance: ClassVar[float] = 12.0
    low_frequency_tolerance: ClassVar[float] = 6.0
    max_lookahead_frames: ClassVar[int | None] = None
    judge_fidelity: ClassVar[bool] = True

    def needs_fidelity(self) -> None:
        if not self.judge_fidelity:
            pytest.skip(f"{type(self).__name__} uses random weights: what its pictures look like is not judged")

    def make_backend(self) -> Backend:
        """Build the backend under test (small and seeded: these tests should take seconds)."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_backend()")

    @pytest.fixture
    def backend(self) -> Backend:
        return self.make_backend()

    @pytest.fixture
    def requests(self) -> ConformanceRequests:
        return self.build_requests(seed=0)

    def build_requests(self, seed: int) -> ConformanceRequests:
        return make_requests(
            height=self.height, width=self.width, num_frames=self.num_frames, seed=seed, upscale=self.upscale_factor
        )

    @staticmethod
    def needs(backend: Backend, capability: Capability) -> None:
        if capability not in backend.capabilities:
            pytest.skip(f"{backend.name} does not declare {capability.value}")

    @staticmethod
    def call(backend: Backend, capability: Capability, requests: ConformanceRequests) -> Any:
        """Run the method of a capability on its synthetic request; video methods are drained into a list."""
        if capability is Capability.TEXT_TO_VIDEO:
            return list(backend.text_to_video(requests.video))
        if capability is Capability.IMAGE_UPSCALE:
            return backend.upscale_image(requests.upscale)
        if capability is Capability.FIRST_LAST_FRAME:
            return list(backend.first_last_frame(requests.clip))
        if capability is Capability.AUDIO_INTERPOLATION:
            return list(backend.interpolate(requests.interpolation))
        if capability is Capability.VIDEO_SUPER_RESOLUTION:
            return list(backend.super_resolve(requests.super_resolution()))
        return backend.predict_masks(requests.masks)

    # -- the backend as a whole --------------------------------------------------------------------------------

    def test_has_a_name(self, backend: Backend) -> None:
        assert isinstance(type(backend).name, str)
        assert type(backend).name.strip()

    def test_declares_capabilities(self, backend: Backend) -> None:
        assert backend.capabilities, "a backend must declare at least one capability"
        assert all(isinstance(capability, Capability) for capability in backend.capabilities)

    def test_config_is_json(self, backend: Backend) -> None:
        assert json.loads(json.dumps(backend.config())) == backend.config()

    @pytest.mark.parametrize("capability", list(Capability))
    def test_undeclared_capability_raises(
        self, backend: Backend, requests: ConformanceRequests, capability: Capability
    ) -> None:
        if capability in backend.capabilities:
            pytest.skip(f"{backend.name} declares {capability.value}")
        with pytest.raises(BackendCapabilityError):
            self.call(backend, capability, requests)

    def test_requests_pickle(self, requests: ConformanceRequests) -> None:
        """Requests travel to process-pool and Ray workers: they must survive pickling unchanged."""
        for request in (
            requests.video, requests.clip, requests.interpolation, requests.upscale, requests.masks,
            requests.super_resolution(list(requests.low_res_frames)),
        ):  # fmt: skip
            _assert_same(pickle.loads(pickle.dumps(request)), request, type(request).__name__)

    # -- frames: count, size, type, determinism ----------------------------------------------------------------

    @pytest.mark.parametrize(
        "capability", [Capability.TEXT_TO_VIDEO, Capability.FIRST_LAST_FRAME, Capability.AUDIO_INTERPOLATION]
    )
    def test_video_frames(self, backend: Backend, requests: ConformanceRequests, capability: Capability) -> None:
        self.needs(backend, capability)
        _check_frames(self.call(backend, capability, requests), self.num_frames, self.height, self.width)

    @pytest.mark.parametrize(
        "capability",
        [
            Capability.TEXT_TO_VIDEO,
            Capability.FIRST_LAST_FRAME,
            Capability.AUDIO_INTERPOLATION,
            Capability.IMAGE_UPSCALE,
        ],
    )
    def test_same_seed_same_output(self, backend: Backend, capability: Capability) -> None:
        self.needs(backend, capability)
        first = self.call(backend, capability, self.build_requests(seed=7))
        again = self.call(self.make_backend(), capability, self.build_requests(seed=7))
        np.testing.assert_array_equal(np.asarray(first), np.asarray(again))
        other = self.call(backend, capability, self.build_requests(seed=8))  # may differ; must still be valid
        assert np.asarray(other).shape == np.asarray(first).shape

    def test_first_last_frame_keeps_its_anchors(self, backend: Backend, requests: ConformanceRequests) -> None:
        self.needs(backend, Capability.FIRST_LAST_FRAME)
        self.needs_fidelity()
        frames = self.call(backend, Capability.FIRST_LAST_FRAME, requests)
        first = _fit(requests.clip.first_frame, self.height, self.width)
        last = _fit(requests.clip.last_frame, self.height, self.width)
        assert mean_abs_error(frames[0], first) <= self.anchor_tolerance
        assert mean_abs_error(frames[-1], last) <= self.anchor_tolerance

    def test_interpolate_goes_from_before_to_after(self, backend: Backend, requests: ConformanceRequests) -> None:
        self.needs(backend, Capability.AUDIO_INTERPOLATION)
        self.needs_fidelity()
        frames = self.call(backend, Capability.AUDIO_INTERPOLATION, requests)
        before, after = requests.interpolation.before, requests.interpolation.after
        assert mean_abs_error(frames[0], before) < mean_abs_error(frames[0], after)
        assert mean_abs_error(frames[-1], after) < mean_abs_error(frames[-1], before)

    # -- upscalers keep low frequencies ------------------------------------------------------------------------

    def test_upscale_image_keeps_the_image(self, backend: Backend, requests: ConformanceRequests) -> None:
        self.needs(backend, Capability.IMAGE_UPSCALE)
        self.needs_fidelity()
        image = self.call(backend, Capability.IMAGE_UPSCALE, requests)
        _check_frames([image], 1, requests.high_height, requests.high_width)
        upsampled = cv2.resize(
            requests.upscale.image, (requests.high_width, requests.high_height), interpolation=cv2.INTER_CUBIC
        )
        assert low_frequency_error(image, upsampled, 2.0 * self.upscale_factor) <= self.low_frequency_tolerance

    def test_super_resolve_keeps_each_frame(self, backend: Backend, requests: ConformanceRequests) -> None:
        self.needs(backend, Capability.VIDEO_SUPER_RESOLUTION)
        self.needs_fidelity()
        frames = self.call(backend, Capability.VIDEO_SUPER_RESOLUTION, requests)
        _check_frames(frames, len(requests.low_res_frames), requests.high_height, requests.high_width)
        for frame, low in zip(frames, requests.low_res_frames, strict=True):
            upsampled = cv2.resize(low, (requests.high_width, requests.high_height), interpolation=cv2.INTER_CUBIC)
            assert low_frequency_error(frame, upsampled, 2.0 * self.upscale_factor) <= self.low_frequency_tolerance

    def test_super_resolve_streams(self, backend: Backend, requests: ConformanceRequests) -> None:
        self.needs(backend, Capability.VIDEO_SUPER_RESOLUTION)
        if self.max_lookahead_frames is None:
            pytest.skip("max_lookahead_frames is not set for this backend")
        read = []

        def frames() -> Iterator[Frame]:
            for frame in requests.low_res_frames:
                read.append(frame)
                yield frame

        output = iter(backend.super_resolve(requests.super_resolution(frames())))
        next(output)
        assert len(read) <= self.max_lookahead_frames, f"read {len(read)} frames before the first output"

    # -- masks ---------------------------------------------------------------------------------------------------

    def test_predict_masks(self, backend: Backend, requests: ConformanceRequests) -> None:
        self.needs(backend, Capability.MULTI_CHARACTER)
        masks = self.call(backend, Capability.MULTI_CHARACTER, requests)
        height, width = requests.masks.image.shape[:2]
        assert set(masks) == {c.id for c in requests.masks.characters}
        for character_id, mask in masks.items():
            assert mask.shape == (height, width), character_id
            assert np.issubdtype(mask.dtype, np.floating), character_id
            assert mask.min() >= 0.0, character_id
            assert mask.max() <= 1.0, character_id
        if self.judge_fidelity:  # the two portraits stand side by side: each mask weighs more on its own half
            half = width // 2
            assert masks["host"][:, :half].mean() > masks["host"][:, half:].mean()
            assert masks["guest"][:, half:].mean() > masks["guest"][:, :half].mean()
