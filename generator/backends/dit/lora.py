"""LoRAs for the Wan transformer through diffusers' own Wan LoRA loader (`WanLoraLoaderMixin`).

`lora=FILE[:SCALE]` (repeatable) loads each file with `WanLoraLoaderMixin.lora_state_dict`, which reads the formats
the public Wan LoRAs ship in (diffusers' `transformer.blocks...lora_A/B`, Wan's original `diffusion_model.blocks...
lora_down/up` with alphas as LightX2V and ComfyUI publish them, musubi-tuner's `lora_unet_`), widens a text-to-video
LoRA for an image-to-video model as diffusers does, and injects it with PEFT (`load_lora_into_transformer`); the
scales are set with `set_adapters`. Wan2.2's two experts each get every LoRA.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codirector.errors import ConfigError

__all__ = ["LoraSpec", "load_loras", "parse_lora_specs"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoraSpec:
    """One LoRA file and its scale."""

    path: Path
    scale: float = 1.0


def parse_lora_specs(value: str | list[str] | None) -> list[LoraSpec]:
    """`FILE`, `FILE:SCALE`, or a list of them -> LoraSpecs; ConfigError for a missing file or a bad scale."""
    if value is None:
        return []
    specs = []
    for item in [value] if isinstance(value, str) else list(value):
        text = str(item)
        path, colon, tail = text.rpartition(":")
        try:  # FILE:SCALE; a colon followed by something else belongs to the path
            factor, name = (float(tail), path) if colon else (1.0, text)
        except ValueError:
            factor, name = 1.0, text
        file = Path(name).expanduser()
        if not file.is_file():
            raise ConfigError(
                f"backend 'dit' option lora {file}", "is not a file",
                "Give lora=FILE or FILE:SCALE, a local .safetensors file (nothing is downloaded).",
            )  # fmt: skip
        specs.append(LoraSpec(file, factor))
    return specs


def load_loras(transformers: list[Any], specs: list[LoraSpec]) -> list[str]:
    """Inject every LoRA into every transformer (PEFT adapters named lora_0, lora_1...) at its scale.

    Raises:
        ConfigError: PEFT is missing, or a file is not a Wan LoRA this model can take.
    """
    if not specs:
        return []
    try:
        import peft  # noqa: F401
    except ImportError:
        raise ConfigError("backend 'dit' option lora", "needs PEFT, which is not installed",
                          'Install it with: pip install "codirector[dit]".') from None  # fmt: skip
    from diffusers.loaders import WanLoraLoaderMixin

    names = [f"lora_{index}" for index in range(len(specs))]
    for name, spec in zip(names, specs, strict=True):
        try:
            state = WanLoraLoaderMixin.lora_state_dict(str(spec.path))
        except (OSError, ValueError, KeyError) as error:
            raise ConfigError(f"backend 'dit' option lora {spec.path}", f"cannot be read as a Wan LoRA ({error})",
                              "Use a Wan2.1/2.2 LoRA in diffusers, Wan or musubi-tuner format.") from None  # fmt: skip
        for transformer in transformers:
            widened = WanLoraLoaderMixin._maybe_expand_t2v_lora_for_i2v(transformer, dict(state))
            if not all("lora" in key for key in widened):
                raise ConfigError(f"backend 'dit' option lora {spec.path}", "holds keys that are not LoRA weights",
                                  "Use a LoRA file, not a full checkpoint.")  # fmt: skip
            WanLoraLoaderMixin.load_lora_into_transformer(widened, transformer=transformer, adapter_name=name)
        logger.info("dit: LoRA %s at scale %s", spec.path, spec.scale)
    for transformer in transformers:
        transformer.set_adapters(names, weights=[spec.scale for spec in specs])
    return names
