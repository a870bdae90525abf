"""Few-step flow-matching schedules and the multi-branch classifier-free guidance of the `dit` backend.

KlingAvatar 2.0 (sec. 3.4) accelerates inference with trajectory-preserving distillation (PCM, DCM) and
"customized time schedulers" chosen from how the base model performs at each timestep: a distilled model is run at
the few sigmas it was distilled on. `sigma_schedule` builds or validates such a schedule and `make_scheduler` turns
it into diffusers' `FlowMatchEulerDiscreteScheduler`.

Sigma conventions. Every list returned here holds the *effective* sigmas, the noise levels the model actually sees
(``x_t = (1 - sigma) * x_0 + sigma * noise``), one per step, the terminal 0 left out. Flow-matching video models
(Wan) shift a base grid ``s`` towards the noise end with ``shift * s / (1 + (shift - 1) * s)``; a custom list is a
base grid in diffusers' convention (``set_timesteps(sigmas=...)``, as distilled model cards publish it, e.g.
``[1.0, 0.75, 0.5, 0.25]`` with shift 5) and gets the same shift; pass ``shift=1.0`` to use it verbatim.

Example:
    >>> sigmas = sigma_schedule(4, shift=5.0, kind=[1.0, 0.75, 0.5, 0.25])
    >>> [round(s, 4) for s in sigmas]
    [1.0, 0.9375, 0.8333, 0.625]
    >>> len(make_scheduler(sigmas, shift=5.0).timesteps)
    4
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, Literal

import torch

if TYPE_CHECKING:
    from diffusers import FlowMatchEulerDiscreteScheduler

__all__ = ["combine_guidance", "make_scheduler", "required_branches", "sigma_schedule"]

GuidanceBranch = Literal["uncond", "text", "audio", "negative_frame"]


def _check_sigmas(sigmas: Sequence[float], name: str) -> list[float]:
    """Validates a sigma list: non-empty, every value in (0, 1], strictly decreasing."""
    values = [float(sigma) for sigma in sigmas]
    if not values:
        raise ValueError(f"{name} must hold at least one sigma, got an empty list")
    outside = [sigma for sigma in values if not (0.0 < sigma <= 1.0)]
    if outside:
        raise ValueError(f"{name} must lie in (0, 1], got {outside} in {values}")
    if any(later >= earlier for earlier, later in pairwise(values)):
        raise ValueError(f"{name} must be strictly decreasing, got {values}")
    return values


def _check_shift(shift: float) -> float:
    if not (math.isfinite(shift) and shift > 0):
        raise ValueError(f"shift must be a finite number > 0, got {shift}")
    return float(shift)


def _shift(sigma: float, shift: float) -> float:
    """Wan's timestep shift: moves a base sigma towards the noise end (shift > 1); 1 stays 1."""
    return shift * sigma / (1 + (shift - 1) * sigma)


def _unshift(sigma: float, shift: float) -> float:
    """The base sigma that `_shift` maps to ``sigma``."""
    return sigma / (shift - (shift - 1) * sigma)


def sigma_schedule(
    num_inference_steps: int,
    shift: float = 5.0,
    kind: Literal["flow", "linear"] | Sequence[float] = "flow",
) -> list[float]:
    """The effective sigmas of a few-step (or many-step) flow-matching sampler, one per step.

    Args:
        num_inference_steps: number of denoising steps, >= 1.
        shift: Wan's timestep shift (5.0 for Wan 2.1 at 480p); > 0, 1.0 is no shift.
        kind: "flow": the even base grid ``1, (N-1)/N, ..., 1/N`` shifted by ``shift``; "linear": the same grid
            unshifted (``shift`` ignored); or a custom base grid of ``num_inference_steps`` sigmas, strictly
            decreasing in (0, 1], shifted by ``shift`` (a first sigma below 1.0 starts from a partly noised input,
            as a refinement stage does).

    Returns:
        ``num_inference_steps`` effective sigmas, strictly decreasing in (0, 1]; for "flow" and "linear" the first
        is 1.0 (pure noise).

    Raises:
        ValueError: a bad step count, shift, kind or custom list, naming the value.
    """
    if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be an int >= 1, got {num_inference_steps!r}")
    shift = _check_shift(shift)
    grid = [1.0 - step / num_inference_steps for step in range(num_inference_steps)]
    if isinstance(kind, str):
        if kind == "linear":
            return grid
        if kind != "flow":
            raise ValueError(f"kind must be 'flow', 'linear' or a list of sigmas, got {kind!r}")
        return [_shift(sigma, shift) for sigma in grid]
    base = _check_sigmas(kind, "kind (custom sigmas)")
    if len(base) != num_inference_steps:
        raise ValueError(
            f"kind (custom sigmas) must hold num_inference_steps={num_inference_steps} sigmas, got {len(base)}: {base}"
        )
    return _check_sigmas([_shift(sigma, shift) for sigma in base], "shifted sigmas")


