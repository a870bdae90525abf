"""The negative frame: the reference image corrupted the way identity drift looks (Kling-Avatar sec. 2.4).

Kling-Avatar's negative-frame classifier-free guidance conditions one branch of the denoiser on a degraded copy of
the reference image and guides away from it. Their statistics show that identity drift "typically manifests as
texture distortions, blurring, exaggerated contrast and saturation, and color shifts", so the reference is corrupted
along exactly those four axes, in that order:

1. texture distortion: a smooth random displacement field (an elastic warp) then JPEG-like 8x8 blockiness;
2. Gaussian blur;
3. exaggerated contrast and saturation;
4. a colour shift: a zero-mean per-channel offset, so the hue moves while the brightness stays.

Every parameter is drawn from ``numpy.random.default_rng(seed)`` in a fixed order, independently of the image, so a
seed names one degradation (`sample_degradation` returns it for the run manifest). Sizes scale with the image's
shorter side, so a degradation looks alike at every resolution.

Example:
    >>> import numpy as np
    >>> reference = np.full((64, 48, 3), 128, np.uint8)
    >>> degrade_reference(reference, seed=0).shape
    (64, 48, 3)
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

__all__ = ["Degradation", "degrade_reference", "negative_frame_tensor", "sample_degradation"]

logger = logging.getLogger(__name__)

_WARP_GRID = 6
"""Control points per side of the displacement field; few points make a smooth, face-scale distortion."""

# Luma weights (ITU-R BT.601) for the saturation step: colours move away from their own grey.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class Degradation:
    """One draw of the degradation parameters; ``strength`` already applied.

    Attributes:
        warp_field: (2, _WARP_GRID, _WARP_GRID) displacement control points, in units of the shorter side.
        jpeg_quality: JPEG quality of the blockiness step (100 leaves it out).
        blur_sigma: Gaussian blur sigma, as a fraction of the shorter side.
        contrast: gain around the mean intensity (1.0 leaves it out).
        saturation: gain of each colour's distance from its grey (1.0 leaves it out).
        color_offset: (3,) zero-mean RGB offset in 0..255 units.
    """

    warp_field: np.ndarray
    jpeg_quality: int
    blur_sigma: float
    contrast: float
    saturation: float
    color_offset: np.ndarray


def sample_degradation(seed: int, strength: float = 1.0) -> Degradation:
    """Draws the parameters of one degradation; the same seed and strength always give the same draw.

    Args:
        seed: seed of ``numpy.random.default_rng``.
        strength: 0 leaves the image unchanged, 1 is the default drift, larger exaggerates it further.
    """
    if not (math.isfinite(strength) and strength >= 0):
        raise ValueError(f"strength must be a finite number >= 0, got {strength}")
    rng = np.random.default_rng(seed)
    # Draw everything first, in a fixed order, so that each parameter depends on the seed alone.
    warp_amplitude = rng.uniform(0.01, 0.02)
    warp_field = rng.standard_normal((2, _WARP_GRID, _WARP_GRID))
    jpeg_quality = rng.uniform(8.0, 25.0)
    blur_sigma = rng.uniform(0.006, 0.014)
    contrast = rng.uniform(0.3, 0.6)
    saturation = rng.uniform(0.4, 0.9)
    hue_direction = rng.standard_normal(3)
    color_magnitude = rng.uniform(15.0, 35.0)

    hue_direction -= hue_direction.mean()
    hue_direction /= max(float(np.linalg.norm(hue_direction)), 1e-6)
    return Degradation(
        warp_field=(warp_field * warp_amplitude * strength).astype(np.float32),
        jpeg_quality=int(np.clip(round(100 - strength * (100 - jpeg_quality)), 1, 100)),
        blur_sigma=float(blur_sigma * strength),
        contrast=float(1 + contrast * strength),
        saturation=float(1 + saturation * strength),
        color_offset=(hue_direction * color_magnitude * strength).astype(np.float32),
    )


def _warp(image: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Elastic warp: the control-point field upsampled smoothly to (H, W) and applied by remapping."""
    height, width = image.shape[:2]
    scale = min(height, width)
    displacement = [
        cv2.resize(channel, (width, height), interpolation=cv2.INTER_CUBIC) * scale for channel in field
    ]  # 2 x (H, W) pixel offsets along x and y
    grid_y, grid_x = np.mgrid[0:height, 0:width].astype(np.float32)
    return cv2.remap(
        image,
        grid_x + displacement[0],
        grid_y + displacement[1],
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT_101,
    )


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip: 8x8 blockiness and ringing, the compression look of degraded textures."""
    if quality >= 100:
        return image
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"OpenCV could not JPEG-encode an image of shape {image.shape}")
    return cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def degrade_reference(image: np.ndarray, seed: int, strength: float = 1.0) -> np.ndarray:
    """Corrupts a reference image the way identity drift looks, to condition the negative-frame branch.

    Args:
        image: (H, W, 3) RGB uint8 reference.
        seed: picks the degradation; the same seed gives the same output.
        strength: 0 returns a copy of the image, 1 the default drift, larger exaggerates it.

    Returns:
        (H, W, 3) RGB uint8 degraded image.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) RGB uint8, got shape {image.shape} and dtype {image.dtype}")
    params = sample_degradation(seed, strength)
    if strength == 0:
        return image.copy()
    logger.debug("degrading a %sx%s reference with %s", image.shape[1], image.shape[0], params)
    scale = min(image.shape[:2])

    # 1. Texture distortion: elastic warp, then compression blockiness.
    out = _jpeg(_warp(np.ascontiguousarray(image), params.warp_field), params.jpeg_quality)
    # 2. Blur.
    sigma_px = params.blur_sigma * scale
    if sigma_px >= 0.1:
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=sigma_px, sigmaY=sigma_px, borderType=cv2.BORDER_REFLECT_101)
    # 3. Exaggerated contrast (around the mean intensity) and saturation (away from each pixel's grey).
    pixels = out.astype(np.float32)
    mean = float(pixels.mean())
    pixels = mean + (pixels - mean) * params.contrast
    grey = (pixels @ _LUMA)[..., None]
    pixels = grey + (pixels - grey) * params.saturation
    # 4. Colour shift.
    pixels = pixels + params.color_offset
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def negative_frame_tensor(
    image: np.ndarray,
    seed: int,
    strength: float = 1.0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The degraded reference as a (3, H, W) tensor in [-1, 1], the range Wan's VAE encodes.

    Args:
        image: (H, W, 3) RGB uint8 reference.
        seed: picks the degradation.
        strength: see `degrade_reference`.
        device: device of the returned tensor.
        dtype: dtype of the returned tensor.

    Returns:
        (3, H, W) tensor with values in [-1, 1].
    """
    degraded = torch.from_numpy(degrade_reference(image, seed, strength)).to(device=device, dtype=torch.float32)
    return (degraded.permute(2, 0, 1) / 127.5 - 1.0).to(dtype)
