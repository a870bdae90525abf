"""The dit sampling pipeline: a Wan image-to-video checkpoint driven by each character's audio.

One `sample` call makes one clip of `4k + 1` frames, the way diffusers' `WanImageToVideoPipeline` does (the same
text and CLIP image embeddings, condition channels, noise, scheduler and guidance, so that without audio weights
its output equals diffusers' to float precision; `tests/test_dit_checkpoints.py` checks that) plus what the papers
add: each character's audio through windowed audio cross-attention gated per character (KlingAvatar 2.0 sec. 3.3,
Kling-Avatar sec. 2.4), separate text, audio and negative-frame guidance branches (Kling-Avatar sec. 2.4), any
given frames (first, last, or both: Kling-Avatar sec. 2.2 first-last-frame sub-clips), and few-step sigma schedules
(KlingAvatar 2.0 sec. 3.4). `start` turns it into image- or video-to-video (keyframe upscaling, super-resolution).

Mirrors of diffusers' internals (tested against diffusers 0.42; pinned `diffusers>=0.35,<0.43` in pyproject):
`WanImageToVideoPipeline.prepare_latents` (condition channels, `conditioning.py`), `_get_t5_prompt_embeds` and
`encode_image` (`text.py`), its denoising loop and Wan2.2's expert switch (here).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from codirector.errors import ConfigError
from codirector.generator.backends.dit.audio_features import AudioEncoder, make_audio_encoder
from codirector.generator.backends.dit.checkpoint import WanCheckpoint, WanComponents, load_components
from codirector.generator.backends.dit.conditioning import LatentGrid, condition_channels, frames_to_video
from codirector.generator.backends.dit.degrade import degrade_reference
from codirector.generator.backends.dit.gating import CharacterGating, decide_gating
from codirector.generator.backends.dit.lora import LoraSpec, load_loras
from codirector.generator.backends.dit.memory import Offload
from codirector.generator.backends.dit.model import AudioWanTransformer3DModel
from codirector.generator.backends.dit.sampling import strength_steps
from codirector.generator.backends.dit.schedule import combine_guidance, make_scheduler, sigma_schedule
from codirector.generator.backends.dit.text import ImageEncoder, TextEncoder
from codirector.schemas.render_plan import DiffusionSettings

__all__ = ["AudioConditioning", "ClipConditions", "DitPipeline", "Offload"]

logger = logging.getLogger(__name__)

TILING_FROM_PIXELS = 1280 * 720  # auto VAE tiling from 720p: an untiled Wan decode of 81 frames needs tens of GB


@dataclass(frozen=True)
class ClipConditions:
    """What one clip is conditioned on.

    Attributes:
        prompt, negative_prompt: text.
        given: frame index -> RGB uint8 frame at the clip's size (anchors, or a reference as frame 0).
        audio: per character, mono float32 at `sample_rate` covering the clip (None: silent).
        sample_rate, fps: of the audio and the clip.
        negative_image: the reference degraded (Kling-Avatar sec. 2.4), given in place of the first given frame in
            the negative-frame branch; None skips that branch.
        references: per character, an identity crop (RGB uint8, sides multiples of 16), the same order as
            `audio`; with two or more voices a mask head predicts from them where each voice may act.
        regions: per character, their box in the scene (normalised), for drawn masks when there is no mask head.
        image: the frame the CLIP image branch sees when no frame is given (image/video-to-video).
    """

    prompt: str
    negative_prompt: str
    given: dict[int, np.ndarray]
    audio: Sequence[np.ndarray | None]
    sample_rate: int
    fps: float
    negative_image: np.ndarray | None = None
    references: Sequence[np.ndarray] = ()
    regions: Sequence[tuple[float, float, float, float] | None] = ()
    image: np.ndarray | None = None


@dataclass(frozen=True)
class AudioConditioning:
    """What drives the lips, for the log and the manifest.

    Attributes:
        weights: the audio adapter file, "tiny-random" for test models, or None (no audio weights).
        trained: whether those weights were trained (False for none and for tiny random ones).
        mask_head: the model has a mask head (multi-character gating learned, KlingAvatar 2.0 sec. 3.3).
    """

    weights: str | None
    trained: bool
    mask_head: bool

    @property
    def active(self) -> bool:
        """Audio runs through the model (weights exist, trained or random)."""
        return self.weights is not None

    def describe(self) -> str:
        if self.weights is None:
            return ("no audio weights: the audio does NOT drive the lips (stock Wan weights have no audio "
                    "attention); the video follows the prompt and the reference only. Lip sync needs an audio "
                    "adapter (--backend-option adapter=FILE)")  # fmt: skip
        if not self.trained:
            return "random audio weights (a tiny test model): audio runs through the model but means nothing"
        return f"audio adapter {self.weights}" + (" with a trained mask head" if self.mask_head else "")


def enable_first_block_cache(transformers: Sequence[AudioWanTransformer3DModel], threshold: float) -> None:
    """diffusers' First Block Cache on our transformer: our block is registered as diffusers registers Wan's own
    (hidden states are its output), then `enable_cache` installs the hooks."""
    from diffusers.hooks import FirstBlockCacheConfig
    from diffusers.hooks._helpers import TransformerBlockMetadata, TransformerBlockRegistry

    from codirector.generator.backends.dit.audio_attention import AudioWanTransformerBlock

    TransformerBlockRegistry.register(
        model_class=AudioWanTransformerBlock,
        metadata=TransformerBlockMetadata(return_hidden_states_index=0, return_encoder_hidden_states_index=None),
    )
    for model in transformers:
        model.enable_cache(FirstBlockCacheConfig(threshold=threshold))


class DitPipeline:
    """Owns the modules and samples clips. Build with `tiny` (tests, benchmarks) or `from_pretrained`.

    Args:
        components: the checkpoint's loaded parts (our audio transformer in place of Wan's).
        audio_encoder: audio -> features at the video frame rate; None without audio weights.
        audio: what drives the lips (`AudioConditioning`).
        device: where the models run; dtype: the transformer's and text encoder's dtype.
        audio_scale: inference-time boost of the audio attention (the papers raise it above 1).
        sigmas: a custom few-step base schedule (trajectory-preserving distilled models use their own) run with
            a flow-matching Euler scheduler, instead of the checkpoint's scheduler at `num_inference_steps`.
        offload: "none" (the text encoder visits the accelerator only to encode), "model" (one part on the
            accelerator at a time: accelerate's CPU-offload hooks, as diffusers' `enable_model_cpu_offload`), or
            "group" (the transformer streamed block by block: diffusers' `enable_group_offload`).
        vae_tiling: decode and encode in tiles (diffusers' `AutoencoderKLWan.enable_tiling`) to bound VAE memory;
            None tiles the calls at 720p and above.
        shift: the flow shift, in place of the checkpoint scheduler's (a distilled LoRA's own, e.g. 5).
        loras: LoRA files and scales, through diffusers' Wan LoRA loader (`lora.py`).
        first_block_cache: diffusers' First Block Cache at this threshold (skip the other blocks of a step whose
            first block's residual changed less than it), or None.
    """

    def __init__(
        self, components: WanComponents, audio_encoder: AudioEncoder | None, audio: AudioConditioning, *,
        device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, audio_scale: float = 1.0,
        sigmas: Sequence[float] | None = None, offload: Offload = "none", vae_tiling: bool | None = None,
        shift: float | None = None, loras: Sequence[LoraSpec] = (), first_block_cache: float | None = None,
    ) -> None:  # fmt: skip
        self.device = torch.device(device)
        self.dtype = dtype
        self.audio = audio
        self.audio_encoder = audio_encoder
        self.audio_scale = audio_scale
        self.sigmas = list(sigmas) if sigmas else None
        self.shift = shift
        self.offload = offload
        self.scheduler = components.scheduler
        self.boundary_ratio = components.boundary_ratio
        self.transformer: AudioWanTransformer3DModel = self._as_dtype(components.transformer)
        self.transformer_2 = None if components.transformer_2 is None else self._as_dtype(components.transformer_2)
        self.loras = load_loras(self.transformers, list(loras))
        self.first_block_cache = first_block_cache
        if first_block_cache is not None:
            enable_first_block_cache(self.transformers, first_block_cache)
        self.vae = components.vae.eval()
        self.vae_tiling = vae_tiling
        if vae_tiling is not False:
            self.vae.enable_tiling()  # diffusers' default tiles; switched per call when vae_tiling is None (auto)
            self.vae.enable_slicing()
        config = self.vae.config
        # sizes come from the loaded configs (diffusers: vae_scale_factor_temporal/spatial, z_dim, patch_size)
        self.vae_scale_factor_temporal = int(getattr(config, "scale_factor_temporal", 4))
        self.vae_scale_factor_spatial = int(getattr(config, "scale_factor_spatial", 8))
        self.latent_channels = int(config.z_dim)
        self.patch_size = tuple(self.transformer.config.patch_size)
        self._mean = torch.tensor(config.latents_mean).view(1, -1, 1, 1, 1)
        self._std = torch.tensor(config.latents_std).view(1, -1, 1, 1, 1)
        self._hooks: dict[str, Any] = {}
        self._told: set[str] = set()
        text_model = components.text_encoder.to(dtype=dtype)
        self.text_encoder = TextEncoder(text_model, components.tokenizer, before=self._onload("text_encoder"),
                                        after=self._offload_after_use("text_encoder"))  # fmt: skip
        self.image_encoder = None
        if components.image_encoder is not None:
            self.image_encoder = ImageEncoder(
                components.image_encoder, components.image_processor, components.image_embeddings,
                before=self._onload("image_encoder"),
                after=self._offload_after_use("image_encoder"),
            )  # fmt: skip
        self._place(components)

    @property
    def transformers(self) -> list[AudioWanTransformer3DModel]:
        """The transformer, then Wan2.2's second expert if there is one."""
        return [model for model in (self.transformer, self.transformer_2) if model is not None]

    def _as_dtype(self, transformer: AudioWanTransformer3DModel) -> AudioWanTransformer3DModel:
        # from_pretrained(torch_dtype=...) keeps the fp32 norms; a model built in float32 is cast here
        if self.dtype != torch.float32 and transformer.dtype == torch.float32:
            transformer = transformer.to(dtype=self.dtype)
        return transformer.eval()

    # --- placement --------------------------------------------------------------------------------------------

    def _place(self, components: WanComponents) -> None:
        """Put each part where `offload` says: resident, behind accelerate's offload hooks, or group-offloaded."""
        from accelerate import cpu_offload_with_hook

        cpu = torch.device("cpu")
        transformers = self.transformers
        resident: list[torch.nn.Module] = []
        hooked: dict[str, torch.nn.Module] = {"text_encoder": self.text_encoder.model}
        if self.image_encoder is not None:
            (hooked if self.offload != "none" else {})["image_encoder"] = self.image_encoder.model
            if self.offload == "none":
                resident.append(self.image_encoder.model)
        if self.offload == "none":
            resident += [*transformers, self.vae]
        elif self.offload == "model":
            for index, model in enumerate(transformers):
                hooked[f"transformer_{index}"] = model
            hooked["vae"] = self.vae
        else:  # group: diffusers' block-level streaming for the transformer(s), hooks for the rest
            for model in transformers:
                # low_cpu_mem_usage: pin each group as it streams, not a second copy of the weights up front
                model.enable_group_offload(onload_device=self.device, offload_device=cpu, offload_type="block_level",
                                           num_blocks_per_group=1, use_stream=self.device.type == "cuda",
                                           low_cpu_mem_usage=True)  # fmt: skip
            hooked["vae"] = self.vae
        for model in resident:
            model.to(self.device)
        for name, model in hooked.items():
            model.to(cpu)
            # on the CPU the hooks move nothing; they are installed for offload modes anyway, so the path is the same
            if self.device.type != "cpu" or self.offload != "none":
                _, self._hooks[name] = cpu_offload_with_hook(model, self.device)

    def _onload(self, name: str) -> Any:
        def before() -> torch.device:
            self._release(keep=name)
            return self.device  # resident there, or moved there by its hook on the forward pass

        return before

    def _offload_after_use(self, name: str) -> Any:
        def after() -> None:
            # the text encoder leaves the accelerator after encoding in every mode; the rest wait for the next user
            if name == "text_encoder" and name in self._hooks:
                self._hooks[name].offload()

        return after

    def _release(self, keep: str) -> None:
        """Offload every hooked part but `keep` (accelerate's hooks move a part back when it next runs)."""
        for name, hook in self._hooks.items():
            if name != keep:
                hook.offload()

    # --- building ---------------------------------------------------------------------------------------------

    @classmethod
    def tiny(cls, seed: int = 0, **options: Any) -> DitPipeline:
        """A pipeline of tiny random modules with the published structure and random audio and mask-head weights
        (a mask head on block 0): for tests and benchmarks."""
        from codirector.generator.backends.dit.model import tiny_config
        from codirector.generator.backends.dit.tiny import TINY_TRANSFORMER, tiny_components

        components = tiny_components(seed, family=options.pop("family", "wan2.1-i2v"))
        audio = {k: v for k, v in tiny_config().items() if k not in TINY_TRANSFORMER and k != "in_channels"}
        torch.manual_seed(seed)
        transformer = AudioWanTransformer3DModel(**{**components.transformer.config, **audio})
        transformer.load_state_dict(components.transformer.state_dict(), strict=False)
        for block in transformer.blocks:  # random, not zero: the audio path must change the output in tests
            torch.nn.init.normal_(block.audio_attn.to_out[0].weight, std=0.02)
        components.transformer = transformer
        if components.transformer_2 is not None:
            second = AudioWanTransformer3DModel(**{**components.transformer_2.config, **audio})
            second.load_state_dict(components.transformer_2.state_dict(), strict=False)
            components.transformer_2 = second
        encoder = make_audio_encoder(f"logmel:{transformer.config.audio_dim}")
        return cls(components, encoder, AudioConditioning("tiny-random", trained=False, mask_head=True), **options)

    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, adapter: str | Path | None = None, transformer_file: str | Path | None = None,
        audio_encoder: str | None = None, dtype: torch.dtype = torch.bfloat16, **options: Any,
    ) -> DitPipeline:  # fmt: skip
        """Load a published Wan image-to-video folder (model_index.json and its parts) plus, optionally, our audio
        adapter (audio attention, projector, mask heads; any saved audio config) and an original-format
        transformer file in place of transformer/'s weights."""
        checkpoint = path if isinstance(path, WanCheckpoint) else WanCheckpoint.open(path, transformer_file)
        try:
            components = load_components(checkpoint, dtype=dtype, adapter=adapter)
        except ValueError as error:  # a backbone key missing, an adapter that does not fit
            raise ConfigError(f"dit weights {checkpoint.root}", str(error),
                              "Check that the files belong together.") from None  # fmt: skip
        transformer = components.transformer
        audio = AudioConditioning(None if adapter is None else str(adapter), trained=adapter is not None,
                                  mask_head=adapter is not None and len(transformer.mask_heads) > 0)  # fmt: skip
        encoder = None
        if audio.active:
            audio_dim = transformer.config.audio_dim
            encoder = make_audio_encoder(audio_encoder or f"logmel:{audio_dim}")
            if encoder.feature_dim != audio_dim:
                raise ConfigError(
                    f"audio_encoder {audio_encoder or 'logmel'}", f"gives {encoder.feature_dim} features per frame, "
                    f"but the adapter was trained on {audio_dim}",
                    "Use the audio encoder the adapter was trained with.",
                )  # fmt: skip
        elif audio_encoder is not None:
            logger.warning("dit: audio_encoder=%s is unused: there are no audio weights (adapter=)", audio_encoder)
        return cls(components, encoder, audio, dtype=dtype, **options)

    # --- latents ----------------------------------------------------------------------------------------------

    def grid(self, num_frames: int, height: int, width: int) -> LatentGrid:
        """A clip's sizes, checked against the loaded VAE and transformer (4k + 1 frames, sides multiples of 16)."""
        return LatentGrid(num_frames, height, width, self.vae_scale_factor_temporal, self.vae_scale_factor_spatial,
                          self.patch_size[1])  # fmt: skip

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """(1, 3, F, H, W) in [-1, 1] -> normalised latents (1, z_dim, latent F, H/8, W/8), float32 on the CPU."""
        self._prepare_vae(video.shape[-2] * video.shape[-1])
        latents = self.vae.encode(video.to(self.device, self.vae.dtype)).latent_dist.mode()
        return (latents.float().cpu() - self._mean) / self._std

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents -> (1, 3, F, H, W) in [-1, 1], float32 on the CPU."""
        self._prepare_vae(latents.shape[-2] * latents.shape[-1] * self.vae_scale_factor_spatial**2)
        latents = latents.float().cpu() * self._std + self._mean
        return self.vae.decode(latents.to(self.device, self.vae.dtype)).sample.float().cpu()

    def _prepare_vae(self, num_pixels: int) -> None:
        self._release(keep="vae")
        if self.vae_tiling is None:
            self.vae.use_tiling = num_pixels >= TILING_FROM_PIXELS

    def negative_image(self, reference: np.ndarray | None, seed: int) -> np.ndarray | None:
        return None if reference is None else degrade_reference(reference, seed)

    # --- conditioning -----------------------------------------------------------------------------------------

    def _audio_features(self, conditions: ClipConditions, num_frames: int) -> torch.Tensor | None:
        """(1, num_characters, num_frames, audio_dim), or None without audio weights or when nobody speaks."""
        if self.audio_encoder is None or all(track is None for track in conditions.audio):
            return None
        dim = self.audio_encoder.feature_dim
        rows = [
            torch.zeros(num_frames, dim)
            if track is None
            else self.audio_encoder.encode(track, conditions.sample_rate, conditions.fps, num_frames).float()
            for track in conditions.audio
        ]
        return torch.stack(rows).unsqueeze(0)

    def gating(self, conditions: ClipConditions, grid: LatentGrid) -> CharacterGating:
        """How this clip's voices are routed (`gating.decide_gating`, the one place that decides)."""
        frame = conditions.given[min(conditions.given)] if conditions.given else conditions.image
        regions = list(conditions.regions) or [None] * len(conditions.audio)
        return decide_gating(len(conditions.audio), has_mask_head=len(self.transformer.mask_heads) > 0, frame=frame,
                             regions=regions, token_grid=self._token_grid(grid))  # fmt: skip

    def _token_grid(self, grid: LatentGrid) -> tuple[int, int]:
        _, height, width = grid.latent_shape
        return height // self.patch_size[1], width // self.patch_size[2]

    def reference_latents(self, references: Sequence[np.ndarray]) -> torch.Tensor:
        """Identity crops -> clean latents (1, N, z_dim, 1, h, w), patchified by the model without noise."""
        latents = [self.encode(frames_to_video([crop])) for crop in references]  # each 1 z 1 h w
        return torch.stack(latents, dim=1)

    def _image_embeddings(self, conditions: ClipConditions) -> torch.Tensor | None:
        """CLIP embeddings of the given frames in order (first, and last for FLF2V), as diffusers feeds them."""
        if self.image_encoder is None:
            return None
        frames = [conditions.given[i] for i in sorted(conditions.given)]
        if not frames:
            if conditions.image is None:
                raise ValueError("this checkpoint's image branch needs a frame: pass given frames or image")
            frames = [conditions.image]
        return self.image_encoder.encode(frames)

    # --- sampling ---------------------------------------------------------------------------------------------

    def _shift(self) -> float:
        """The flow shift: the option's, else the checkpoint scheduler's (Wan2.1 480P folders: 3, 720P: 5)."""
        config = self.scheduler.config
        return float(self.shift or config.get("flow_shift") or config.get("shift") or 1.0)

    def _scheduler(self, num_inference_steps: int, strength: float = 1.0) -> tuple[Any, int]:
        """A fresh scheduler with its timesteps set, and the index of the first step to run.

        The checkpoint's own scheduler at `num_inference_steps` (with the shift option, if any), or Euler over the
        custom sigmas. Below strength 1 (image/video-to-video) the last share of a real schedule runs, at least two
        steps of it (`sampling.strength_steps`); a custom sigma list is interpolated to the longer schedule.
        """
        steps = len(self.sigmas) if self.sigmas else num_inference_steps
        total, first = strength_steps(steps, strength) if strength < 1 else (steps, 0)
        shift = self._shift()
        if self.sigmas:
            base = self.sigmas
            if total != len(base):  # the same curve, sampled at `total` points
                positions = np.linspace(0, len(base) - 1, total)
                base = np.interp(positions, np.arange(len(base)), np.asarray(base, np.float64)).tolist()
            scheduler = make_scheduler(sigma_schedule(total, shift=shift, kind=base), shift)
        else:
            key = "flow_shift" if "flow_shift" in self.scheduler.config else "shift"
            scheduler = type(self.scheduler).from_config(self.scheduler.config, **{key: shift})
            scheduler.set_timesteps(total)
        if first:
            scheduler.set_begin_index(first)
        return scheduler, first

    def _model_at(self, timestep: torch.Tensor) -> AudioWanTransformer3DModel:
        """Wan2.2's two experts: `transformer` at and above the boundary timestep, `transformer_2` below."""
        if self.transformer_2 is None or self.boundary_ratio is None:
            return self.transformer
        boundary = self.boundary_ratio * self.scheduler.config.num_train_timesteps
        return self.transformer if float(timestep) >= boundary else self.transformer_2

    @torch.no_grad()
    def _predict(
        self, model: AudioWanTransformer3DModel, latents: torch.Tensor, condition: torch.Tensor,
        timestep: torch.Tensor, text: torch.Tensor, image: torch.Tensor | None, audio: torch.Tensor | None,
        gating: CharacterGating, references: torch.Tensor | None, masks: torch.Tensor | None, *, branch: str,
    ) -> torch.Tensor:  # fmt: skip
        dtype = model.dtype
        self._release(keep=f"transformer_{0 if model is self.transformer else 1}")
        model_input = torch.cat([latents, condition], dim=1).to(self.device, dtype)
        gated = audio is not None and gating.source != "single"
        # each guidance branch is its own cache context, as diffusers' pipelines name "cond" and "uncond"
        with model.cache_context(branch):
            return model(
                hidden_states=model_input, timestep=timestep.expand(1).to(self.device),
                encoder_hidden_states=text.to(self.device, dtype),
                encoder_hidden_states_image=None if image is None else image.to(self.device, dtype),
                audio_features=None if audio is None else audio.to(self.device, dtype), audio_scale=self.audio_scale,
                reference_latents=references.to(self.device, dtype) if gated and references is not None else None,
                character_masks=masks.to(self.device, dtype) if gated and masks is not None else None,
                return_dict=False,
            )[0].float().cpu()  # fmt: skip

    @torch.no_grad()
    def predict_masks(self, image: np.ndarray, references: Sequence[np.ndarray], prompt: str = "") -> torch.Tensor:
        """Where each character is in `image` (sides multiples of 16): masks (N, h_tokens, w_tokens) in 0-1, from
        the mask head on the clean image's latents (KlingAvatar 2.0 sec. 3.3)."""
        grid = self.grid(1, image.shape[0], image.shape[1])
        latents = self.encode(frames_to_video([image]))
        condition = condition_channels(grid, {0: frames_to_video([image])[:, :, 0]}, self.encode)
        self._release(keep="transformer_0")
        embeddings = None if self.image_encoder is None else self.image_encoder.encode([image])
        dtype = self.transformer.dtype
        output = self.transformer(
            hidden_states=torch.cat([latents, condition], dim=1).to(self.device, dtype),
            timestep=torch.zeros(1, device=self.device),
            encoder_hidden_states=self.text_encoder.encode(prompt).to(self.device, dtype),
            encoder_hidden_states_image=None if embeddings is None else embeddings.to(self.device, dtype),
            reference_latents=self.reference_latents(references).to(self.device, dtype), return_masks=True,
            return_dict=True,
        )  # fmt: skip
        return output.character_masks[0, :, 0].float().cpu()

    def check_inputs(self, grid: LatentGrid, conditions: ClipConditions, strength: float) -> None:
        """Raise ValueError naming the argument, the constraint and the value, before anything is encoded."""
        if not 0 < strength <= 1:
            raise ValueError(f"strength must be in (0, 1], got {strength}")
        for index, frame in conditions.given.items():
            if not 0 <= index < grid.num_frames:
                raise ValueError(f"given frame index {index} is outside the clip's {grid.num_frames} frames")
            if frame.shape != (grid.height, grid.width, 3) or frame.dtype != np.uint8:
                raise ValueError(f"given frame {index} must be uint8 ({grid.height}, {grid.width}, 3), "
                                 f"got {frame.dtype} {frame.shape}")  # fmt: skip
        voices = len(conditions.audio)
        if conditions.references and len(conditions.references) != voices:
            raise ValueError(f"references must hold one identity crop per voice ({voices}), "
                             f"got {len(conditions.references)}")  # fmt: skip
        if conditions.regions and len(conditions.regions) != voices:
            raise ValueError(f"regions must hold one box (or None) per voice ({voices}), got {len(conditions.regions)}")

    @torch.no_grad()
    def sample(
        self, grid: LatentGrid, conditions: ClipConditions, sampler: DiffusionSettings, *,
        start: torch.Tensor | None = None, strength: float = 1.0,
    ) -> torch.Tensor:  # fmt: skip
        """Sample one clip; returns the decoded video (1, 3, num_frames, height, width) in [-1, 1].

        Args:
            grid: the clip's size (`self.grid(...)`: num_frames = 4k + 1, sides multiples of 16).
            conditions: prompt, given frames, audio, negative image, identity crops, regions.
            sampler: steps, guidance scales, seed (diffusers names; guidance_scale 1 is off, as in diffusers).
            start: normalised latents to start from (image/video-to-video), noised to `strength`.
            strength: share of the schedule to run from `start` (1: from pure noise).
        """
        self.check_inputs(grid, conditions, strength)
        generator = torch.Generator().manual_seed(sampler.seed)
        scheduler, first = self._scheduler(sampler.num_inference_steps, strength if start is not None else 1.0)
        timesteps = scheduler.timesteps[first:]
        noise = torch.randn((1, self.latent_channels, *grid.latent_shape), generator=generator, dtype=torch.float32)
        latents = noise
        if start is not None and strength < 1:
            # image/video-to-video: `start` noised to the first sigma run (flow matching: a straight line to noise)
            sigma = float(scheduler.sigmas[first])
            latents = (1 - sigma) * start.float() + sigma * noise

        given = {i: frames_to_video([f])[:, :, 0] for i, f in conditions.given.items()}
        condition = condition_channels(grid, given, self.encode)
        negative_condition = None
        if conditions.negative_image is not None and sampler.negative_frame_guidance_scale > 0 and given:
            degraded = dict(given)
            degraded[min(given)] = frames_to_video([conditions.negative_image])[:, :, 0]
            negative_condition = condition_channels(grid, degraded, self.encode)
        text = self.text_encoder.encode(conditions.prompt)
        negative_text = self.text_encoder.encode(conditions.negative_prompt) if sampler.guidance_scale > 1 else None
        image = self._image_embeddings(conditions)
        audio = self._audio_features(conditions, grid.num_frames)
        gating = self.gating(conditions, grid) if audio is not None else CharacterGating("single")
        if gating.source not in self._told:  # once per source: how several voices are routed
            self._told.add(gating.source)
            boxes = [tuple(round(v, 2) for v in box) for box in gating.boxes]
            logger.info("dit: %d voice(s) routed by %s %s", len(conditions.audio), gating.source, boxes or "")
        references = masks = None
        if gating.source == "mask_head":
            references = self.reference_latents(conditions.references)
        elif gating.masks is not None:
            masks = torch.from_numpy(gating.masks)[None, :, None].expand(-1, -1, grid.latent_frames, -1, -1)

        for timestep in timesteps:
            model = self._model_at(timestep)
            full = self._predict(model, latents, condition, timestep, text, image, audio, gating, references, masks,
                                 branch="cond")  # fmt: skip
            uncond = no_audio = negative = None
            if negative_text is not None:
                uncond = self._predict(model, latents, condition, timestep, negative_text, image, audio, gating,
                                       references, masks, branch="uncond")  # fmt: skip
            if audio is not None and sampler.audio_guidance_scale > 0:
                no_audio = self._predict(model, latents, condition, timestep, text, image, None, gating, None, None,
                                         branch="no_audio")  # fmt: skip
            if negative_condition is not None:
                negative = self._predict(model, latents, negative_condition, timestep, text, image, audio, gating,
                                         references, masks, branch="negative_frame")  # fmt: skip
            # guidance_scale keeps diffusers' meaning (1 is off); the audio and negative-frame scales add terms
            prediction = combine_guidance(
                uncond, no_audio, full, negative, guidance_scale=max(0.0, sampler.guidance_scale - 1.0),
                audio_guidance_scale=sampler.audio_guidance_scale if no_audio is not None else 0.0,
                negative_frame_guidance_scale=sampler.negative_frame_guidance_scale if negative is not None else 0.0,
            )  # fmt: skip
            latents = scheduler.step(prediction, timestep, latents, return_dict=False)[0]
        if self.first_block_cache is not None:  # a cache belongs to one clip's trajectory
            for model in self.transformers:
                model._reset_stateful_cache()
        return self.decode(latents)
