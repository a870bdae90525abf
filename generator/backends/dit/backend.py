"""The `dit` backend: every cascade capability through an audio-driven Wan image-to-video pipeline (KlingAvatar 2.0
sec. 3.1).

- text_to_video (blueprint): windows of `max_frames`, the first conditioned on the reference picture as its first
  frame, each later one on the frame its predecessor made there (`windows.py`), the global prompt and the audio;
- upscale_image: image-to-image at the high resolution (the keyframe's latents noised to `upscale_strength`);
- first_last_frame: the sub-clip between its anchors (Wan's first-last-frame layout), local prompt, audio slice;
  longer than `max_frames`, it is several overlapping calls, blended;
- interpolate: the same between the frames either side of a seam, keeping the inner frames;
- super_resolve: video-to-video at the high resolution, `max_frames` at a time;
- predict_masks: each character's region (a trained mask head's, else drawn from faces or boxes: `gating.py`).

Frame counts are exact and audio is sliced to each call's own frames; sizes the model cannot take (sides not a
multiple of 16) are generated at the nearest size that fits and resized.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from codirector.errors import ConfigError
from codirector.generator.backend import (
    Backend,
    Capability,
    CharacterCondition,
    ClipRequest,
    InterpolationRequest,
    MaskRequest,
    SuperResolutionRequest,
    UpscaleRequest,
    VideoRequest,
)
from codirector.schemas.render_plan import StageSettings

if TYPE_CHECKING:
    from codirector.generator.backends.dit.pipeline import ClipConditions, DitPipeline

__all__ = ["DitBackend"]

logger = logging.getLogger(__name__)

_OFFLOAD = ("none", "model", "group")
_DTYPES = ("auto", "float32", "bfloat16", "float16")
Generation = VideoRequest | ClipRequest | InterpolationRequest | SuperResolutionRequest


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


def identity_crops(characters: tuple[CharacterCondition, ...], scene: np.ndarray | None) -> list[np.ndarray]:
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


@dataclass(frozen=True)
class _Placement:
    """Device and dtype resolved from "auto": CUDA and bfloat16 when there is a GPU, else the CPU and float32."""

    device: str
    dtype: str

    @classmethod
    def resolve(cls, device: str, dtype: str) -> _Placement:
        import torch

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        elif device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError("backend 'dit' option device", f"{device!r} asked for, but torch sees no CUDA GPU",
                              "Install a CUDA build of torch (README: torch: CPU or CUDA), or use device=cpu.",
                              )  # fmt: skip
        if dtype == "auto":
            dtype = "bfloat16" if device.startswith("cuda") else "float32"
        return cls(device, dtype)


class DitBackend(Backend):
    """The neural backend. Options (from `--backend-option` or `render.backend_options`):

    Args:
        weights: a diffusers-format Wan image-to-video folder as published (Wan2.1 I2V 480P/720P, FLF2V 720P,
            Wan2.2 I2V-A14B); None with tiny=True for tests.
        transformer: an original-format transformer file (Wan's key names, one .safetensors) to use in place of
            weights/transformer's weights (the folder still gives its config and the other parts).
        adapter: our audio-attention and mask-head weights (safetensors). Without it the audio does not drive the
            lips (stock Wan has no audio attention): the log and the manifest say so.
        tiny: build tiny random modules instead of loading weights (tests, benchmarks, CI).
        device: "auto" (CUDA when present), "cpu", "cuda", "cuda:1"...; dtype: "auto" (bfloat16 on CUDA, float32 on
            the CPU), "float32", "bfloat16", "float16".
        offload: "none", "model" (one part on the GPU at a time) or "group" (the transformer streamed block by
            block); the text encoder leaves the GPU after encoding in every mode.
        vae_tiling: "auto" (at 720p and above), true or false.
        memory_budget_gb: the accelerator memory the preflight may plan for (default: what the GPU has free).
        audio_encoder: "logmel", "whisper:/path", "wav2vec2:/path" (the one the adapter was trained with).
        audio_scale: inference-time boost of the audio attention.
        max_frames: the longest clip sampled in one go (4k + 1; 81 for Wan 14B); overlap_frames: the least
            overlap of the calls a longer clip is cut into.
        upscale_strength, super_resolution_strength: how much of the schedule image/video-to-video runs.
        compile: torch.compile the transformer.
        preset: "auto" (base for real weights, plan for tiny), "base" (stock Wan: 40/20 steps, the plan's
            guidance), "lightx2v-4step" (LightX2V's step-distilled LoRA: 4 sigmas, shift 5, no CFG), or "plan".
        steps, guidance_scale: one value for every stage, or {stage: value}, over the preset.
        sigmas: a custom few-step base sigma schedule (e.g. [1.0, 0.75, 0.5, 0.25]) used for every clip.
        shift: the flow shift, in place of the checkpoint scheduler's.
        lora: "FILE" or "FILE:SCALE", or a list of them: LoRAs through diffusers' Wan LoRA loader.
        motion_frames: frames a window of a long clip is given from the window before it (5: two latent frames).
        first_block_cache: diffusers' First Block Cache threshold (e.g. 0.05): fewer block evaluations per step,
            at a quality cost to measure with the eval suite; off by default.
        attention_backend: a diffusers attention backend name ("flash", "sage", "_native_cudnn", "native").
        context_parallel: "ulysses:N" or "ring:N" (or N, Ulysses): each clip's tokens split between N GPUs
            (cuda:0..N-1 of the visible ones) by whole latent frames, through diffusers' context parallelism; this
            process is rank 0 and starts the others (`context_parallel.py`). Ring needs attention_backend
            _native_cudnn, flash or sage. Not with offload or first_block_cache; run it with the local executor.
    """

    name = "dit"
    version = "2"
    capabilities = frozenset(Capability)

    def __init__(
        self, weights: str | None = None, adapter: str | None = None, tiny: bool = False, device: str = "auto",
        dtype: str = "auto", audio_encoder: str | None = None, audio_scale: float = 1.0, max_frames: int = 81,
        overlap_frames: int = 8, upscale_strength: float = 0.5, super_resolution_strength: float = 0.4,
        compile: bool = False, offload: str = "none", vae_tiling: str | bool = "auto",
        memory_budget_gb: float | None = None, attention_backend: str | None = None, seed: int = 0,
        sigmas: list[float] | None = None, transformer: str | None = None, preset: str = "auto",
        steps: int | dict[str, int] | None = None, guidance_scale: float | dict[str, float] | None = None,
        shift: float | None = None, lora: str | list[str] | None = None, motion_frames: int = 5,
        first_block_cache: float | None = None, context_parallel: str | int | None = None,
    ) -> None:  # fmt: skip
        if weights is None and not tiny:
            raise ConfigError(
                "backend 'dit'", "needs weights",
                "Pass --backend-option weights=/path/to/Wan2.1-I2V-14B-480P-Diffusers (a diffusers folder), or "
                "tiny=true for a test model.",
            )  # fmt: skip
        if (max_frames - 1) % 4 or max_frames < 5:
            raise ConfigError("backend 'dit' option max_frames", f"must be 4k + 1 and at least 5, not {max_frames}",
                              "Use 81 (Wan) or 9, 17, 33...")  # fmt: skip
        if overlap_frames < 1:
            raise ConfigError("backend 'dit' option overlap_frames", f"must be at least 1, not {overlap_frames}",
                              "Use 8 (a third of a second at 25 fps).")  # fmt: skip
        if dtype not in _DTYPES:
            raise ConfigError("backend 'dit' option dtype", f"{dtype!r} is not one of {', '.join(_DTYPES)}",
                              "Use auto, bfloat16, float16 or float32.")  # fmt: skip
        if offload not in _OFFLOAD:
            raise ConfigError("backend 'dit' option offload", f"{offload!r} is not one of {', '.join(_OFFLOAD)}",
                              "Use none, model or group.")  # fmt: skip
        if str(vae_tiling).lower() not in ("auto", "true", "false"):
            raise ConfigError("backend 'dit' option vae_tiling", f"{vae_tiling!r} is not auto, true or false",
                              "Use vae_tiling=auto.")  # fmt: skip
        if memory_budget_gb is not None and not (math.isfinite(memory_budget_gb) and memory_budget_gb > 0):
            raise ConfigError("backend 'dit' option memory_budget_gb", f"must be a positive number, not "
                              f"{memory_budget_gb}", "Give the GPU memory to plan for, in GB (e.g. 80).")  # fmt: skip
        for option, path in (("weights", weights), ("adapter", adapter), ("transformer", transformer)):
            if path is not None and not os.path.exists(os.path.expanduser(path)):
                raise ConfigError(f"backend 'dit' option {option}", f"{path} does not exist",
                                  "Give the path of a local file or folder (nothing is downloaded).")  # fmt: skip
        from codirector.generator.backends.dit.lora import parse_lora_specs
        from codirector.generator.backends.dit.sampling import resolve_sampling

        preset = ("plan" if tiny else "base") if preset == "auto" else preset
        resolve_sampling(preset, steps=steps, guidance_scale=guidance_scale, sigmas=sigmas, shift=shift)  # checks
        parse_lora_specs(lora)  # checks the files now, not after the plan has started
        self._context_parallel = None  # ContextParallelSpec
        if context_parallel is not None:
            self._context_parallel = self._check_context_parallel(context_parallel, device, dtype, offload,
                                                                  first_block_cache, attention_backend)  # fmt: skip
        if motion_frames < 1:
            raise ConfigError("backend 'dit' option motion_frames", f"must be >= 1, not {motion_frames}",
                              "Use 5 (Wan's first two latent frames).")  # fmt: skip
        self._options: dict[str, Any] = {
            "weights": weights, "adapter": adapter, "transformer": transformer, "tiny": bool(tiny), "device": device,
            "dtype": dtype, "audio_encoder": audio_encoder, "audio_scale": float(audio_scale),
            "max_frames": int(max_frames),
            "overlap_frames": min(int(overlap_frames), (max_frames - 1) // 2),
            "upscale_strength": float(upscale_strength), "super_resolution_strength": float(super_resolution_strength),
            "compile": bool(compile), "offload": offload, "vae_tiling": str(vae_tiling).lower(),
            "memory_budget_gb": memory_budget_gb, "attention_backend": attention_backend, "seed": int(seed),
            "sigmas": [float(v) for v in sigmas] if sigmas else None, "preset": preset, "steps": steps,
            "guidance_scale": guidance_scale, "shift": shift, "motion_frames": int(motion_frames),
            "lora": [lora] if isinstance(lora, str) else lora,
            "first_block_cache": None if first_block_cache is None else float(first_block_cache),
            "context_parallel": None if context_parallel is None else str(context_parallel),
        }  # fmt: skip
        self._group: Any = None  # the other ranks, under context parallelism
        self._pipeline: DitPipeline | None = None
        self._checked = False  # the memory preflight ran

    def config(self) -> dict[str, Any]:
        return dict(self._options)

    @staticmethod
    def _check_context_parallel(value: str | int, device: str, dtype: str, offload: str,
                                first_block_cache: float | None, attention_backend: str | None) -> Any:  # fmt: skip
        import torch

        from codirector.generator.backends.dit.context_parallel import ContextParallelSpec

        spec = ContextParallelSpec.parse(value)
        if device not in ("auto", "cuda", "cuda:0", "cpu"):
            raise ConfigError("backend 'dit' option context_parallel", f"runs ranks on cuda:0..{spec.degree - 1}, "
                              f"not device={device}", "Choose the GPUs with CUDA_VISIBLE_DEVICES and use "
                              "device=auto.")  # fmt: skip
        if offload != "none" or first_block_cache is not None:
            # offload moves a rank's weights under it; the cache would let ranks skip different steps and deadlock
            raise ConfigError("backend 'dit' option context_parallel", "does not combine with offload or "
                              "first_block_cache", "Drop offload= and first_block_cache=; each GPU holds the whole "
                              "transformer and a 1/N share of the tokens.")  # fmt: skip
        spec.check(torch.device(_Placement.resolve(device, dtype).device), attention_backend)
        return spec

    def close(self) -> None:
        """Stop the other context-parallel ranks, if any (also done when the backend is collected or at exit)."""
        if self._group is not None:
            self._group.close()

    def report(self) -> dict[str, Any]:
        """What this backend will do with the audio and the weights (for the manifest), without loading them."""
        from codirector.generator.backends.dit.model import read_adapter_config

        options = self._options
        family = None
        if options["weights"] is not None and not options["tiny"]:
            from codirector.generator.backends.dit.checkpoint import WanCheckpoint

            family = WanCheckpoint.open(options["weights"], options["transformer"]).describe()
        from codirector.generator.backends.dit.pipeline import AudioConditioning

        adapter = options["adapter"]
        if options["tiny"]:  # DitPipeline.tiny: random audio weights and a mask head
            conditioning = AudioConditioning("tiny-random", trained=False, mask_head=True)
        else:
            mask_head = bool(adapter and read_adapter_config(adapter).get("mask_layers"))
            conditioning = AudioConditioning(adapter, trained=adapter is not None, mask_head=mask_head)
        audio = {**dataclasses.asdict(conditioning), "note": conditioning.describe()}
        gating = ("none: no audio runs through the model" if not conditioning.active else
                  "mask head (learned)" if conditioning.mask_head else
                  "drawn soft masks: faces in each clip's first frame, else scene boxes, else strips")  # fmt: skip
        return {"checkpoint": family, "audio_conditioning": audio, "character_gating": gating,
                "lip_sync_driven": conditioning.trained}  # fmt: skip

    @property
    def pipeline(self) -> DitPipeline:
        """Built on first use (so a backend made only to check options loads nothing)."""
        return self.pipeline_for(480, 832)

    def stage_settings(self, planned: StageSettings) -> StageSettings:
        """The plan's settings as they are; first, the memory preflight for its largest clip (high resolution,
        `max_frames`), so that a render that cannot fit stops before any weights load."""
        from codirector.generator.backends.dit.sampling import apply_sampling

        self._preflight(planned.high_res.height, planned.high_res.width)
        return apply_sampling(planned, self._sampling())

    def _sampling(self) -> Any:
        from codirector.generator.backends.dit.sampling import resolve_sampling

        options = self._options
        return resolve_sampling(options["preset"], steps=options["steps"], guidance_scale=options["guidance_scale"],
                                sigmas=options["sigmas"], shift=options["shift"])  # fmt: skip

    def _preflight(self, height: int, width: int) -> None:
        """Refuse (ConfigError with the table) a render that cannot fit, from the folder's configs alone."""
        options = self._options
        if options["tiny"] or self._checked:
            return
        import torch

        from codirector.generator.backends.dit.memory import preflight
        from codirector.generator.backends.dit.model import read_adapter_config
        from codirector.generator.backends.dit.pipeline import TILING_FROM_PIXELS

        placement = _Placement.resolve(options["device"], options["dtype"])
        adapter = options["adapter"]
        tiling = self._vae_tiling()
        budget = options["memory_budget_gb"]
        preflight(
            options["weights"], device=placement.device, dtype_bytes=getattr(torch, placement.dtype).itemsize,
            offload=options["offload"], height=height, width=width, num_frames=options["max_frames"],
            vae_tiling=height * width >= TILING_FROM_PIXELS if tiling is None else tiling,
            adapter_config=read_adapter_config(adapter) if adapter else {"with_audio": False},
            accelerator_budget_bytes=None if budget is None else int(budget * 1e9),
            context_parallel=1 if self._context_parallel is None else self._context_parallel.degree,
        )  # fmt: skip
        self._checked = True

    def _vae_tiling(self) -> bool | None:
        """auto (None): the pipeline tiles each VAE call at 720p and above, where an untiled decode needs tens of GB."""
        setting = self._options["vae_tiling"]
        return None if setting == "auto" else setting == "true"

    def _build(self, height: int, width: int) -> DitPipeline:
        # once, here: the other context-parallel ranks load through `_load` and hold a share of this clip
        self._preflight(height, width)
        if self._context_parallel is None:
            return self._load(height, width)
        import functools
        import weakref

        from codirector.generator.backends.dit.context_parallel import ContextParallelGroup

        options = self._options
        device_type = _Placement.resolve(options["device"], options["dtype"]).device.split(":")[0]
        rank_options = {**options, "context_parallel": None}
        # the other ranks start loading now, beside this one
        self._group = ContextParallelGroup(
            self._context_parallel, device_type, functools.partial(_rank_transformers, rank_options, height, width)
        )
        weakref.finalize(self, self._group.close)
        pipeline = self._load(height, width)
        self._group.attach(pipeline.transformers)
        return pipeline

    def _load(self, height: int, width: int, device: str | None = None) -> DitPipeline:
        import torch

        from codirector.generator.backends.dit.pipeline import DitPipeline

        options = self._options
        placement = _Placement.resolve(device or options["device"], options["dtype"])
        dtype = getattr(torch, placement.dtype)
        from codirector.generator.backends.dit.lora import parse_lora_specs

        sampling = self._sampling()
        common = dict(device=placement.device, audio_scale=options["audio_scale"], sigmas=sampling.sigmas,
                      shift=sampling.shift, offload=options["offload"], vae_tiling=self._vae_tiling(),
                      loras=parse_lora_specs(options["lora"]),
                      first_block_cache=options["first_block_cache"])  # fmt: skip
        if options["tiny"]:
            pipeline = DitPipeline.tiny(options["seed"], dtype=dtype, **common)
        else:
            from codirector.generator.backends.dit.checkpoint import WanCheckpoint

            checkpoint = WanCheckpoint.open(options["weights"], options["transformer"])
            pipeline = DitPipeline.from_pretrained(checkpoint, adapter=options["adapter"],
                                                   audio_encoder=options["audio_encoder"], dtype=dtype,
                                                   **common)  # fmt: skip
        if pipeline.audio.trained:
            logger.info("dit: %s", pipeline.audio.describe())
        else:
            logger.warning("dit: %s", pipeline.audio.describe())
        if options["attention_backend"]:
            for model in pipeline.transformers:
                model.set_attention_backend(options["attention_backend"])
        if options["compile"]:
            pipeline.transformer.compile()
        return pipeline

    def pipeline_for(self, height: int, width: int) -> DitPipeline:
        """The pipeline, built on first use for a request of this size (the memory preflight's size)."""
        if self._pipeline is None:
            self._pipeline = self._build(height, width)
        return self._pipeline

    # --- helpers ----------------------------------------------------------------------------------------------

    def _fit(self, value: int) -> int:
        """The nearest size the loaded model takes (a multiple of its VAE factor x patch)."""
        multiple = self.pipeline.vae_scale_factor_spatial * self.pipeline.patch_size[1]
        return max(multiple, multiple * round(value / multiple))

    def _conditions(self, request: Generation, given: dict[int, np.ndarray], width: int, height: int, start: int,
                    count: int) -> ClipConditions:  # fmt: skip
        """The conditions of `count` frames from request frame `start`: audio sliced to exactly those frames."""
        from codirector.generator.backends.dit.pipeline import ClipConditions

        rate = request.sample_rate
        first = round(start / request.fps * rate)
        length = round(count / request.fps * rate)
        audio = [None if c.audio is None else _slice(c.audio, first, length) for c in request.characters]
        reference = next((c.reference for c in request.characters if c.reference is not None), request.scene)
        negative = None
        if reference is not None and request.sampler.negative_frame_guidance_scale > 0:
            negative = self.pipeline.negative_image(_resize(reference, width, height), request.sampler.seed)
        return ClipConditions(
            prompt=request.prompt, negative_prompt=request.negative_prompt,
            given={i: _resize(f, width, height) for i, f in given.items()}, audio=audio, sample_rate=rate,
            fps=request.fps, negative_image=negative, references=identity_crops(request.characters, request.scene),
            regions=[c.region_xyxy_norm for c in request.characters],
        )  # fmt: skip

    def _frames(
        self, request: Generation, given: dict[int, np.ndarray], start: int, count: int,
        source: list[np.ndarray] | None = None, strength: float = 1.0,
    ) -> list[np.ndarray]:  # fmt: skip
        """`count` frames from request frame `start`, with `given` frames at clip indices: one call per window
        (`windows.py`), each after the first continuing from the frames before it. With `source` (frames at the
        clip's size), each window is video-to-video from those frames at `strength`."""
        from codirector.generator.backends.dit.conditioning import frames_to_video, video_to_frames
        from codirector.generator.backends.dit.windows import Window, plan_windows, sample_windows

        pipeline = self.pipeline_for(request.height, request.width)
        width, height = self._fit(request.width), self._fit(request.height)
        windows = plan_windows(count, self._options["max_frames"], self._options["overlap_frames"],
                               pipeline.vae_scale_factor_temporal)  # fmt: skip

        def sample(window: Window, inside: dict[int, np.ndarray]) -> list[np.ndarray]:
            conditions = self._conditions(request, inside, width, height, start + window.start, window.num_frames)
            latents = None
            if source is not None:  # past the clip's end the last frame is held (those frames are dropped)
                own = [_resize(f, width, height) for f in source[window.start : window.start + window.keep]]
                latents = pipeline.encode(frames_to_video(own + [own[-1]] * (window.num_frames - len(own))))
                conditions = dataclasses.replace(conditions, image=own[0])
            grid = pipeline.grid(window.num_frames, height, width)
            video = pipeline.sample(grid, conditions, request.sampler, start=latents, strength=strength)
            return video_to_frames(video)

        frames = sample_windows(count, given, windows, sample, self._options["motion_frames"])
        return [_resize(f, request.width, request.height) for f in frames]

    @staticmethod
    def _check(request: Generation | UpscaleRequest | SuperResolutionRequest) -> None:
        """Raise ValueError naming the field, the constraint and the value, before anything loads or encodes."""
        sizes = {"height": request.height, "width": request.width}
        sizes |= {"num_frames": request.num_frames} if hasattr(request, "num_frames") else {}
        for name, value in sizes.items():
            if value < 1:
                raise ValueError(f"{type(request).__name__}.{name} must be >= 1, got {value}")
        for name in ("fps", "sample_rate"):
            value = getattr(request, name, 1)
            if not value > 0:
                raise ValueError(f"{type(request).__name__}.{name} must be > 0, got {value}")
        for character in getattr(request, "characters", ()):
            if character.audio is not None and character.audio.ndim != 1:
                raise ValueError(f"character {character.id!r} audio must be mono (1-D), got shape "
                                 f"{character.audio.shape}")  # fmt: skip

    # --- capabilities -----------------------------------------------------------------------------------------

    def text_to_video(self, request: VideoRequest) -> Iterator[np.ndarray]:
        self.require(Capability.TEXT_TO_VIDEO, "blueprint")
        self._check(request)
        reference = next((c.reference for c in request.characters if c.reference is not None), request.scene)
        if reference is None:
            raise ConfigError("backend 'dit'", "an image-to-video model needs a reference picture or a scene image",
                              "Give the character a reference_image or the job a scene_image.")  # fmt: skip
        return iter(self._frames(request, {0: reference}, 0, request.num_frames))

    def upscale_image(self, request: UpscaleRequest) -> np.ndarray:
        self.require(Capability.IMAGE_UPSCALE, "upscale_keyframes")
        self._check(request)
        from codirector.generator.backends.dit.conditioning import frames_to_video, video_to_frames
        from codirector.generator.backends.dit.pipeline import ClipConditions

        self.pipeline_for(request.height, request.width)
        width, height = self._fit(request.width), self._fit(request.height)
        image = _resize(request.image, width, height)
        start = self.pipeline.encode(frames_to_video([image]))
        conditions = ClipConditions(prompt=request.prompt, negative_prompt=request.negative_prompt, given={},
                                    audio=[], sample_rate=16_000, fps=25.0, image=image)  # fmt: skip
        video = self.pipeline.sample(self.pipeline.grid(1, height, width), conditions, request.sampler, start=start,
                                     strength=self._options["upscale_strength"])  # fmt: skip
        return _resize(video_to_frames(video)[0], request.width, request.height)

    def first_last_frame(self, request: ClipRequest) -> Iterator[np.ndarray]:
        self.require(Capability.FIRST_LAST_FRAME, "subclips")
        self._check(request)
        count = request.num_frames
        return iter(self._frames(request, {0: request.first_frame, count - 1: request.last_frame}, 0, count))

    def interpolate(self, request: InterpolationRequest) -> Iterator[np.ndarray]:
        self.require(Capability.AUDIO_INTERPOLATION, "transitions")
        self._check(request)
        count = request.num_frames + 2  # the frames either side are the clip's ends
        frames = self._frames(request, {0: request.before, count - 1: request.after}, -1, count)
        return iter(frames[1:-1])

    def super_resolve(self, request: SuperResolutionRequest) -> Iterator[np.ndarray]:
        self.require(Capability.VIDEO_SUPER_RESOLUTION, "super_resolve")
        self._check(request)
        # video-to-video with the audio and the high-resolution anchors as the first and last given frames, in
        # overlapping windows that continue from each other (KlingAvatar 2.0 sec. 3.1: the last cascade step)
        source = list(request.frames)
        if len(source) != request.num_frames:
            raise ValueError(f"SuperResolutionRequest.frames gave {len(source)} frames, num_frames is "
                             f"{request.num_frames}")  # fmt: skip
        count = request.num_frames
        anchors = {0: request.first_anchor, count - 1: request.last_anchor}
        return iter(self._frames(request, anchors, 0, count, source=source,
                                 strength=self._options["super_resolution_strength"]))  # fmt: skip

    def predict_masks(self, request: MaskRequest) -> dict[str, np.ndarray]:
        self.require(Capability.MULTI_CHARACTER, "subclips")
        from codirector.generator.backends.dit.gating import decide_gating

        height, width = request.image.shape[:2]
        pipeline = self.pipeline_for(height, width)
        image = _resize(request.image, self._fit(width), self._fit(height))
        if len(pipeline.transformer.mask_heads) > 0:
            masks = pipeline.predict_masks(image, identity_crops(request.characters, request.scene)).numpy()
        else:
            grid = pipeline.grid(1, image.shape[0], image.shape[1])
            gating = decide_gating(len(request.characters), has_mask_head=False, frame=image,
                                   regions=[c.region_xyxy_norm for c in request.characters],
                                   token_grid=pipeline._token_grid(grid))  # fmt: skip
            masks = np.ones((1, 1, 1), np.float32) if gating.masks is None else gating.masks
        return {
            c.id: np.clip(_resize(mask.astype(np.float32), width, height), 0.0, 1.0)
            for c, mask in zip(request.characters, masks, strict=True)
        }


def _rank_transformers(options: dict[str, Any], height: int, width: int, device: Any) -> list[Any]:
    """A context-parallel rank r > 0: the transformer(s) rank 0 has, built by the same code from the same options
    on `device`; the rest of the pipeline (VAE, encoders) is dropped, since rank 0 alone encodes and decodes."""
    import torch

    transformers = DitBackend(**options)._load(height, width, device=str(device)).transformers
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return transformers
