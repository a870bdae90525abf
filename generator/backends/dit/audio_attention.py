"""The audio cross-attention of each block: windowed in time, gated per character (Kling-Avatar sec. 2.4,
KlingAvatar 2.0 sec. 3.3).

The video tokens of latent frame t attend only to the audio tokens of latent frames t - padding .. t + padding;
each character's audio runs through the attention separately and is multiplied by that character's mask over the
video tokens before the sum. The output projection starts at zero, so a fresh block equals diffusers' block.
Shapes: B batch, N characters, F latent frames, L = F * Ht * Wt video tokens, K audio tokens per latent frame,
D model width.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from diffusers.models.normalization import FP32LayerNorm
from diffusers.models.transformers.transformer_wan import WanAttention, WanAttnProcessor, WanTransformerBlock
from torch import nn

from codirector.generator.backends.dit.multi_character import group_video_frames

__all__ = ["AudioInjection", "AudioProjector", "AudioWanTransformerBlock", "audio_window_mask"]


def audio_window_mask(
    grid: tuple[int, int, int], audio_tokens_per_frame: int, padding: int, device: Any
) -> torch.Tensor:
    """The block-diagonal-with-padding attention mask of the audio cross-attention (Kling-Avatar sec. 2.4).

    Args:
        grid: (F, Ht, Wt) the latent token grid; video token i belongs to latent frame i // (Ht * Wt).
        audio_tokens_per_frame: K; audio token j belongs to latent frame j // K.
        padding: latent frames of slack on either side.

    Returns:
        (1, 1, L, F * K) bool, True where |frame(video token) - frame(audio token)| <= padding.
    """
    num_frames, height, width = grid
    video_frame = torch.arange(num_frames, device=device).repeat_interleave(height * width)  # l
    audio_frame = torch.arange(num_frames, device=device).repeat_interleave(audio_tokens_per_frame)  # (f k)
    return ((video_frame[:, None] - audio_frame[None, :]).abs() <= padding)[None, None]


@dataclass(frozen=True)
class AudioInjection:
    """What one block's audio cross-attention needs.

    Attributes:
        tokens: (B, N, F * K, D) each character's audio tokens.
        attention_mask: (1, 1, L, F * K) bool window mask (`audio_window_mask`).
        character_masks: (B, N, L) gates in [0, 1], or None for no gating (one character).
        scale: multiplies the attention's output (inference-time audio boost).
    """

    tokens: torch.Tensor
    attention_mask: torch.Tensor
    character_masks: torch.Tensor | None
    scale: float = 1.0


class AudioProjector(nn.Module):
    """Encoder features at video rate -> K audio tokens per latent frame.

    Each latent frame's group of video-rate frames (latent 0 <- video frame 0 repeated 4 times, latent t > 0 <-
    video frames 4t-3..4t; `group_video_frames`) is concatenated and mapped by an MLP to K tokens of width D.
    Groups are projected independently, so a video frame's audio reaches only its own latent frame's tokens.

    Args:
        audio_dim: encoder feature width A.
        dim: transformer width D.
        tokens_per_frame: K.
        hidden_dim: MLP width.
        temporal_factor: video frames per latent frame (4 for Wan).
    """

    def __init__(self, audio_dim: int, dim: int, tokens_per_frame: int, hidden_dim: int, temporal_factor: int = 4):
        super().__init__()
        self.temporal_factor = temporal_factor
        self.tokens_per_frame = tokens_per_frame
        self.proj_in = nn.Linear(temporal_factor * audio_dim, hidden_dim)
        self.act = nn.GELU(approximate="tanh")
        self.proj_out = nn.Linear(hidden_dim, tokens_per_frame * dim)
        self.norm = FP32LayerNorm(dim, elementwise_affine=True)

    def forward(self, audio_features: torch.Tensor) -> torch.Tensor:
        """(B, N, num_video_frames, A) -> (B, N, F, K, D), num_video_frames = 4 * (F - 1) + 1."""
        grouped = group_video_frames(audio_features, dim=2, temporal_factor=self.temporal_factor)  # b n f t a
        tokens = self.proj_out(self.act(self.proj_in(grouped.flatten(3))))  # b n f (k d)
        return self.norm(tokens.unflatten(-1, (self.tokens_per_frame, -1)))  # b n f k d


def _modulation(table: torch.Tensor, temb: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The six adaLN tensors exactly as `WanTransformerBlock.forward` computes them."""
    if temb.ndim == 4:  # batch_size, seq_len, 6, inner_dim (wan2.2 ti2v)
        return tuple(part.squeeze(2) for part in (table.unsqueeze(0) + temb.float()).chunk(6, dim=2))
    return tuple((table + temb.float()).chunk(6, dim=1))  # batch_size, 6, inner_dim


