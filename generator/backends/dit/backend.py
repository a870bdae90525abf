"""The `dit` backend: every cascade capability through the audio-driven Wan pipeline (KlingAvatar 2.0 sec. 3.1).

- text_to_video (blueprint): windows of `max_frames`, each conditioned on the reference picture as its first
  frame (reference-image conditioning), the global prompt and the audio;
- upscale_image: image-to-image at the high resolution (the keyframe's latents noised to `upscale_strength`);
- first_last_frame: the sub-clip between its anchors (Wan's first-last-frame layout), local prompt, audio slice;
- interpolate: the same between the frames either side of a seam, keeping the inner frames;
- super_resolve: video-to-video at the high resolution, `max_frames` at a time;
- predict_masks: the mask head's per-character masks (multi-character audio gating, sec. 3.3).

Sizes the model cannot take (not multiples of 16, or lengths not 4k + 1) are generated at the nearest size that
fits and resized or resampled to what the request asks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from codirector.errors import ConfigError
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

__all__ = ["DitBackend"]


def _fit16(value: int) -> int:
    return max(16, 16 * round(value / 16))


def _resize(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    import cv2

    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    shrink = frame.shape[1] > width
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def _slice(samples: np.ndarray, first: int, length: int) -> np.ndarray:
    """`length` samples from `first` (which may be negative, before the request's audio starts), zero-padded."""
    out = np.zeros(length, np.float32)
    begin, end = max(0, first), min(len(samples), first + length)
    if end > begin:
        out[begin - first : end - first] = samples[begin:end]
    return out


IDENTITY_SIDE = 64  # identity crops for the mask head, pixels (a multiple of 16)


def identity_crops(characters: Any, scene: np.ndarray | None) -> list[np.ndarray]:
    """Each character's identity picture at IDENTITY_SIDE: their reference, or their box cut from the scene."""
    crops = []
    for character in characters:
        image = character.reference
        if image is None and scene is not None and character.region_xyxy_norm is not None:
            height, width = scene.shape[:2]
            x0, y0, x1, y1 = character.region_xyxy_norm
            image = scene[int(y0 * height) : max(int(y1 * height), int(y0 * height) + 1),
                          int(x0 * width) : max(int(x1 * width), int(x0 * width) + 1)]  # fmt: skip
        if image is None:
            image = np.zeros((IDENTITY_SIDE, IDENTITY_SIDE, 3), np.uint8)
        crops.append(_resize(np.ascontiguousarray(image), IDENTITY_SIDE, IDENTITY_SIDE))
    return crops


def _resample(frames: list[np.ndarray], count: int) -> list[np.ndarray]:
    """`count` frames spread evenly over `frames`, first and last kept."""
    if len(frames) == count:
        return frames
    picks = np.round(np.linspace(0, len(frames) - 1, count)).astype(int)
    return [frames[i] for i in picks]


class DitBackend(Backend):
    """The neural backend. Options (from `--backend-option` or `render.backend_options`):

    Args:
        weights: a diffusers-format Wan image-to-video checkpoint folder; None with tiny=True for tests.
        adapter: our audio-attention and mask-head weights (safetensors).
        tiny: build tiny random modules instead of loading weights (tests, benchmarks, CI).
        device: "cpu", "cuda", "cuda:1"...; dtype: "float32", "bfloat16", "float16".
        audio_encoder: "logmel", "whisper:/path", "wav2vec2:/path".
        audio_scale: inference-time boost of the audio attention.
        max_frames: the longest clip sampled in one go (4k + 1; 81 for Wan 14B).
        upscale_strength, super_resolution_strength: how much of the schedule image/video-to-video runs.
        compile: torch.compile the transformer; cpu_offload: keep the VAE and text encoder on the CPU.
        sigmas: a custom few-step sigma schedule (e.g. [1.0, 0.75, 0.5, 0.25]) used for every clip.
        attention_backend: a diffusers attention backend name (e.g. "flash", "_native_cudnn").
    """

    name = "dit"
    version = "1"
    capabilities = frozenset(Capability)

    def __init__(
        self, weights: str | None = None, adapter: str | None = None, tiny: bool = False, device: str = "cpu",
        dtype: str = "float32", audio_encoder: str | None = None, audio_scale: float = 1.0, max_frames: int = 81,
        upscale_strength: float = 0.5, super_resolution_strength: float = 0.4, compile: bool = False,
        cpu_offload: bool = False, attention_backend: str | None = None, seed: int = 0,
        sigmas: list[float] | None = None,
    ) -> None:  # fmt: skip
        if weights is None and not tiny:
            raise ConfigError(
                "backend 'dit'", "needs weights",
                "Pass --backend-option weights=/path/to/wan-i2v (a diffusers folder), or tiny=true for a test model.",
            )  # fmt: skip
        if (max_frames - 1) % 4 or max_frames < 5:
            raise ConfigError("backend 'dit' option max_frames", f"must be 4k + 1 and at least 5, not {max_frames}",
                              "Use 81 (Wan) or 9, 17, 33...")  # fmt: skip
        if dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError("backend 'dit' option dtype", f"{dtype!r} is not a torch float type",
                              "Use float32, bfloat16 or float16.")  # fmt: skip
        self._options: dict[str, Any] = {
            "weights": weights, "adapter": adapter, "tiny": bool(tiny), "device": device, "dtype": dtype,
            "audio_encoder": audio_encoder, "audio_scale": float(audio_scale), "max_frames": int(max_frames),
            "upscale_strength": float(upscale_strength), "super_resolution_strength": float(super_resolution_strength),
            "compile": bool(compile), "cpu_offload": bool(cpu_offload), "attention_backend": attention_backend,
            "seed": int(seed), "sigmas": [float(v) for v in sigmas] if sigmas else None,
        }  # fmt: skip
        self._pipeline: Any = None

    def config(self) -> dict[str, Any]:
        return dict(self._options)

    @property
    def pipeline(self) -> Any:
        """Built on first use (so a backend made only to check options loads nothing)."""
        if self._pipeline is None:
            import torch

            from codirector.generator.backends.dit.pipeline import DitPipeline

            options = self._options
            dtype = getattr(torch, options["dtype"])
            if options["tiny"]:
                pipeline = DitPipeline.tiny(options["seed"], device=options["device"], dtype=dtype,
                                            audio_scale=options["audio_scale"], sigmas=options["sigmas"],
                                            cpu_offload=options["cpu_offload"])  # fmt: skip
            else:
                pipeline = DitPipeline.from_pretrained(
                    options["weights"], adapter=options["adapter"], audio_encoder=options["audio_encoder"],
                    device=options["device"], dtype=dtype, audio_scale=options["audio_scale"],
                    sigmas=options["sigmas"], cpu_offload=options["cpu_offload"],
                )  # fmt: skip
            if options["attention_backend"]:
                pipeline.transformer.set_attention_backend(options["attention_backend"])
            if options["compile"]:
                pipeline.transformer = torch.compile(pipeline.transformer)
            self._pipeline = pipeline
        return self._pipeline

    # --- helpers ----------------------------------------------------------------------------------------------

    def _conditions(self, request: Any, given: dict[int, np.ndarray], width: int, height: int, start: int,
                    count: int) -> Any:  # fmt: skip
        from codirector.generator.backends.dit.pipeline import ClipConditions

        rate = request.sample_rate
        first = round(start / request.fps * rate)
        length = round(count / request.fps * rate)
        audio = [None if c.audio is None else _slice(c.audio, first, length) for c in request.characters]
        reference = next((c.reference for c in request.characters if c.reference is not None), request.scene)
        negative = None
        if reference is not None:
            negative = self.pipeline.negative_image(_resize(reference, width, height), request.sampler.seed)
        return ClipConditions(
            prompt=request.prompt, negative_prompt=request.negative_prompt,
            given={i: _resize(f, width, height) for i, f in given.items()}, audio=audio, sample_rate=rate,
            fps=request.fps, negative_image=negative,
            references=identity_crops(request.characters, getattr(request, "scene", None)),
        )  # fmt: skip

    def _clip(self, request: Any, given: dict[int, np.ndarray], start: int, count: int) -> list[np.ndarray]:
        """Sample `count` frames from frame `start` of the request, with `given` frames at clip indices."""
        from codirector.generator.backends.dit.conditioning import LatentGrid, clip_length, video_to_frames

        width, height = _fit16(request.width), _fit16(request.height)
        length = clip_length(max(count, 2))
        given = {(length - 1 if i == count - 1 else i): f for i, f in given.items()}
        grid = LatentGrid(length, height, width)
        video = self.pipeline.sample(grid, self._conditions(request, given, width, height, start, count),
                                     request.sampler)  # fmt: skip
        frames = _resample(video_to_frames(video), count)
        return [_resize(f, request.width, request.height) for f in frames]

    # --- capabilities -----------------------------------------------------------------------------------------

    def text_to_video(self, request: VideoRequest) -> Iterator[np.ndarray]:
        self.require(Capability.TEXT_TO_VIDEO, "blueprint")
        reference = next((c.reference for c in request.characters if c.reference is not None), request.scene)
        window = self._options["max_frames"]

        def frames() -> Iterator[np.ndarray]:
            for start in range(0, request.num_frames, window):
                count = min(window, request.num_frames - start)
                given = {} if reference is None else {0: reference}
                yield from self._clip(request, given, start, count)

        return frames()

    def upscale_image(self, request: UpscaleRequest) -> np.ndarray:
        self.require(Capability.IMAGE_UPSCALE, "upscale_keyframes")
        from codirector.generator.backends.dit.conditioning import LatentGrid, frames_to_video, video_to_frames
        from codirector.generator.backends.dit.pipeline import ClipConditions

        width, height = _fit16(request.width), _fit16(request.height)
        image = _resize(request.image, width, height)
        start = self.pipeline.encode(frames_to_video([image]))
        conditions = ClipConditions(prompt=request.prompt, negative_prompt=request.negative_prompt, given={},
                                    audio=[], sample_rate=16_000, fps=25.0)  # fmt: skip
        video = self.pipeline.sample(LatentGrid(1, height, width), conditions, request.sampler, start=start,
                                     strength=self._options["upscale_strength"])  # fmt: skip
        return _resize(video_to_frames(video)[0], request.width, request.height)

    def first_last_frame(self, request: ClipRequest) -> Iterator[np.ndarray]:
        self.require(Capability.FIRST_LAST_FRAME, "subclips")
        count = request.num_frames
        return iter(self._clip(request, {0: request.first_frame, count - 1: request.last_frame}, 0, count))

    def interpolate(self, request: InterpolationRequest) -> Iterator[np.ndarray]:
        self.require(Capability.AUDIO_INTERPOLATION, "transitions")
        count = request.num_frames + 2  # the frames either side are the clip's ends
        frames = self._clip(request, {0: request.before, count - 1: request.after}, -1, count)
        return iter(frames[1:-1])

    def super_resolve(self, request: SuperResolutionRequest) -> Iterator[np.ndarray]:
        self.require(Capability.VIDEO_SUPER_RESOLUTION, "super_resolve")
        from codirector.generator.backends.dit.conditioning import (
            LatentGrid,
            clip_length,
            frames_to_video,
            video_to_frames,
        )
        from codirector.generator.backends.dit.pipeline import ClipConditions

        width, height = _fit16(request.width), _fit16(request.height)
        window = self._options["max_frames"]

        def chunks() -> Iterator[list[np.ndarray]]:
            chunk: list[np.ndarray] = []
            for frame in request.frames:
                chunk.append(_resize(frame, width, height))
                if len(chunk) == window:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk

        def frames() -> Iterator[np.ndarray]:
            for chunk in chunks():
                length = clip_length(len(chunk))
                padded = chunk + [chunk[-1]] * (length - len(chunk))
                start = self.pipeline.encode(frames_to_video(padded))
                conditions = ClipConditions(prompt=request.prompt, negative_prompt=request.negative_prompt,
                                            given={}, audio=[], sample_rate=16_000, fps=request.fps)  # fmt: skip
                strength = self._options["super_resolution_strength"]
                grid = LatentGrid(length, height, width)
                video = self.pipeline.sample(grid, conditions, request.sampler, start=start, strength=strength)
                for frame in video_to_frames(video)[: len(chunk)]:
                    yield _resize(frame, request.width, request.height)

        return frames()

    def predict_masks(self, request: MaskRequest) -> dict[str, np.ndarray]:
        self.require(Capability.MULTI_CHARACTER, "subclips")
        height, width = request.image.shape[:2]
        image = _resize(request.image, _fit16(width), _fit16(height))
        masks = self.pipeline.predict_masks(image, identity_crops(request.characters, request.scene))
        return {
            c.id: np.clip(_resize(mask.numpy().astype(np.float32), width, height), 0.0, 1.0)
            for c, mask in zip(request.characters, masks, strict=True)
        }
