"""Multi-character control: the mask-prediction head and its training step (KlingAvatar 2.0 sec. 3.3).

Deep DiT features organise into coherent regions that align with the characters (sec. 3.3), so a small head on
selected deep blocks regresses one mask per character: the video tokens cross-attend to that character's identity
tokens (its reference crop's latents, patchified without noise by the backbone's own patch embedding) and an MLP
turns the result into a per-token logit. The sigmoid of those logits gates each character's audio injection.
Only the head is trained; the backbone stays frozen.

Shapes: B batch, N characters, L = F * Ht * Wt video tokens on the latent token grid (F latent frames, Ht x Wt
tokens per frame), R identity tokens per character, D the transformer width, C the head width (`identity_dim`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from diffusers.models.normalization import FP32LayerNorm
from diffusers.models.transformers.transformer_wan import WanAttention, WanAttnProcessor
from torch import nn

if TYPE_CHECKING:
    from codirector.generator.backends.dit.model import AudioWanTransformer3DModel

__all__ = [
    "CharacterMaskHead",
    "MaskHeadBatch",
    "group_video_frames",
    "mask_head_loss",
    "mask_head_parameters",
    "masks_from_boxes",
    "masks_to_token_grid",
]


def group_video_frames(frames: torch.Tensor, dim: int, temporal_factor: int = 4) -> torch.Tensor:
    """Group video-rate frames by the latent frame Wan's causal VAE compresses them into.

    Latent frame 0 holds video frame 0 alone; latent frame t > 0 holds video frames
    `temporal_factor * t - (temporal_factor - 1) .. temporal_factor * t` (4t-3..4t for Wan). Frame 0 is repeated
    so that every group has `temporal_factor` members.

    Args:
        frames: a tensor with `temporal_factor * (F - 1) + 1` frames along `dim`.
        dim: the frame dimension (non-negative).
        temporal_factor: the VAE's temporal compression (4 for Wan).

    Returns:
        The tensor with `dim` split into `(F, temporal_factor)`.

    Raises:
        ValueError: the frame count is not `temporal_factor * k + 1`.
    """
    num_frames = frames.shape[dim]
    if num_frames < 1 or (num_frames - 1) % temporal_factor:
        raise ValueError(
            f"frames must have {temporal_factor} * k + 1 frames along dim {dim} (Wan's temporal compression), "
            f"got {num_frames}"
        )
    first = frames.narrow(dim, 0, 1).repeat_interleave(temporal_factor, dim=dim)
    grouped = torch.cat([first, frames.narrow(dim, 1, num_frames - 1)], dim=dim)  # ... (f t) ...
    return grouped.unflatten(dim, (-1, temporal_factor))  # ... f t ...


def masks_to_token_grid(masks: torch.Tensor, grid: tuple[int, int, int], temporal_factor: int = 4) -> torch.Tensor:
    """Downsample video-rate character masks to the latent token grid (area pooling, soft targets).

    KlingAvatar 2.0 sec. 3.3: "GT masks are downsampled to match the spatial and temporal resolution of the
    intermediate latent features". Time: the mean over each latent frame's group of video frames; space: area
    (average) pooling to the token grid. Values stay soft in [0, 1].

    Args:
        masks: (B, N, num_video_frames, H, W) in [0, 1], `num_video_frames = temporal_factor * (F - 1) + 1`.
        grid: (F, Ht, Wt) the latent token grid.
        temporal_factor: the VAE's temporal compression.

    Returns:
        (B, N, F, Ht, Wt) soft masks.
    """
    if masks.ndim != 5:
        raise ValueError(f"masks must be (B, N, num_video_frames, H, W), got shape {tuple(masks.shape)}")
    per_latent = group_video_frames(masks.float(), dim=2, temporal_factor=temporal_factor).mean(dim=3)  # b n f h w
    if per_latent.shape[2] != grid[0]:
        raise ValueError(
            f"masks cover {per_latent.shape[2]} latent frames ({masks.shape[2]} video frames), the grid has {grid[0]}"
        )
    batch, num_characters = per_latent.shape[:2]
    pooled = F.adaptive_avg_pool2d(per_latent.flatten(0, 2), grid[1:])  # (b n f) ht wt
    return pooled.unflatten(0, (batch, num_characters, grid[0]))


def masks_from_boxes(boxes_xyxy_norm: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """Hard character masks from per-character boxes, to pass as `character_masks` when boxes are known.

    Args:
        boxes_xyxy_norm: (B, N, 4) boxes (x0, y0, x1, y1) in [0, 1] of the frame, constant over the clip.
        grid: (F, Ht, Wt) the latent token grid.

    Returns:
        (B, N, F, Ht, Wt) masks: 1 for tokens whose centre lies inside the character's box, else 0.
    """
    if boxes_xyxy_norm.ndim != 3 or boxes_xyxy_norm.shape[-1] != 4:
        raise ValueError(f"boxes_xyxy_norm must be (B, N, 4), got shape {tuple(boxes_xyxy_norm.shape)}")
    num_frames, height, width = grid
    boxes = boxes_xyxy_norm.float()
    ys = (torch.arange(height, device=boxes.device) + 0.5) / height
    xs = (torch.arange(width, device=boxes.device) + 0.5) / width
    inside_y = (ys >= boxes[..., 1:2]) & (ys <= boxes[..., 3:4])  # b n ht
    inside_x = (xs >= boxes[..., 0:1]) & (xs <= boxes[..., 2:3])  # b n wt
    inside = inside_y[..., :, None] & inside_x[..., None, :]  # b n ht wt
    return inside.float()[:, :, None].expand(-1, -1, num_frames, -1, -1).contiguous()


class CharacterMaskHead(nn.Module):
    """One mask-prediction head attached after a deep block (KlingAvatar 2.0 sec. 3.3, Fig. 3a).

    Video tokens (queries) cross-attend to one character's identity tokens; an MLP on the video feature, the
    attended identity feature and their product regresses a logit per video token. Characters share the head.

    Args:
        dim: transformer width D.
        identity_dim: head width C.
        num_heads: attention heads in the head (C must divide by it).
        eps: norm epsilon.
    """

    def __init__(self, dim: int, identity_dim: int, num_heads: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm_video = FP32LayerNorm(dim, eps, elementwise_affine=False)
        self.norm_identity = FP32LayerNorm(dim, eps, elementwise_affine=False)
        self.video_proj = nn.Linear(dim, identity_dim)
        self.identity_proj = nn.Linear(dim, identity_dim)
        head_dim = identity_dim // num_heads
        self.attn = WanAttention(
            dim=identity_dim,
            heads=num_heads,
            dim_head=head_dim,
            eps=eps,
            cross_attention_dim_head=head_dim,
            processor=WanAttnProcessor(),
        )
        self.mlp = nn.Sequential(
            nn.Linear(3 * identity_dim, identity_dim), nn.GELU(approximate="tanh"), nn.Linear(identity_dim, 1)
        )

    def forward(self, video_tokens: torch.Tensor, identity_tokens: torch.Tensor) -> torch.Tensor:
        """Mask logits per character.

        Args:
            video_tokens: (B, L, D) the block's output.
            identity_tokens: (B, N, R, D) each character's reference tokens.

        Returns:
            (B, N, L) logits.
        """
        batch, num_characters = identity_tokens.shape[:2]
        video = self.video_proj(self.norm_video(video_tokens))  # b l c
        identity = self.identity_proj(self.norm_identity(identity_tokens))  # b n r c
        video = video.repeat_interleave(num_characters, dim=0)  # (b n) l c
        attended = self.attn(video, identity.flatten(0, 1))  # (b n) l c
        logits = self.mlp(torch.cat([video, attended, video * attended], dim=-1)).squeeze(-1)  # (b n) l
        return logits.unflatten(0, (batch, num_characters))


@dataclass(frozen=True)
class MaskHeadBatch:
    """One training batch for the mask head.

    Attributes:
        hidden_states: (B, in_channels, F, h, w) the model input (noisy latents, plus the conditioning channels
            for image-to-video models).
        timestep: (B,) diffusion timesteps.
        encoder_hidden_states: (B, S, text_dim) text embeddings.
        reference_latents: (B, N, C, Fr, Hr, Wr) each character's identity crop latents (clean).
        character_masks: (B, N, num_video_frames, H, W) ground-truth masks in [0, 1] at video rate, any H x W.
        audio_features: (B, N, num_video_frames, audio_dim) or None.
        encoder_hidden_states_image: image embeddings for models with an image embedder, or None.
    """

    hidden_states: torch.Tensor
    timestep: torch.Tensor
    encoder_hidden_states: torch.Tensor
    reference_latents: torch.Tensor
    character_masks: torch.Tensor
    audio_features: torch.Tensor | None = None
    encoder_hidden_states_image: torch.Tensor | None = None


def mask_head_parameters(model: AudioWanTransformer3DModel) -> list[nn.Parameter]:
    """Freeze everything but the mask heads and return the heads' parameters (for the optimizer).

    KlingAvatar 2.0 sec. 3.3: "the DiT video backbone is frozen and only the mask-prediction modules are optimized".

    Raises:
        ValueError: the model has no mask head (`mask_layers` is empty).
    """
    if len(model.mask_heads) == 0:
        raise ValueError(f"model has no mask head: mask_layers must name blocks, got {model.config.mask_layers}")
    model.requires_grad_(False)
    model.mask_heads.requires_grad_(True)
    return list(model.mask_heads.parameters())


def mask_head_loss(model: AudioWanTransformer3DModel, batch: MaskHeadBatch) -> torch.Tensor:
    """Binary cross-entropy between predicted mask logits and ground-truth masks on the token grid.

    Runs the blocks only up to the last mask layer. Targets are soft (area-pooled, see `masks_to_token_grid`).

    Returns:
        The scalar mean loss over batch, characters and tokens.
    """
    logits = model.predict_character_mask_logits(
        batch.hidden_states,
        batch.timestep,
        batch.encoder_hidden_states,
        batch.reference_latents,
        audio_features=batch.audio_features,
        encoder_hidden_states_image=batch.encoder_hidden_states_image,
    )  # b n f ht wt
    targets = masks_to_token_grid(
        batch.character_masks, tuple(logits.shape[2:]), model.config.vae_scale_factor_temporal
    ).to(logits.device)
    if targets.shape[:2] != logits.shape[:2]:
        raise ValueError(
            f"character_masks must have (B, N) = {tuple(logits.shape[:2])}, got {tuple(batch.character_masks.shape)}"
        )
    return F.binary_cross_entropy_with_logits(logits.float(), targets)