class AudioWanTransformerBlock(WanTransformerBlock):
    """A Wan block with a windowed, per-character gated audio cross-attention after the text cross-attention.

    `audio_attn.to_out[0]` starts at zero, so the block reproduces `WanTransformerBlock` exactly until trained.
    """

    def __init__(
        self,
        dim: int,
        ffn_dim: int,
        num_heads: int,
        qk_norm: str = "rms_norm_across_heads",
        cross_attn_norm: bool = False,
        eps: float = 1e-6,
        added_kv_proj_dim: int | None = None,
    ) -> None:
        super().__init__(dim, ffn_dim, num_heads, qk_norm, cross_attn_norm, eps, added_kv_proj_dim)
        self.norm_audio = FP32LayerNorm(dim, eps, elementwise_affine=True)
        self.audio_attn = WanAttention(
            dim=dim,
            heads=num_heads,
            dim_head=dim // num_heads,
            eps=eps,
            cross_attention_dim_head=dim // num_heads,
            processor=WanAttnProcessor(),
        )
        self.reset_audio_parameters()

    def reset_audio_parameters(self) -> None:
        """(Re)initialise the audio modules; the output projection is zero (the block starts as the base one)."""
        for module in (*self.norm_audio.modules(), *self.audio_attn.modules()):
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        nn.init.zeros_(self.audio_attn.to_out[0].weight)
        nn.init.zeros_(self.audio_attn.to_out[0].bias)

    def audio_attention(self, hidden_states: torch.Tensor, audio: AudioInjection) -> torch.Tensor:
        """sum_c mask_c * attn(norm(x), audio_c) * scale: (B, L, D) -> (B, L, D)."""
        norm_hidden_states = self.norm_audio(hidden_states.float()).type_as(hidden_states)
        output = torch.zeros_like(hidden_states)
        for character in range(audio.tokens.shape[1]):
            tokens = audio.tokens[:, character].to(hidden_states.dtype)  # b (f k) d
            attended = self.audio_attn(norm_hidden_states, tokens, audio.attention_mask, None)  # b l d
            if audio.character_masks is not None:
                # KlingAvatar 2.0 sec. 3.3: the mask gates this character's audio into its own region.
                attended = attended * audio.character_masks[:, character, :, None].to(attended.dtype)
            output = output + attended
        return output * audio.scale

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        temb: torch.Tensor,
        rotary_emb: torch.Tensor,
        audio: AudioInjection | None = None,
    ) -> torch.Tensor:
        """`WanTransformerBlock.forward` with step 2b (audio); hidden_states (B, L, D) -> (B, L, D)."""
        if audio is None:
            return super().forward(hidden_states, encoder_hidden_states, temb, rotary_emb)
        shift_msa, scale_msa, gate_msa, c_shift_msa, c_scale_msa, c_gate_msa = _modulation(self.scale_shift_table, temb)

        # 1. Self-attention
        norm_hidden_states = (self.norm1(hidden_states.float()) * (1 + scale_msa) + shift_msa).type_as(hidden_states)
        attn_output = self.attn1(norm_hidden_states, None, None, rotary_emb)
        hidden_states = (hidden_states.float() + attn_output * gate_msa).type_as(hidden_states)

        # 2. Cross-attention (text)
        norm_hidden_states = self.norm2(hidden_states.float()).type_as(hidden_states)
        attn_output = self.attn2(norm_hidden_states, encoder_hidden_states, None, None)
        hidden_states = hidden_states + attn_output

        # 2b. Audio cross-attention, windowed in time (Kling-Avatar sec. 2.4)
        hidden_states = hidden_states + self.audio_attention(hidden_states, audio)

        # 3. Feed-forward
        norm_hidden_states = (self.norm3(hidden_states.float()) * (1 + c_scale_msa) + c_shift_msa).type_as(
            hidden_states
        )
        ff_output = self.ffn(norm_hidden_states)
        return (hidden_states.float() + ff_output.float() * c_gate_msa).type_as(hidden_states)
