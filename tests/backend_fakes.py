"""A test-only backend: the simplest thing that honours every capability (resizes and cross-dissolves).

It is what a third party's minimal backend looks like, registered through `register_backend`, and it lets the
cascade's tests run without depending on how the preview backend animates. Not shipped: tests only.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from codirector.generator.backend import (
    Backend,
    Capability,
    ClipRequest,
    InterpolationRequest,
    MaskRequest,
    SuperResolutionRequest,
    UpscaleRequest,
    VideoRequest,
)


def _fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


class CrossfadeBackend(Backend):
    """Test double: blueprint = the first reference brightened by each frame's audio; clips = cross-dissolves."""

    name = "crossfade-test"
    capabilities = frozenset(Capability)

    def text_to_video(self, request: VideoRequest) -> Iterator[np.ndarray]:
        base = _fit(request.characters[0].reference, request.width, request.height).astype(np.float32)
        audio = request.characters[0].audio
        hop = request.sample_rate / request.fps
        for index in range(request.num_frames):
            chunk = audio[int(index * hop) : int((index + 1) * hop)] if audio is not None else np.zeros(1)
            gain = 1.0 + float(np.abs(chunk).mean() if len(chunk) else 0.0)
            yield np.clip(base * gain, 0, 255).astype(np.uint8)

    def upscale_image(self, request: UpscaleRequest) -> np.ndarray:
        return cv2.resize(request.image, (request.width, request.height), interpolation=cv2.INTER_CUBIC)

    def first_last_frame(self, request: ClipRequest) -> Iterator[np.ndarray]:
        first = _fit(request.first_frame, request.width, request.height).astype(np.float32)
        last = _fit(request.last_frame, request.width, request.height).astype(np.float32)
        for index in range(request.num_frames):
            weight = index / max(1, request.num_frames - 1)
            yield ((1 - weight) * first + weight * last).round().astype(np.uint8)

    def interpolate(self, request: InterpolationRequest) -> Iterator[np.ndarray]:
        before = _fit(request.before, request.width, request.height).astype(np.float32)
        after = _fit(request.after, request.width, request.height).astype(np.float32)
        for index in range(request.num_frames):
            weight = (index + 1) / (request.num_frames + 1)
            yield ((1 - weight) * before + weight * after).round().astype(np.uint8)

    def super_resolve(self, request: SuperResolutionRequest) -> Iterator[np.ndarray]:
        for frame in request.frames:
            yield cv2.resize(frame, (request.width, request.height), interpolation=cv2.INTER_LINEAR)

    def predict_masks(self, request: MaskRequest) -> dict[str, np.ndarray]:
        height, width = request.image.shape[:2]
        return {c.id: np.ones((height, width), np.float32) for c in request.characters}
