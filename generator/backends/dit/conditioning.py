"""Latent-space conditioning for the dit backend: the Wan VAE's frame grid and the first-last-frame channel layout.

Wan's VAE compresses 4 frames into one latent frame (the first frame alone) and 8x8 pixels into one latent pixel,
so a clip has `num_frames = 4k + 1`. Image-to-video and first-last-frame models take 36 input channels: the 16
noisy latents, then 4 mask channels (which of the 4 frames behind each latent frame are given), then the 16
latents of a "condition video" that holds the given frames and zeros elsewhere (diffusers'
WanImageToVideoPipeline layout; Kling-Avatar sec. 2.2 first-last-frame sub-clips).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["LatentGrid", "clip_length", "condition_channels", "frames_to_video", "video_to_frames"]


def clip_length(num_frames: int, temporal_factor: int = 4) -> int:
    """The smallest Wan-friendly length (`temporal_factor * k + 1`) that holds `num_frames` frames."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    return temporal_factor * -(-(num_frames - 1) // temporal_factor) + 1


@dataclass(frozen=True)
class LatentGrid:
    """Sizes of a clip in pixels and in latents, with the factors of the loaded VAE and transformer.

    Attributes:
        num_frames: `temporal_factor * k + 1`.
        height, width: multiples of `spatial_factor * patch` (16 for Wan: 8 for the VAE x 2 for the patch).
        temporal_factor: video frames per latent frame (the VAE's `scale_factor_temporal`, 4 for Wan).
        spatial_factor: pixels per latent pixel (the VAE's `scale_factor_spatial`, 8).
        patch: latent pixels per token side (the transformer's `patch_size[1]`, 2).
    """

    num_frames: int
    height: int
    width: int
    temporal_factor: int = 4
    spatial_factor: int = 8
    patch: int = 2

    def __post_init__(self) -> None:
        if self.num_frames < 1 or (self.num_frames - 1) % self.temporal_factor:
            raise ValueError(f"num_frames must be {self.temporal_factor}k + 1 for the VAE, got {self.num_frames}")
        multiple = self.spatial_factor * self.patch
        if self.height % multiple or self.width % multiple or self.height < multiple or self.width < multiple:
            raise ValueError(f"height and width must be multiples of {multiple}, got {self.height}x{self.width}")

    @property
    def latent_frames(self) -> int:
        return (self.num_frames - 1) // self.temporal_factor + 1

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(latent frames, latent height, latent width)."""
        return self.latent_frames, self.height // self.spatial_factor, self.width // self.spatial_factor


def frames_to_video(frames: list[np.ndarray], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """RGB uint8 frames (height, width, 3) -> a video tensor (1, 3, num_frames, height, width) in [-1, 1]."""
    stacked = torch.from_numpy(np.stack(frames)).to(dtype)  # f h w c
    return (stacked.permute(3, 0, 1, 2).unsqueeze(0) / 127.5) - 1.0


def video_to_frames(video: torch.Tensor) -> list[np.ndarray]:
    """A video tensor (1, 3, num_frames, height, width) in [-1, 1] -> RGB uint8 frames."""
    pixels = ((video[0].float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)  # c f h w
    return [frame.numpy() for frame in pixels.permute(1, 2, 3, 0)]


def condition_channels(
    grid: LatentGrid, given: dict[int, torch.Tensor], encode: torch.nn.Module | object
) -> torch.Tensor:
    """The conditioning channels: mask (temporal_factor) and condition-video latents (z_dim), (1, 4 + z, F, h, w).

    Mirrors `WanImageToVideoPipeline.prepare_latents` (diffusers 0.42), generalised from "first" and "first and
    last" to any given frames.

    Args:
        grid: the clip's sizes.
        given: frame index -> that frame as a tensor (1, 3, height, width) in [-1, 1] (first, last, or both).
        encode: a callable from a video tensor (1, 3, num_frames, height, width) to normalised latents
            (1, z_dim, latent frames, h, w) (the pipeline's VAE encoder).
    """
    factor = grid.temporal_factor
    condition = torch.zeros(1, 3, grid.num_frames, grid.height, grid.width)
    mask = torch.zeros(1, 1, grid.num_frames, *grid.latent_shape[1:])
    for index, frame in given.items():
        condition[:, :, index] = frame
        mask[:, :, index] = 1.0
    latents = encode(condition)  # type: ignore[operator]
    # the first frame stands alone in latent frame 0: repeat its mask to fill the slots, then fold time by the factor
    mask = torch.cat([mask[:, :, :1].repeat(1, 1, factor, 1, 1), mask[:, :, 1:]], dim=2)
    mask = mask.view(1, -1, factor, *grid.latent_shape[1:]).transpose(1, 2)  # 1 factor F h w
    return torch.cat([mask.to(latents.dtype), latents], dim=1)
