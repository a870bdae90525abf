"""The dit sampling pipeline: VAE, text and audio encoders, the audio-driven Wan transformer, guidance, few steps.

One `sample` call makes one clip of `4k + 1` frames. It conditions on given frames (first, last, or both:
Wan's image-to-video channel layout, Kling-Avatar sec. 2.2), on the prompt (text cross-attention), on each
character's audio (windowed audio cross-attention, gated by character masks: KlingAvatar 2.0 sec. 3.3), and
steers with separate text, audio and negative-frame guidance branches (Kling-Avatar sec. 2.4) over a few-step
flow-matching schedule (KlingAvatar 2.0 sec. 3.4). `start` turns it into image- or video-to-video: the clip's
own latents noised to `strength`, which is how keyframes are upscaled and sub-clips super-resolved.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from codirector.errors import ConfigError
from codirector.generator.backends.dit.audio_features import AudioEncoder, make_audio_encoder
from codirector.generator.backends.dit.conditioning import LatentGrid, condition_channels, frames_to_video
from codirector.generator.backends.dit.degrade import degrade_reference
from codirector.generator.backends.dit.model import AudioWanTransformer3DModel, tiny_config
from codirector.generator.backends.dit.schedule import combine_guidance, make_scheduler, sigma_schedule
from codirector.generator.backends.dit.text import TextEncoder
from codirector.schemas.render_plan import DiffusionSettings

__all__ = ["ClipConditions", "DitPipeline"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipConditions:
    """What one clip is conditioned on.

    Attributes:
        prompt, negative_prompt: text.
        given: frame index -> RGB uint8 frame at the clip's size (anchors, or a reference as frame 0).
        audio: per character, mono float32 at `sample_rate` covering the clip (None: silent).
        sample_rate, fps: of the audio and the clip.
        negative_image: the reference degraded (Kling-Avatar sec. 2.4), given in place of frame 0 in the
            negative-frame branch; None skips that branch.
        references: per character, an identity crop (RGB uint8, sides multiples of 16), the same order as
            `audio`; with two or more voices the mask head predicts from them where each voice may act
            (KlingAvatar 2.0 sec. 3.3).
    """

    prompt: str
    negative_prompt: str
    given: dict[int, np.ndarray]
    audio: Sequence[np.ndarray | None]
    sample_rate: int
    fps: float
    negative_image: np.ndarray | None = None
    references: Sequence[np.ndarray] = ()


class DitPipeline:
    """Owns the modules and samples clips. Build with `tiny` (tests, benchmarks) or `from_pretrained`.

    Args:
        transformer: the audio-driven Wan transformer (36 input channels: noisy latents, mask, condition).
        vae: diffusers' AutoencoderKLWan.
        text_encoder: prompt -> embeddings (1, L, text_dim).
        audio_encoder: audio -> features at the video frame rate (num_frames, audio_dim).
        device, dtype: where and how the transformer runs.
        audio_scale: inference-time boost of the audio attention (the papers raise it above 1).
        shift: the flow-matching shift of the schedule (Wan: 5).
        sigmas: a custom few-step schedule (trajectory-preserving distilled models use their own), used as is
            for every clip instead of `num_inference_steps` evenly spaced steps.
        cpu_offload: keep the VAE and the text encoder on the CPU, so the accelerator holds only the transformer.
    """

    def __init__(
        self, transformer: AudioWanTransformer3DModel, vae: torch.nn.Module, text_encoder: TextEncoder,
        audio_encoder: AudioEncoder, *, device: str = "cpu", dtype: torch.dtype = torch.float32,
        audio_scale: float = 1.0, shift: float = 5.0, sigmas: Sequence[float] | None = None,
        cpu_offload: bool = False,
    ) -> None:  # fmt: skip
        # from_pretrained(torch_dtype=...) already keeps the norms in float32; a tiny model is built in float32
        self.transformer = transformer.to(device=device).eval()
        if dtype != torch.float32 and transformer.dtype == torch.float32:
            self.transformer = self.transformer.to(dtype=dtype)
        # cpu_offload keeps the VAE (used twice a clip) on the CPU; only the transformer occupies the accelerator
        self.vae_device = torch.device("cpu") if cpu_offload else torch.device(device)
        self.vae = vae.to(device=self.vae_device).eval()
        self.text_encoder = text_encoder
        self.audio_encoder = audio_encoder
        self.device = torch.device(device)
        self.dtype = dtype
        self.audio_scale = audio_scale
        self.shift = shift
        self.sigmas = list(sigmas) if sigmas else None
        config = self.vae.config
        self._mean = torch.tensor(config.latents_mean).view(1, -1, 1, 1, 1)
        self._std = torch.tensor(config.latents_std).view(1, -1, 1, 1, 1)

    @classmethod
    def tiny(cls, seed: int = 0, **options: object) -> DitPipeline:
        """A pipeline of tiny random modules (2 transformer layers, a 3-channel VAE): for tests and benchmarks."""
        from diffusers import AutoencoderKLWan

        torch.manual_seed(seed)
        transformer = AudioWanTransformer3DModel(**tiny_config(in_channels=36))
        vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                               temperal_downsample=[False, True, True])  # fmt: skip
        text = TextEncoder.tiny(transformer.config.text_dim, seed=seed)
        audio = make_audio_encoder(f"logmel:{transformer.config.audio_dim}")
        return cls(transformer, vae, text, audio, **options)  # type: ignore[arg-type]

    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, adapter: str | Path | None = None, audio_encoder: str | None = None,
        device: str = "cpu", dtype: torch.dtype = torch.bfloat16, **options: object,
    ) -> DitPipeline:  # fmt: skip
        """Load a diffusers-format Wan image-to-video checkpoint folder (transformer/, vae/, text_encoder/,
        tokenizer/) plus our adapter weights (audio attention, projector, mask head) in safetensors."""
        from diffusers import AutoencoderKLWan

        from codirector.generator.backends.dit.model import load_adapter

        root = Path(path)
        for part in ("transformer", "vae", "text_encoder", "tokenizer"):
            if not (root / part).is_dir():
                raise ConfigError(
                    f"dit weights {root}", f"has no {part}/ folder",
                    "Point weights= at a diffusers-format Wan image-to-video checkpoint folder.",
                )  # fmt: skip
        transformer = AudioWanTransformer3DModel.from_pretrained(root / "transformer", torch_dtype=dtype)
        if adapter is not None:
            load_adapter(transformer, Path(adapter))
        vae = AutoencoderKLWan.from_pretrained(root / "vae", torch_dtype=torch.float32)
        text_device = "cpu" if options.get("cpu_offload") else device
        text = TextEncoder.from_pretrained(root, device=text_device, dtype=dtype)
        audio_dim = transformer.config.audio_dim
        audio = make_audio_encoder(audio_encoder or f"logmel:{audio_dim}")
        if audio.feature_dim != audio_dim:
            raise ConfigError(
                f"audio_encoder {audio_encoder or 'logmel'}", f"gives {audio.feature_dim} features per frame, but the "
                f"adapter was trained on {audio_dim}", "Use the audio encoder the adapter was trained with.",
            )  # fmt: skip
        return cls(transformer, vae, text, audio, device=device, dtype=dtype, **options)  # type: ignore[arg-type]

    # --- latents ----------------------------------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """(1, 3, F, H, W) in [-1, 1] -> normalised latents (1, 16, latent F, H/8, W/8)."""
        latents = self.vae.encode(video.to(self.vae_device, self.vae.dtype)).latent_dist.mode()
        return ((latents.float().cpu() - self._mean) / self._std).to(self.dtype)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents -> (1, 3, F, H, W) in [-1, 1]."""
        latents = latents.float().cpu() * self._std + self._mean
        return self.vae.decode(latents.to(self.vae_device, self.vae.dtype)).sample.float().cpu()

    # --- sampling ---------------------------------------------------------------------------------------------

    def _audio_features(self, conditions: ClipConditions, num_frames: int) -> torch.Tensor | None:
        """(1, num_characters, num_frames, audio_dim), or None when nobody speaks."""
        if all(track is None for track in conditions.audio):
            return None
        dim = self.audio_encoder.feature_dim
        rows = [
            torch.zeros(num_frames, dim)
            if track is None
            else self.audio_encoder.encode(track, conditions.sample_rate, conditions.fps, num_frames).float()
            for track in conditions.audio
        ]
        return torch.stack(rows).unsqueeze(0).to(self.device, self.dtype)

    def reference_latents(self, references: Sequence[np.ndarray]) -> torch.Tensor:
        """Identity crops -> clean latents (1, N, 16, 1, h, w), patchified by the model without noise."""
        latents = [self.encode(frames_to_video([crop])) for crop in references]  # each 1 16 1 h w
        return torch.stack(latents, dim=1).to(self.device, self.dtype)

    @torch.no_grad()
    def _predict(
        self, latents: torch.Tensor, condition: torch.Tensor, timestep: torch.Tensor, text: torch.Tensor,
        audio: torch.Tensor | None, references: torch.Tensor | None = None,
    ) -> torch.Tensor:  # fmt: skip
        model_input = torch.cat([latents, condition], dim=1).to(self.device, self.dtype)
        gate = references if audio is not None and audio.shape[1] > 1 else None
        return self.transformer(
            hidden_states=model_input, timestep=timestep.to(self.device), encoder_hidden_states=text,
            audio_features=audio, audio_scale=self.audio_scale, reference_latents=gate, return_dict=False,
        )[0].float().cpu()  # fmt: skip

    @torch.no_grad()
    def predict_masks(self, image: np.ndarray, references: Sequence[np.ndarray], prompt: str = "") -> torch.Tensor:
        """Where each character is in `image` (sides multiples of 16): masks (N, h_tokens, w_tokens) in 0-1, from
        the mask head on the clean image's latents (KlingAvatar 2.0 sec. 3.3)."""
        grid = LatentGrid(1, image.shape[0], image.shape[1])
        latents = self.encode(frames_to_video([image])).float()
        condition = condition_channels(grid, {0: frames_to_video([image])[:, :, 0]}, self.encode).float()
        model_input = torch.cat([latents, condition], dim=1).to(self.device, self.dtype)
        output = self.transformer(
            hidden_states=model_input, timestep=torch.zeros(1, device=self.device),
            encoder_hidden_states=self.text_encoder.encode(prompt).to(self.device, self.dtype),
            reference_latents=self.reference_latents(references), return_masks=True, return_dict=True,
        )  # fmt: skip
        return output.character_masks[0, :, 0].float().cpu()

    @torch.no_grad()
    def sample(
        self, grid: LatentGrid, conditions: ClipConditions, sampler: DiffusionSettings, *,
        start: torch.Tensor | None = None, strength: float = 1.0,
    ) -> torch.Tensor:  # fmt: skip
        """Sample one clip; returns the decoded video (1, 3, num_frames, height, width) in [-1, 1].

        Args:
            grid: the clip's size (num_frames = 4k + 1, sides multiples of 16).
            conditions: prompt, given frames, audio, negative image.
            sampler: steps, guidance scales, seed (diffusers names).
            start: normalised latents to start from (image/video-to-video), noised to `strength`.
            strength: share of the schedule to run from `start` (1: from pure noise).
        """
        if not 0 < strength <= 1:
            raise ValueError(f"strength must be in (0, 1], got {strength}")
        generator = torch.Generator().manual_seed(sampler.seed)
        # a distilled model's own few-step sigmas, when given, replace the evenly spaced flow schedule
        steps = len(self.sigmas) if self.sigmas else sampler.num_inference_steps
        sigmas = sigma_schedule(steps, shift=self.shift, kind=self.sigmas or "flow")
        if start is not None and strength < 1:
            sigmas = [s for s in sigmas if s <= strength] or sigmas[-1:]
        scheduler = make_scheduler(sigmas, self.shift)
        shape = (1, 16, *grid.latent_shape)
        noise = torch.randn(shape, generator=generator)
        first_sigma = float(scheduler.sigmas[0])
        latents = noise if start is None else (1 - first_sigma) * start.float() + first_sigma * noise

        given = {i: frames_to_video([f])[:, :, 0] for i, f in conditions.given.items()}
        condition = condition_channels(grid, given, self.encode).float()
        negative_condition = None
        if conditions.negative_image is not None and sampler.negative_frame_guidance_scale > 0:
            degraded = dict(given)
            degraded[min(given)] = frames_to_video([conditions.negative_image])[:, :, 0]
            negative_condition = condition_channels(grid, degraded, self.encode).float()
        text = self.text_encoder.encode(conditions.prompt).to(self.device, self.dtype)
        negative_text = self.text_encoder.encode(conditions.negative_prompt).to(self.device, self.dtype)
        audio = self._audio_features(conditions, grid.num_frames)
        references = None
        if audio is not None and audio.shape[1] > 1:
            if len(conditions.references) != audio.shape[1]:
                raise ValueError(
                    f"{audio.shape[1]} voices need as many identity crops, got {len(conditions.references)}"
                )
            references = self.reference_latents(conditions.references)

        for timestep in scheduler.timesteps:
            step = timestep.expand(1)
            text_audio = self._predict(latents, condition, step, text, audio, references)
            uncond = text_audio
            if sampler.guidance_scale > 1:
                uncond = self._predict(latents, condition, step, negative_text, audio, references)
            no_audio = text_audio
            if audio is not None and sampler.audio_guidance_scale > 0:
                no_audio = self._predict(latents, condition, step, text, None)
            negative = text_audio
            if negative_condition is not None:
                negative = self._predict(latents, negative_condition, step, text, audio, references)
            # guidance_scale keeps diffusers' meaning (1 is off); the audio and negative-frame scales add terms
            prediction = combine_guidance(
                uncond, no_audio, text_audio, negative, guidance_scale=max(0.0, sampler.guidance_scale - 1.0),
                audio_guidance_scale=sampler.audio_guidance_scale,
                negative_frame_guidance_scale=sampler.negative_frame_guidance_scale,
            )  # fmt: skip
            latents = scheduler.step(prediction, timestep, latents, return_dict=False)[0]
        return self.decode(latents)

    def negative_image(self, reference: np.ndarray | None, seed: int) -> np.ndarray | None:
        return None if reference is None else degrade_reference(reference, seed)
