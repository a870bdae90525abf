"""The audio-driven Wan transformer: diffusers' Wan DiT plus windowed audio cross-attention and character masks.

- Audio (Kling-Avatar sec. 2.4): every block gets a zero-initialised audio cross-attention after its text
  cross-attention. The video tokens of latent frame t attend only to the audio tokens of latent frames
  t - audio_window_padding .. t + audio_window_padding ("each video token attends only to its temporally aligned
  audio tokens with a small padding"). `audio_scale` multiplies that attention's output at inference.
- Characters (KlingAvatar 2.0 sec. 3.3): each character's audio runs through the attention separately and is
  multiplied by that character's mask over the video tokens before the sum. Masks are passed in or predicted by
  mask heads on deep blocks (`multi_character.py`) from identity crops.

At zero init (or without audio) the model equals the stock `WanTransformer3DModel` with the same weights exactly.
Shapes: B batch, N characters, F latent frames, Ht x Wt tokens per frame, L = F * Ht * Wt, K audio tokens per
latent frame, D = num_attention_heads * attention_head_dim.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.models.transformers.transformer_wan import (
    WanTransformer3DModel,
)
from diffusers.utils import BaseOutput
from diffusers.utils.peft_utils import apply_lora_scale
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from codirector.generator.backends.dit.audio_attention import (
    AudioInjection,
    AudioProjector,
    AudioWanTransformerBlock,
    audio_windows,
)
from codirector.generator.backends.dit.context_parallel import (
    CONTEXT_PARALLEL_PLAN,
    FrameGather,
    FrameSplit,
    gather_frames,
)
from codirector.generator.backends.dit.multi_character import CharacterMaskHead

__all__ = [
    "AudioInjection",
    "AudioProjector",
    "AudioWanTransformer3DModel",
    "AudioWanTransformerBlock",
    "AudioWanTransformerOutput",
    "load_adapter",
    "read_adapter_config",
    "save_adapter",
    "tiny_config",
]

_ADAPTER_MODULES = ("audio_projector", "audio_attn", "norm_audio", "mask_heads")
# The config keys an adapter file carries: they shape the audio and mask modules, so a model is built from them.
_ADAPTER_CONFIG = ("audio_dim", "audio_tokens_per_frame", "audio_hidden_dim", "audio_window_padding")
_ADAPTER_CONFIG += ("vae_scale_factor_temporal", "mask_layers", "identity_dim", "mask_head_num_heads")


def tiny_config(**overrides: Any) -> dict[str, Any]:
    """A tiny random model's config (diffusers' own Wan test sizes) for tests and benchmarks.

    Example:
        >>> model = AudioWanTransformer3DModel(**tiny_config(in_channels=36))
    """
    config: dict[str, Any] = dict(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
        text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32, audio_dim=16, audio_tokens_per_frame=4, audio_hidden_dim=32, audio_window_padding=1,
        mask_layers=(0,), identity_dim=16, mask_head_num_heads=2,
    )  # fmt: skip
    return {**config, **overrides}


@dataclass
class AudioWanTransformerOutput(BaseOutput):
    """sample (B, out_channels, F, H, W); character_masks (B, N, F, Ht, Wt) in [0, 1] and character_mask_logits,
    the mean over mask layers, when masks were asked for."""

    sample: torch.Tensor
    character_masks: torch.Tensor | None = None
    character_mask_logits: torch.Tensor | None = None


class AudioWanTransformer3DModel(WanTransformer3DModel):
    r"""`WanTransformer3DModel` driven by per-character audio, with mask heads for multi-character scenes.

    Args (beyond the base model's):
        audio_dim: width A of the audio encoder's features.
        audio_tokens_per_frame: K audio tokens per latent frame.
        audio_hidden_dim: width of the audio projector's MLP.
        audio_window_padding: latent frames each side a video token's audio window reaches (Kling-Avatar sec. 2.4).
        vae_scale_factor_temporal: video frames per latent frame (4 for Wan).
        mask_layers: blocks whose outputs feed a mask head (KlingAvatar 2.0 sec. 3.3); empty for none.
        identity_dim: mask head width.
        mask_head_num_heads: mask head attention heads.
        with_audio: build the audio modules; False makes the stock Wan model (no audio weights to drive them).

    Example:
        >>> model = AudioWanTransformer3DModel(**tiny_config())
        >>> out = model(torch.randn(1, 16, 3, 16, 16), torch.tensor([500]), torch.randn(1, 8, 32),
        ...             audio_features=torch.randn(1, 1, 9, 16)).sample  # (1, 16, 3, 16, 16)
    """

    _no_split_modules: ClassVar[list[str]] = ["AudioWanTransformerBlock"]
    _repeated_blocks: ClassVar[list[str]] = ["AudioWanTransformerBlock"]
    _keep_in_fp32_modules: ClassVar[list[str]] = [*WanTransformer3DModel._keep_in_fp32_modules, "norm_audio"]
    # split between latent frames, not anywhere in the sequence as Wan's plan does (context_parallel.py)
    _cp_plan: ClassVar[dict[str, Any]] = CONTEXT_PARALLEL_PLAN

    @register_to_config
    def __init__(
        self,
        patch_size: tuple[int, ...] = (1, 2, 2),
        num_attention_heads: int = 40,
        attention_head_dim: int = 128,
        in_channels: int = 16,
        out_channels: int = 16,
        text_dim: int = 4096,
        freq_dim: int = 256,
        ffn_dim: int = 13824,
        num_layers: int = 40,
        cross_attn_norm: bool = True,
        qk_norm: str | None = "rms_norm_across_heads",
        eps: float = 1e-6,
        image_dim: int | None = None,
        added_kv_proj_dim: int | None = None,
        rope_max_seq_len: int = 1024,
        pos_embed_seq_len: int | None = None,
        audio_dim: int = 768,
        audio_tokens_per_frame: int = 32,
        audio_hidden_dim: int = 1024,
        audio_window_padding: int = 1,
        vae_scale_factor_temporal: int = 4,
        mask_layers: tuple[int, ...] | list[int] = (),
        identity_dim: int = 256,
        mask_head_num_heads: int = 4,
        with_audio: bool = True,
    ) -> None:
        if patch_size[0] != 1:
            raise ValueError(f"patch_size must patch one latent frame per token (patch_size[0] == 1), got {patch_size}")
        if any(not 0 <= index < num_layers for index in mask_layers):
            raise ValueError(f"mask_layers must be block indices in [0, {num_layers}), got {list(mask_layers)}")
        if identity_dim % mask_head_num_heads:
            raise ValueError(
                f"identity_dim must divide by mask_head_num_heads={mask_head_num_heads}, got {identity_dim}"
            )
        if audio_window_padding < 0:
            raise ValueError(f"audio_window_padding must be >= 0, got {audio_window_padding}")
        super().__init__(
            patch_size=patch_size, num_attention_heads=num_attention_heads, attention_head_dim=attention_head_dim,
            in_channels=in_channels, out_channels=out_channels, text_dim=text_dim, freq_dim=freq_dim,
            ffn_dim=ffn_dim, num_layers=num_layers, cross_attn_norm=cross_attn_norm, qk_norm=qk_norm, eps=eps,
            image_dim=image_dim, added_kv_proj_dim=added_kv_proj_dim, rope_max_seq_len=rope_max_seq_len,
            pos_embed_seq_len=pos_embed_seq_len,
        )  # fmt: skip
        inner_dim = num_attention_heads * attention_head_dim
        block_args = (inner_dim, ffn_dim, num_attention_heads, qk_norm, cross_attn_norm, eps, added_kv_proj_dim)
        self.blocks = nn.ModuleList([AudioWanTransformerBlock(*block_args, with_audio) for _ in range(num_layers)])
        self.audio_projector = None
        if with_audio:
            self.audio_projector = AudioProjector(
                audio_dim, inner_dim, audio_tokens_per_frame, audio_hidden_dim, vae_scale_factor_temporal
            )
        self.mask_heads = nn.ModuleDict(
            {str(i): CharacterMaskHead(inner_dim, identity_dim, mask_head_num_heads, eps) for i in sorted(mask_layers)}
        )
        self.frame_split, self.frame_gather = FrameSplit(), FrameGather()  # no weights: context parallel's cut points

    # --- loading ----------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | Path,
        *args: Any,
        adapter_path: str | Path | None = None,
        **kwargs: Any,
    ) -> AudioWanTransformer3DModel:
        """Load a diffusers-format Wan transformer folder; initialise the audio and mask modules it lacks.

        With `adapter_path`, the adapter's audio config (stored in the safetensors file) sets the audio arguments
        and its weights are loaded. Other kwargs are `ModelMixin.from_pretrained`'s (`torch_dtype`, `subfolder`,
        config overrides such as `audio_dim=1024`).
        """
        if adapter_path is not None:
            kwargs = {**read_adapter_config(adapter_path), **kwargs}
        want_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs)
        missing = [key for key in info["missing_keys"] if not _is_adapter_key(key)]
        if missing:
            raise ValueError(f"{pretrained_model_name_or_path} lacks backbone weights: {sorted(missing)[:8]}")
        model.initialize_adapter(only_missing=set(info["missing_keys"]))
        if adapter_path is not None:
            load_adapter(model, adapter_path)
        return (model, info) if want_info else model

    @classmethod
    def from_single_file_with_config(
        cls, file: str | Path, config_folder: str | Path, *, torch_dtype: torch.dtype | None = None,
        adapter_path: str | Path | None = None,
    ) -> AudioWanTransformer3DModel:  # fmt: skip
        """Load an original-format Wan transformer file (Wan's own key names, as ComfyUI and Wan2GP keep them)
        through diffusers' single-file loader, with the config of a diffusers transformer folder.

        The audio and mask modules, absent from such a file, are initialised (or loaded from `adapter_path`).
        """
        from accelerate import init_empty_weights

        folder = Path(config_folder)
        # diffusers' own single-file loader converts the keys into its stock class; our model then takes those
        # tensors as they are (assign: no copy) and initialises or loads the audio modules the file lacks
        stock = WanTransformer3DModel.from_single_file(
            str(file), config=str(folder.parent), subfolder=folder.name, torch_dtype=torch_dtype,
            local_files_only=True,
        )  # fmt: skip
        audio = {"with_audio": False} if adapter_path is None else read_adapter_config(adapter_path)
        with init_empty_weights():
            model = cls(**{**dict(stock.config), **audio})
        result = model.load_state_dict(stock.state_dict(), strict=False, assign=True)
        if result.unexpected_keys:
            raise ValueError(f"{file} has weights {folder}'s config does not: {sorted(result.unexpected_keys)[:8]}")
        missing = sorted(key for key in result.missing_keys if not _is_adapter_key(key))
        if missing:
            raise ValueError(f"{file} lacks backbone weights of {folder}'s config: {missing[:8]}")
        model.initialize_adapter(only_missing=set(result.missing_keys))
        if adapter_path is not None:
            load_adapter(model, adapter_path)
        if torch_dtype is not None:
            model.cast_adapter(torch_dtype)
        return model.eval()

    def cast_adapter(self, dtype: torch.dtype) -> None:
        """Cast the audio and mask modules to `dtype`, the audio norms staying float32 like the base norms."""
        if self.audio_projector is not None:
            for block in self.blocks:
                block.audio_attn.to(dtype)
                block.norm_audio.float()
            self.audio_projector.to(dtype)
        self.mask_heads.to(dtype)

    def initialize_adapter(self, only_missing: set[str] | None = None) -> None:
        """Initialise the audio and mask modules (all, or those with a key in `only_missing`).

        Modules that `from_pretrained` left on the meta device (or left uninitialised) are materialised next to
        the backbone with `to_empty` and initialised: audio output projections at zero, the rest at the default.
        """
        device = self.patch_embedding.weight.device
        named: list[tuple[str, nn.Module]] = [("mask_heads", self.mask_heads)]
        if self.audio_projector is not None:
            named += [(f"blocks.{i}", block) for i, block in enumerate(self.blocks)]
            named.append(("audio_projector", self.audio_projector))
        for prefix, module in named:
            keys = {f"{prefix}.{name}" for name, _ in module.named_parameters() if _is_adapter_key(f"{prefix}.{name}")}
            if only_missing is not None and not keys & only_missing:
                continue
            if isinstance(module, AudioWanTransformerBlock):
                for part in (module.norm_audio, module.audio_attn):
                    if any(p.is_meta for p in part.parameters()):
                        part.to_empty(device=device)
                module.reset_audio_parameters()
                module.norm_audio.float()  # kept in float32 like the base norms (_keep_in_fp32_modules)
                continue
            if any(p.is_meta for p in module.parameters()):
                module.to_empty(device=device)
            for sub in module.modules():
                if hasattr(sub, "reset_parameters"):
                    sub.reset_parameters()

    # --- conditioning -----------------------------------------------------------------------------------------

    def embed_references(self, reference_latents: torch.Tensor) -> torch.Tensor:
        """Identity tokens: reference crops' clean latents through the backbone's patch embedding (sec. 3.3).

        Args:
            reference_latents: (B, N, C, Fr, Hr, Wr); C = in_channels, or out_channels (16) for image-to-video
                models, whose mask and conditioning channels are then zero.

        Returns:
            (B, N, R, D), R = Fr * Hr * Wr / prod(patch_size).
        """
        batch, num_characters, channels = reference_latents.shape[:3]
        latents = reference_latents.flatten(0, 1)  # (b n) c fr hr wr
        if channels < self.config.in_channels:
            padding = latents.new_zeros(latents.shape[0], self.config.in_channels - channels, *latents.shape[2:])
            latents = torch.cat([latents, padding], dim=1)
        tokens = self.patch_embedding(latents.to(self.patch_embedding.weight.dtype)).flatten(2).transpose(1, 2)
        return tokens.unflatten(0, (batch, num_characters))  # b n r d

    def check_inputs(
        self,
        hidden_states: torch.Tensor,
        audio_features: torch.Tensor | None,
        reference_latents: torch.Tensor | None,
        character_masks: torch.Tensor | None,
        return_masks: bool,
    ) -> None:
        """Raise ValueError naming the argument, the constraint and the value."""
        config = self.config
        if hidden_states.ndim != 5 or hidden_states.shape[1] != config.in_channels:
            raise ValueError(
                f"hidden_states must be (B, {config.in_channels}, F, H, W), got shape {tuple(hidden_states.shape)}"
            )
        batch, _, num_frames, height, width = hidden_states.shape
        grid = (num_frames, height // config.patch_size[1], width // config.patch_size[2])
        num_video_frames = config.vae_scale_factor_temporal * (num_frames - 1) + 1
        counts = {}
        if audio_features is not None:
            if self.audio_projector is None:
                raise ValueError("audio_features were given, but the model was built without audio (with_audio=False)")
            expected = (batch, audio_features.shape[1], num_video_frames, config.audio_dim)
            if audio_features.ndim != 4 or tuple(audio_features.shape) != expected:
                raise ValueError(
                    f"audio_features must be (B, num_characters, num_video_frames, audio_dim) = (B, N, "
                    f"{num_video_frames}, {config.audio_dim}) for {num_frames} latent frames, "
                    f"got shape {tuple(audio_features.shape)}"
                )
            counts["audio_features"] = audio_features.shape[1]
        if reference_latents is not None:
            if len(self.mask_heads) == 0:
                raise ValueError("reference_latents were given, but the model has no mask head (mask_layers is empty)")
            shape = tuple(reference_latents.shape)
            if reference_latents.ndim != 6 or shape[0] != batch or shape[2] > config.in_channels:
                raise ValueError(f"reference_latents must be (B={batch}, N, C, Fr, Hr, Wr), got shape {shape}")
            counts["reference_latents"] = shape[1]
        if character_masks is not None:
            if character_masks.ndim != 5 or tuple(character_masks.shape[2:]) != grid:
                raise ValueError(
                    f"character_masks must be (B, N, F, Ht, Wt) = (B, N, {', '.join(map(str, grid))}), "
                    f"got shape {tuple(character_masks.shape)}"
                )
            counts["character_masks"] = character_masks.shape[1]
        if len(set(counts.values())) > 1:
            raise ValueError(f"the number of characters must agree across inputs, got {counts}")
        multi = counts.get("audio_features", 1) > 1
        if multi and reference_latents is None and character_masks is None:
            raise ValueError(
                f"audio_features has {counts['audio_features']} characters: pass reference_latents (predicted "
                "masks) or character_masks so that each voice reaches only its own character"
            )
        if return_masks and reference_latents is None:
            raise ValueError("return_masks=True needs reference_latents to predict masks from")

    # --- forward ----------------------------------------------------------------------------------------------

    def _embed(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_hidden_states_image: torch.Tensor | None,
    ) -> tuple[torch.Tensor, ...]:
        """Steps 1-3 of `WanTransformer3DModel.forward`: tokens (B, L, D), rope, temb, timestep_proj, context."""
        rotary_emb = self.rope(hidden_states)
        hidden_states = self.patch_embedding(hidden_states).flatten(2).transpose(1, 2).contiguous()  # b l d

        # timestep shape: batch_size, or batch_size, seq_len (wan 2.2 ti2v)
        ts_seq_len = timestep.shape[1] if timestep.ndim == 2 else None
        temb, timestep_proj, encoder_hidden_states, encoder_hidden_states_image = self.condition_embedder(
            timestep.flatten(), encoder_hidden_states, encoder_hidden_states_image, timestep_seq_len=ts_seq_len
        )
        timestep_proj = timestep_proj.unflatten(2 if ts_seq_len is not None else 1, (6, -1))
        if encoder_hidden_states_image is not None:
            encoder_hidden_states = torch.concat([encoder_hidden_states_image, encoder_hidden_states], dim=1)
        return hidden_states, rotary_emb, temb, timestep_proj, encoder_hidden_states

    def _run_blocks(
        self,
        hidden_states: torch.Tensor,
        context: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        grid: tuple[int, int, int],
        audio_features: torch.Tensor | None,
        audio_scale: float,
        reference_latents: torch.Tensor | None,
        character_masks: torch.Tensor | None,
        last_block: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The blocks with audio and mask heads; returns tokens (B, L, D) and mask logits (B, N, L) or None."""
        encoder_hidden_states, timestep_proj, (cos, sin) = context
        num_frames, tokens_per_frame = grid[0], grid[1] * grid[2]
        # Context parallelism splits here, between latent frames (identity otherwise); frames: this rank's ones.
        hidden_states, cos, sin, frames = self.frame_split(
            hidden_states.unflatten(1, (num_frames, tokens_per_frame)),
            cos.unflatten(1, (num_frames, tokens_per_frame)).squeeze(3),
            sin.unflatten(1, (num_frames, tokens_per_frame)).squeeze(3),
            torch.arange(num_frames),
        )  # b f s d, 1 f s h, 1 f s h, f
        hidden_states = hidden_states.flatten(1, 2)  # b l d, this rank's l
        rotary_emb = (cos.flatten(1, 2).unsqueeze(2), sin.flatten(1, 2).unsqueeze(2))  # 1 l 1 h
        audio_tokens = windows = identity_tokens = logits = None
        if audio_features is not None:
            audio_tokens = self.audio_projector(audio_features).flatten(2, 3)  # b n (f k) d, every frame's
            windows = audio_windows(grid, self.config.audio_tokens_per_frame, self.config.audio_window_padding,
                                    hidden_states.device, frames)  # fmt: skip
        if reference_latents is not None:
            identity_tokens = self.embed_references(reference_latents)  # b n r d
        gates = None
        if character_masks is not None:
            gates = character_masks.flatten(3)[:, :, frames.to(character_masks.device)].flatten(2)  # b n l
        num_logits = 0
        for index, block in enumerate(self.blocks):
            injection = None
            if audio_tokens is not None and (gates is not None or audio_tokens.shape[1] == 1):
                # Several characters wait for masks: before the first mask layer nothing routes their voices.
                injection = AudioInjection(audio_tokens, windows, gates, audio_scale)
            args = (hidden_states, encoder_hidden_states, timestep_proj, rotary_emb, injection)
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                hidden_states = self._gradient_checkpointing_func(block, *args)
            else:
                hidden_states = block(*args)
            if identity_tokens is not None and str(index) in self.mask_heads:
                # KlingAvatar 2.0 sec. 3.3: deep features + identity cross-attention -> per-token mask logits.
                layer_logits = self.mask_heads[str(index)](hidden_states, identity_tokens)  # b n l
                logits = layer_logits if logits is None else logits + layer_logits
                num_logits += 1
                if character_masks is None:
                    gates = torch.sigmoid(logits / num_logits)
            if index == last_block:
                break
        parallel = self._parallel_config
        hidden_states = hidden_states.unflatten(1, (-1, tokens_per_frame))  # b f s d
        hidden_states = gather_frames(self.frame_gather, hidden_states, num_frames, parallel).flatten(1, 2)
        if logits is not None:  # b n l -> b f n s for the gather along frames, and back
            logits = logits.unflatten(2, (-1, tokens_per_frame)).transpose(1, 2) / num_logits
            logits = gather_frames(self.frame_gather, logits, num_frames, parallel).transpose(1, 2).flatten(2)
        return hidden_states, logits

    @apply_lora_scale("attention_kwargs")
    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        audio_features: torch.Tensor | None = None,
        audio_scale: float = 1.0,
        reference_latents: torch.Tensor | None = None,
        character_masks: torch.Tensor | None = None,
        return_masks: bool = False,
        encoder_hidden_states_image: torch.Tensor | None = None,
        return_dict: bool = True,
        attention_kwargs: dict[str, Any] | None = None,
    ) -> AudioWanTransformerOutput | tuple[torch.Tensor, ...]:
        """Predict the flow for `hidden_states`, driven by each character's audio.

        Args:
            hidden_states: (B, in_channels, F, H, W) latents; for image-to-video (in_channels 36) the noisy
                latents (16), the frame mask (4) and the conditioning latents (16), as in WanImageToVideoPipeline.
            timestep: (B,) or (B, L) timesteps.
            encoder_hidden_states: (B, S, text_dim) text embeddings.
            audio_features: (B, N, 4 * (F - 1) + 1, audio_dim) per-character encoder features at video rate.
            audio_scale: multiplies the audio attention's output (above 1 boosts lip sync at inference).
            reference_latents: (B, N, C, Fr, Hr, Wr) identity crops' clean latents, for predicted masks.
            character_masks: (B, N, F, Ht, Wt) in [0, 1]; overrides predicted masks and gates every block.
            return_masks: also return the predicted masks (needs reference_latents).
            encoder_hidden_states_image: image embeddings for models with an image embedder.
            return_dict: return an `AudioWanTransformerOutput` instead of a tuple.
            attention_kwargs: as in diffusers (`scale` for LoRA).

        Returns:
            `AudioWanTransformerOutput`, or `(sample,)` / `(sample, character_masks)` with return_masks.
        """
        self.check_inputs(hidden_states, audio_features, reference_latents, character_masks, return_masks)
        batch_size, _, num_frames, height, width = hidden_states.shape
        p_t, p_h, p_w = self.config.patch_size
        grid = (num_frames // p_t, height // p_h, width // p_w)

        hidden_states, rotary_emb, temb, timestep_proj, encoder_hidden_states = self._embed(
            hidden_states, timestep, encoder_hidden_states, encoder_hidden_states_image
        )
        context = (encoder_hidden_states, timestep_proj, rotary_emb)
        hidden_states, logits = self._run_blocks(
            hidden_states, context, grid, audio_features, audio_scale, reference_latents, character_masks
        )

        # 5. Output norm, projection & unpatchify (as in WanTransformer3DModel.forward)
        if temb.ndim == 3:  # batch_size, seq_len, inner_dim (wan 2.2 ti2v)
            shift, scale = (self.scale_shift_table.unsqueeze(0).to(temb.device) + temb.unsqueeze(2)).chunk(2, dim=2)
            shift, scale = shift.squeeze(2), scale.squeeze(2)
        else:  # batch_size, inner_dim
            shift, scale = (self.scale_shift_table.to(temb.device) + temb.unsqueeze(1)).chunk(2, dim=1)
        shift, scale = shift.to(hidden_states.device), scale.to(hidden_states.device)
        hidden_states = (self.norm_out(hidden_states.float()) * (1 + scale) + shift).type_as(hidden_states)
        hidden_states = self.proj_out(hidden_states)
        hidden_states = hidden_states.reshape(batch_size, *grid, p_t, p_h, p_w, -1)
        output = hidden_states.permute(0, 7, 1, 4, 2, 5, 3, 6).flatten(6, 7).flatten(4, 5).flatten(2, 3)

        mask_logits = None if logits is None or not return_masks else logits.unflatten(2, grid)  # b n f ht wt
        masks = None if mask_logits is None else torch.sigmoid(mask_logits)
        if not return_dict:
            return (output, masks) if return_masks else (output,)
        return AudioWanTransformerOutput(sample=output, character_masks=masks, character_mask_logits=mask_logits)

    def predict_character_mask_logits(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        reference_latents: torch.Tensor,
        audio_features: torch.Tensor | None = None,
        encoder_hidden_states_image: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mask logits (B, N, F, Ht, Wt), mean over mask layers; runs the blocks only up to the last mask layer."""
        self.check_inputs(hidden_states, audio_features, reference_latents, None, True)
        _, _, num_frames, height, width = hidden_states.shape
        grid = (num_frames, height // self.config.patch_size[1], width // self.config.patch_size[2])
        tokens, rotary_emb, _, timestep_proj, context = self._embed(
            hidden_states, timestep, encoder_hidden_states, encoder_hidden_states_image
        )
        last = max(int(index) for index in self.mask_heads)
        _, logits = self._run_blocks(
            tokens, (context, timestep_proj, rotary_emb), grid, audio_features, 1.0, reference_latents, None, last
        )
        return logits.unflatten(2, grid)


# --- adapter weights ----------------------------------------------------------------------------------------------


def _is_adapter_key(key: str) -> bool:
    return any(part in _ADAPTER_MODULES for part in key.split("."))


def read_adapter_config(path: str | Path) -> dict[str, Any]:
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if "codirector_adapter_config" not in metadata:
        raise ValueError(f"adapter file {path} has no codirector_adapter_config metadata; was it made by save_adapter?")
    return json.loads(metadata["codirector_adapter_config"])


def save_adapter(model: AudioWanTransformer3DModel, path: str | Path) -> Path:
    """Save the audio and mask-head weights (not the backbone) with their config, as safetensors."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if _is_adapter_key(k)}
    config = {name: model.config[name] for name in _ADAPTER_CONFIG}
    config["mask_layers"] = list(config["mask_layers"])
    save_file(tensors, str(path), metadata={"format": "pt", "codirector_adapter_config": json.dumps(config)})
    return Path(path)


def load_adapter(model: AudioWanTransformer3DModel, path: str | Path, strict: bool = True) -> None:
    """Load weights saved by `save_adapter` into `model`, in place.

    Raises:
        ValueError: the adapter's config differs from the model's, or (strict) keys are missing or unexpected.
    """
    saved = read_adapter_config(path)
    ours = {name: model.config[name] for name in _ADAPTER_CONFIG}
    ours["mask_layers"] = list(ours["mask_layers"])
    # files saved before a key joined _ADAPTER_CONFIG were made with that key's default
    differs = {name: (saved[name], ours[name]) for name in ours if name in saved and saved[name] != ours[name]}
    if differs:
        raise ValueError(f"adapter {path} was made for another config (saved, model): {differs}")
    tensors = load_file(str(path), device=str(model.patch_embedding.weight.device))
    expected = {key for key in model.state_dict() if _is_adapter_key(key)}
    missing, unexpected = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
    if unexpected or (strict and missing):
        raise ValueError(f"adapter {path} does not fit: missing {missing[:8]}, unexpected {unexpected[:8]}")
    model.load_state_dict(tensors, strict=False)
