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

__all__ = [
    "SPATIAL",
    "TEMPORAL",
    "LatentGrid",
    "clip_length",
    "condition_channels",
    "frames_to_video",
    "video_to_frames",
]

TEMPORAL = 4  # video frames per latent frame (after the first)
SPATIAL = 8  # pixels per latent pixel, each side


def clip_length(num_frames: int) -> int:
    """The smallest Wan-friendly length (4k + 1) that holds `num_frames` frames."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    return TEMPORAL * -(-(num_frames - 1) // TEMPORAL) + 1


@dataclass(frozen=True)
class LatentGrid:
    """Sizes of a clip in pixels and in latents."""

    num_frames: int  # 4k + 1
    height: int  # multiple of 16 (8 for the VAE x 2 for the transformer's patch)
    width: int

    def __post_init__(self) -> None:
        if (self.num_frames - 1) % TEMPORAL:
            raise ValueError(f"num_frames must be 4k + 1 for the Wan VAE, got {self.num_frames}")
        if self.height % (2 * SPATIAL) or self.width % (2 * SPATIAL):
            raise ValueError(f"height and width must be multiples of 16, got {self.height}x{self.width}")

    @property
    def latent_frames(self) -> int:
        return (self.num_frames - 1) // TEMPORAL + 1

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(latent frames, latent height, latent width)."""
        return self.latent_frames, self.height // SPATIAL, self.width // SPATIAL


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
    """The 20 conditioning channels: mask (4) and condition-video latents (16), shape (1, 20, F, h, w).

    Args:
        grid: the clip's sizes.
        given: frame index -> that frame as a tensor (1, 3, height, width) in [-1, 1] (first, last, or both).
        encode: a callable from a video tensor (1, 3, num_frames, height, width) to normalised latents
            (1, 16, latent frames, h, w) (the pipeline's VAE encoder).
    """
    condition = torch.zeros(1, 3, grid.num_frames, grid.height, grid.width)
    mask = torch.zeros(1, 1, grid.num_frames, *grid.latent_shape[1:])
    for index, frame in given.items():
        condition[:, :, index] = frame
        mask[:, :, index] = 1.0
    latents = encode(condition)  # type: ignore[operator]
    # the first frame stands alone in latent frame 0: repeat its mask to fill the 4 slots, then fold time by 4
    mask = torch.cat([mask[:, :, :1].repeat(1, 1, TEMPORAL, 1, 1), mask[:, :, 1:]], dim=2)
    mask = mask.view(1, -1, TEMPORAL, *grid.latent_shape[1:]).transpose(1, 2)  # 1 4 F h w
    return torch.cat([mask.to(latents.dtype), latents], dim=1)