def make_scheduler(sigmas: Sequence[float], shift: float = 5.0) -> FlowMatchEulerDiscreteScheduler:
    """A diffusers Euler flow-matching scheduler that visits exactly ``sigmas``, then 0.

    diffusers applies its ``shift`` to the sigmas given to ``set_timesteps``; the effective ``sigmas`` are
    unshifted first, so that ``scheduler.sigmas[:-1]`` equals ``sigmas`` (to float32 precision) and the
    scheduler's config still records the model's shift.

    Args:
        sigmas: effective sigmas from `sigma_schedule`, strictly decreasing in (0, 1].
        shift: the shift the scheduler's config records, > 0.

    Returns:
        A ``FlowMatchEulerDiscreteScheduler`` with ``len(sigmas)`` timesteps set.
    """
    from diffusers import FlowMatchEulerDiscreteScheduler

    values = _check_sigmas(sigmas, "sigmas")
    shift = _check_shift(shift)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=shift)
    scheduler.set_timesteps(sigmas=[_unshift(sigma, shift) for sigma in values])
    return scheduler


def required_branches(
    guidance_scale: float, audio_guidance_scale: float, negative_frame_guidance_scale: float
) -> frozenset[GuidanceBranch]:
    """The denoiser branches that `combine_guidance` needs for these scales; the others need no forward pass."""
    branches: set[GuidanceBranch] = {"audio"}
    if guidance_scale != 0:
        branches.add("uncond")
    if audio_guidance_scale != 0:
        branches.add("text")
    if negative_frame_guidance_scale != 0:
        branches.add("negative_frame")
    return frozenset(branches)


def combine_guidance(
    uncond: torch.Tensor | None,
    text: torch.Tensor | None,
    audio: torch.Tensor,
    negative_frame: torch.Tensor | None,
    *,
    guidance_scale: float,
    audio_guidance_scale: float,
    negative_frame_guidance_scale: float,
) -> torch.Tensor:
    """Multi-branch classifier-free guidance: one term per condition, each against the full prediction.

    Each branch is the fully conditioned prediction with exactly one condition taken away:

    - ``audio``: text, audio and the clean reference, the fully conditioned prediction;
    - ``uncond``: the text prompt replaced by the negative (or empty) prompt; audio and reference kept;
    - ``text``: the audio taken away; text and reference kept;
    - ``negative_frame``: the clean reference replaced by the degraded one (`degrade_reference`, Kling-Avatar
      sec. 2.4); text and audio kept.

    The guided prediction adds one push per condition, away from the branch that lacks it::

        pred = audio
             + s_t * (audio - uncond)           # towards the prompt
             + s_a * (audio - text)             # towards the speech (lip sync)
             + s_n * (audio - negative_frame)   # away from identity drift

    with ``s_t = guidance_scale``, ``s_a = audio_guidance_scale``, ``s_n = negative_frame_guidance_scale``. This is
    compositional CFG: each term estimates one condition's score, so the terms add independently. A scale of 0 drops
    its term and its branch may be None (`required_branches` lists the needed ones); all scales 0 give the
    conditioned prediction, one forward pass. With one condition, ``audio + s (audio - uncond)`` equals diffusers'
    ``uncond + g (audio - uncond)`` for ``g = 1 + s``: a diffusers-style scale ``g`` (1 means off) is ``s = g - 1``.

    Args:
        uncond: (B, C, F, H, W) prediction without the prompt, or None when ``guidance_scale`` is 0.
        text: prediction without audio, or None when ``audio_guidance_scale`` is 0.
        audio: fully conditioned prediction.
        negative_frame: prediction with the degraded reference, or None when ``negative_frame_guidance_scale`` is 0.
        guidance_scale: s_t, finite and >= 0.
        audio_guidance_scale: s_a, finite and >= 0.
        negative_frame_guidance_scale: s_n, finite and >= 0.

    Returns:
        The guided prediction, shape and dtype of ``audio``.

    Raises:
        ValueError: a negative or non-finite scale, a branch a non-zero scale needs is None, or mismatched shapes.

    Example:
        >>> full, no_text = torch.ones(1), torch.zeros(1)
        >>> combine_guidance(no_text, None, full, None, guidance_scale=4.0, audio_guidance_scale=0.0,
        ...                  negative_frame_guidance_scale=0.0)
        tensor([5.])
    """
    terms = {
        "uncond": ("guidance_scale", guidance_scale, uncond),
        "text": ("audio_guidance_scale", audio_guidance_scale, text),
        "negative_frame": ("negative_frame_guidance_scale", negative_frame_guidance_scale, negative_frame),
    }
    # Accumulate in float32 so that half-precision predictions lose nothing to the differences.
    pred = audio.float()
    for branch, (name, scale, prediction) in terms.items():
        if not (math.isfinite(scale) and scale >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {scale}")
        if scale == 0:
            continue
        if prediction is None:
            raise ValueError(f"{branch} must be a tensor when {name} is {scale} (not 0), got None")
        if prediction.shape != audio.shape:
            raise ValueError(
                f"{branch} must have the shape of audio {tuple(audio.shape)}, got {tuple(prediction.shape)}"
            )
        pred = pred + scale * (audio.float() - prediction.float())
    return pred.to(audio.dtype)
