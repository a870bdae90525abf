"""Sampling fit for the weights: steps, guidance, sigmas and shift per cascade stage, from a preset and options.

The director's plan carries few-step settings (KlingAvatar 2.0 sec. 3.4 samples distilled weights in a few
steps). Stock Wan weights are not distilled: they need tens of steps with classifier-free guidance, and the public
few-step LoRAs (LightX2V's step-distilled Wan2.1 I2V LoRA) need their own four sigmas, shift 5 and no guidance.
`resolve_sampling` turns a preset plus the user's overrides into the stage settings the backend renders with
(`DitBackend.stage_settings`), and the sigma schedule and shift the pipeline samples with.

Presets:
- "plan": the plan's own settings (what the tiny test models use).
- "base": non-distilled Wan (Wan's own sampler runs 40 steps with guidance 5): 40 steps for the blueprint and
  sub-clips, 20 for keyframes, transitions and super-resolution (whose image/video-to-video strength runs a share
  of them), the plan's guidance scales; the checkpoint's scheduler and shift.
- "lightx2v-4step": LightX2V's step-distilled LoRA (lightx2v/Wan2.1-I2V-14B-480P-StepDistill-CfgDistill-Lightx2v):
  4 steps at the base sigmas 1.0, 0.75, 0.5, 0.25 with shift 5 (its denoising_step_list 1000, 750, 500, 250), and
  guidance off (CFG is distilled in), so one model call per step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from codirector.errors import ConfigError
from codirector.schemas.render_plan import DiffusionSettings, StageSettings

__all__ = ["PRESETS", "STAGES", "Sampling", "resolve_sampling", "strength_steps"]

STAGES = ("blueprint", "keyframes", "subclips", "transitions", "super_resolution")


@dataclass(frozen=True)
class Sampling:
    """A preset: steps per stage (None keeps the plan's), guidance overrides, a base sigma list and a shift."""

    steps: Mapping[str, int] | None = None
    guidance: Mapping[str, float] | None = None  # diffusers' guidance_scale; also zeroes the extra branches if set
    sigmas: tuple[float, ...] | None = None
    shift: float | None = None


_BASE_STEPS = {"blueprint": 40, "keyframes": 20, "subclips": 40, "transitions": 20, "super_resolution": 20}
PRESETS: dict[str, Sampling] = {
    "plan": Sampling(),
    "base": Sampling(steps=_BASE_STEPS),
    "lightx2v-4step": Sampling(
        steps=dict.fromkeys(STAGES, 4), guidance=dict.fromkeys(STAGES, 1.0), sigmas=(1.0, 0.75, 0.5, 0.25), shift=5.0
    ),
}


def _per_stage(value: Any, option: str, kind: type) -> dict[str, Any] | None:
    """An option given as one value for every stage, or as {stage: value}."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(STAGES))
        if unknown:
            raise ConfigError(f"backend 'dit' option {option}", f"names unknown stages {unknown}",
                              f"Use stages among {', '.join(STAGES)}.")  # fmt: skip
        return {stage: kind(v) for stage, v in value.items()}
    return dict.fromkeys(STAGES, kind(value))


def resolve_sampling(
    preset: str, *, steps: Any = None, guidance_scale: Any = None, sigmas: Sequence[float] | None = None,
    shift: float | None = None,
) -> Sampling:  # fmt: skip
    """The preset with the user's overrides on top; ConfigError for an unknown preset or a bad value."""
    if preset not in PRESETS:
        raise ConfigError("backend 'dit' option preset", f"{preset!r} is not one of {', '.join(PRESETS)}",
                          "Use base for stock Wan weights, lightx2v-4step with that LoRA, or plan.")  # fmt: skip
    chosen = PRESETS[preset]
    step_overrides = _per_stage(steps, "steps", int) or {}
    if any(value < 1 for value in step_overrides.values()):
        raise ConfigError("backend 'dit' option steps", f"must be >= 1, got {step_overrides}", "Use e.g. steps=30.")
    guidance = _per_stage(guidance_scale, "guidance_scale", float) or {}
    if shift is not None and not (math.isfinite(shift) and shift > 0):
        raise ConfigError("backend 'dit' option shift", f"must be a positive number, got {shift}", "Use e.g. 5.")
    return Sampling(
        steps={**(chosen.steps or {}), **step_overrides} or None,
        guidance={**(chosen.guidance or {}), **guidance} or None,
        sigmas=tuple(sigmas) if sigmas else chosen.sigmas,
        shift=shift if shift is not None else chosen.shift,
    )


def apply_sampling(planned: StageSettings, sampling: Sampling) -> StageSettings:
    """The plan's stage settings with the sampling's steps and guidance (seeds and sizes kept)."""
    changes: dict[str, DiffusionSettings] = {}
    for stage in STAGES:
        settings: DiffusionSettings = getattr(planned, stage)
        update: dict[str, Any] = {}
        if sampling.sigmas:
            update["num_inference_steps"] = len(sampling.sigmas)
        elif sampling.steps and stage in sampling.steps:
            update["num_inference_steps"] = sampling.steps[stage]
        if sampling.guidance and stage in sampling.guidance:
            update["guidance_scale"] = sampling.guidance[stage]
            if sampling.guidance[stage] <= 1.0:  # guidance distilled in: no extra branch at all
                update["audio_guidance_scale"] = 0.0
                update["negative_frame_guidance_scale"] = 0.0
        if update:
            changes[stage] = settings.model_copy(update=update)
    return planned.model_copy(update=changes)


def strength_steps(num_inference_steps: int, strength: float, minimum: int = 2) -> tuple[int, int]:
    """(steps of the whole schedule, index of the first step run) for image/video-to-video at `strength`.

    As diffusers' img2img pipelines do, the last `round(steps * strength)` steps of a `steps`-step schedule run; the
    schedule is lengthened until at least `minimum` of them do, so a low strength never degenerates to one step.
    """
    if not 0 < strength <= 1:
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    total = max(num_inference_steps, minimum)
    while round(total * strength) < minimum:
        total += 1
    return total, total - round(total * strength)
