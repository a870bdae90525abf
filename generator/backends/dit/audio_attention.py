"""The audio cross-attention of each block: windowed in time, gated per character (Kling-Avatar sec. 2.4,
KlingAvatar 2.0 sec. 3.3).

The video tokens of latent frame t attend only to the audio tokens of latent frames t - padding .. t + padding;
each character's audio runs through the attention separately and is multiplied by that character's mask over the
video tokens before the sum. The output projection starts at zero, so a fresh block equals diffusers' block.

The window is not a mask: each latent frame's video tokens are the queries of their own attention call whose keys
are exactly that frame's window of audio tokens, so every diffusers attention backend (flash, sage, cuDNN, SDPA),
none of which needs a mask and some of which refuse one, runs it. Frames whose windows have the same length (all but
the first and last `padding` frames) share one call, with frames and characters folded into the batch.
Shapes: B batch, N characters, F latent frames, S = Ht * Wt video tokens per latent frame, L = F * S video tokens,
K audio tokens per latent frame, w window length in latent frames (at most 2 * padding + 1), D model width.
Under context parallelism a rank's queries are its consecutive frames f of F (`AudioWindows.frames`); every rank
holds all F * K audio tokens, which are few.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from diffusers.models.normalization import FP32LayerNorm
from diffusers.models.transformers.transformer_wan import WanAttention, WanAttnProcessor, WanTransformerBlock
from torch import nn

from codirector.generator.backends.dit.multi_character import group_video_frames

__all__ = [
    "AudioInjection",
    "AudioProjector",
    "AudioWanTransformerBlock",
    "AudioWindows",
    "WindowGroup",
    "audio_windows",
]


@dataclass(frozen=True)
class WindowGroup:
    """The query frames whose audio windows have one length w, and the audio tokens of each one's window.

    Attributes:
        frames: (n,) long, positions among the query frames (`AudioWindows.frames`) of this group's frames.
        audio_index: (n, w * K) long, latent frame t's window: audio tokens of latent frames max(t - padding, 0) ..
            min(t + padding, F - 1), indices into the F * K audio tokens.
    """

    frames: torch.Tensor
    audio_index: torch.Tensor


@dataclass(frozen=True)
class AudioWindows:
    """The audio window of every query frame, grouped by window length (Kling-Avatar sec. 2.4).

    Attributes:
        grid: (F, Ht, Wt) the whole clip's latent token grid.
        audio_tokens_per_frame: K.
        padding: latent frames of slack on either side.
        frames: (f,) long, the latent frames whose video tokens are the queries: all F of them, or, under context
            parallelism, the consecutive frames this rank holds (`context_parallel.py`).
        groups: one per distinct window length (at most padding + 1 of them).
        order: (f,) long, where query frame i sits among the groups' frames laid end to end.
    """

    grid: tuple[int, int, int]
    audio_tokens_per_frame: int
    padding: int
    frames: torch.Tensor
    groups: tuple[WindowGroup, ...]
    order: torch.Tensor


def audio_windows(
    grid: tuple[int, int, int], audio_tokens_per_frame: int, padding: int, device: Any,
    frames: torch.Tensor | None = None,
) -> AudioWindows:  # fmt: skip
    """Each query frame's window of audio tokens, for `AudioWanTransformerBlock.audio_attention`.

    Video token i (latent frame i // (Ht * Wt)) sees audio token j (latent frame j // K) iff the frames are at most
    `padding` apart; windows are clipped to the clip's [0, F - 1], so its first and last `padding` frames have
    shorter ones, whichever rank holds them.

    Args:
        grid: (F, Ht, Wt) the whole clip's latent token grid.
        audio_tokens_per_frame: K.
        padding: latent frames of slack on either side (>= 0).
        device: where the index tensors live (the model's).
        frames: the latent frames whose tokens are the queries (default all F).

    Example:
        >>> [g.frames.tolist() for g in audio_windows((5, 2, 2), 4, 1, "cpu").groups]  # windows of 2, then 3 frames
        [[0, 4], [1, 2, 3]]
        >>> [g.frames.tolist() for g in audio_windows((5, 2, 2), 4, 1, "cpu", torch.tensor([3, 4])).groups]
        [[1], [0]]
    """
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    num_frames, tokens_per_frame = grid[0], audio_tokens_per_frame
    frames = torch.arange(num_frames) if frames is None else frames.detach().cpu()  # f, latent frame numbers
    starts = (frames - padding).clamp(min=0)  # f
    lengths = (frames + padding).clamp(max=num_frames - 1) - starts + 1  # f
    groups, grouped = [], []
    for length in lengths.unique().tolist():  # at most padding + 1 lengths
        members = (lengths == length).nonzero().squeeze(1)  # n, positions among the query frames
        window_frames = starts[members, None] + torch.arange(length)  # n w
        audio_index = (window_frames[..., None] * tokens_per_frame + torch.arange(tokens_per_frame)).flatten(1)
        groups.append(WindowGroup(members.to(device), audio_index.to(device)))  # n, n (w k)
        grouped.append(members)
    order = torch.cat(grouped).argsort()  # f, inverts the groups' frame order
    return AudioWindows(tuple(grid), tokens_per_frame, padding, frames.to(device), tuple(groups), order.to(device))


@dataclass(frozen=True)
class AudioInjection:
    """What one block's audio cross-attention needs.

    Attributes:
        tokens: (B, N, F * K, D) each character's audio tokens.
        windows: each latent frame's audio window (`audio_windows`).
        character_masks: (B, N, f * Ht * Wt) gates in [0, 1] over the query frames' tokens, or None for no gating
            (one character).
        scale: multiplies the attention's output (inference-time audio boost).
    """

    tokens: torch.Tensor
    windows: AudioWindows
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
        with_audio: bool = True,
    ) -> None:
        super().__init__(dim, ffn_dim, num_heads, qk_norm, cross_attn_norm, eps, added_kv_proj_dim)
        if not with_audio:  # a stock block: no audio weights exist, so none are built (a 14B model saves 4.4B)
            self.norm_audio = self.audio_attn = None
            return
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
        """sum_c mask_c * attn(norm(x), window(audio_c)) * scale: (B, L, D) -> (B, L, D).

        One `audio_attn` call per window length, without a mask: the queries are the S video tokens of one latent
        frame of one character, the keys that frame's w * K window tokens (Kling-Avatar sec. 2.4).
        """
        windows = audio.windows
        batch, num_characters = audio.tokens.shape[:2]
        num_frames, (_, height, width) = windows.frames.shape[0], windows.grid  # this call's query frames
        norm_hidden_states = self.norm_audio(hidden_states.float()).type_as(hidden_states)
        queries = norm_hidden_states.unflatten(1, (num_frames, height * width))  # b f s d
        tokens = audio.tokens.to(hidden_states.dtype)  # b n (f k) d
        gates = None
        if audio.character_masks is not None:
            gates = audio.character_masks.unflatten(2, (num_frames, height * width))[..., None]  # b n f s 1
        outputs = []
        for group in windows.groups:
            num_group_frames = group.frames.shape[0]
            query = queries[:, None, group.frames].expand(-1, num_characters, -1, -1, -1)  # b n g s d
            keys = tokens[:, :, group.audio_index]  # b n g (w k) d
            attended = self.audio_attn(query.flatten(0, 2), keys.flatten(0, 2))  # (b n g) s d
            attended = attended.unflatten(0, (batch, num_characters, num_group_frames))  # b n g s d
            if gates is not None:
                # KlingAvatar 2.0 sec. 3.3: the mask gates each character's audio into its own region.
                attended = attended * gates[:, :, group.frames].to(attended.dtype)
            outputs.append(attended.sum(dim=1))  # b g s d
        output = torch.cat(outputs, dim=1)[:, windows.order]  # b f s d, the groups' frames back in time order
        return output.flatten(1, 2) * audio.scale  # b l d

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
