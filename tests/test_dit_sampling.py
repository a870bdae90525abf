"""Sampling fit for the weights (presets, steps, LoRAs, strength) and continuity (windows that continue from each
other, super-resolution with audio and anchors), on tiny models of the published structure."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from helpers import require_modules

require_modules("torch", "diffusers", "transformers", "ftfy", "peft")

import torch  # noqa: E402

from codirector.errors import ConfigError  # noqa: E402
from codirector.generator.backends.dit import DitBackend  # noqa: E402
from codirector.generator.backends.dit.lora import LoraSpec, parse_lora_specs  # noqa: E402
from codirector.generator.backends.dit.pipeline import ClipConditions, DitPipeline  # noqa: E402
from codirector.generator.backends.dit.sampling import STAGES, strength_steps  # noqa: E402
from codirector.generator.backends.dit.windows import Window, plan_windows, sample_windows  # noqa: E402
from codirector.generator.testing import make_requests, synthetic_face  # noqa: E402
from codirector.schemas.render_plan import DiffusionSettings, FrameSize, StageSettings  # noqa: E402

ONE_STEP = DiffusionSettings(num_inference_steps=1, guidance_scale=1.0, seed=0)


def _planned(steps: int = 8) -> StageSettings:
    settings = DiffusionSettings(num_inference_steps=steps, guidance_scale=5.0, audio_guidance_scale=3.0,
                                 negative_frame_guidance_scale=1.5, seed=1)  # fmt: skip
    return StageSettings(low_res=FrameSize(width=32, height=32), high_res=FrameSize(width=64, height=64),
                         blueprint_fps=8, **dict.fromkeys(STAGES, settings))  # fmt: skip


# --- presets, steps, strength ------------------------------------------------------------------------------------


def test_the_lightx2v_preset_sets_four_sigmas_shift_five_and_no_guidance() -> None:
    backend = DitBackend(tiny=True, preset="lightx2v-4step")
    settings = backend.stage_settings(_planned())
    for stage in STAGES:
        chosen = getattr(settings, stage)
        assert (chosen.num_inference_steps, chosen.guidance_scale) == (4, 1.0)
        assert (chosen.audio_guidance_scale, chosen.negative_frame_guidance_scale) == (0.0, 0.0)
        assert chosen.seed == 1  # the plan's seeds are kept
    assert backend.pipeline.sigmas == [1.0, 0.75, 0.5, 0.25]
    assert backend.pipeline.shift == 5.0
    scheduler, first = backend.pipeline._scheduler(4)
    torch.testing.assert_close(scheduler.sigmas[:-1], torch.tensor([1.0, 0.9375, 0.8333, 0.625]), atol=1e-4, rtol=0)
    assert first == 0


def test_stock_weights_default_to_many_steps_and_options_override_per_stage() -> None:
    base = DitBackend(tiny=True, preset="base").stage_settings(_planned())
    assert [getattr(base, s).num_inference_steps for s in STAGES] == [40, 20, 40, 20, 20]
    assert base.subclips.guidance_scale == 5.0  # the plan's guidance stays
    custom = DitBackend(tiny=True, preset="base", steps={"subclips": 30}, guidance_scale=4.0)
    settings = custom.stage_settings(_planned())
    assert (settings.subclips.num_inference_steps, settings.blueprint.num_inference_steps) == (30, 40)
    assert {getattr(settings, s).guidance_scale for s in STAGES} == {4.0}
    assert DitBackend(tiny=True).stage_settings(_planned(3)).subclips.num_inference_steps == 3  # tiny: the plan's
    with pytest.raises(ConfigError, match="preset"):
        DitBackend(tiny=True, preset="turbo")
    with pytest.raises(ConfigError, match="unknown stages"):
        DitBackend(tiny=True, steps={"subclip": 3})


# (planned steps, strength) -> (steps of the schedule, first step run); Python rounds halves to even
STRENGTHS = [(8, 0.5, (8, 4)), (20, 0.4, (20, 12)), (4, 0.4, (4, 2)), (1, 0.5, (3, 1)), (2, 0.1, (15, 13)),
             (4, 1.0, (4, 0))]  # fmt: skip


@pytest.mark.parametrize(("steps", "strength", "expected"), STRENGTHS)
def test_strength_runs_its_share_of_a_real_schedule_and_at_least_two_steps(
    steps: int, strength: float, expected: tuple[int, int]
) -> None:
    total, first = strength_steps(steps, strength)
    assert (total, first) == expected
    assert total - first >= 2 or strength == 1.0


@pytest.mark.parametrize("sigmas", [None, [1.0, 0.75, 0.5, 0.25]], ids=["checkpoint scheduler", "custom sigmas"])
def test_upscaling_at_low_strength_runs_two_model_calls_from_the_matching_noise_level(sigmas: list | None) -> None:
    backend = DitBackend(tiny=True, upscale_strength=0.3, sigmas=sigmas)
    calls: list[float] = []
    backend.pipeline.transformer.register_forward_pre_hook(
        lambda _m, _a, kwargs: calls.append(float(kwargs["timestep"][0])), with_kwargs=True
    )
    request = make_requests(height=32, width=32, num_frames=5, seed=0, upscale=2).upscale
    backend.upscale_image(dataclasses.replace(request, sampler=ONE_STEP))
    assert len(calls) == 2  # one step planned; strength 0.3 of a lengthened schedule still runs two
    assert calls[0] < 1000 * 0.95  # not from pure noise


# --- LoRAs ---------------------------------------------------------------------------------------------------------


def _lora_file(path: Path, pipeline: DitPipeline, original: bool, rank: int = 2) -> Path:
    """A LoRA on every block's self-attention q and v, in diffusers' key format or Wan's original one."""
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(1)
    tensors = {}
    for index, block in enumerate(pipeline.transformer.blocks):
        for wan, ours in (("q", "to_q"), ("v", "to_v")):
            layer = getattr(block.attn1, ours)
            down = torch.randn(rank, layer.in_features, generator=generator) * 0.5
            up = torch.randn(layer.out_features, rank, generator=generator) * 0.5
            if original:  # as LightX2V and ComfyUI publish them: lora_down/up with an alpha
                prefix = f"diffusion_model.blocks.{index}.self_attn.{wan}"
                tensors |= {f"{prefix}.lora_down.weight": down, f"{prefix}.lora_up.weight": up,
                            f"{prefix}.alpha": torch.tensor(float(rank))}  # fmt: skip
            else:
                prefix = f"transformer.blocks.{index}.attn1.{ours}"
                tensors |= {f"{prefix}.lora_A.weight": down, f"{prefix}.lora_B.weight": up}
    save_file(tensors, str(path))
    return path


def _clip(pipeline: DitPipeline) -> torch.Tensor:
    conditions = ClipConditions(prompt="a person talks", negative_prompt="", given={0: synthetic_face(32, 32)},
                                audio=[], sample_rate=16_000, fps=25.0)  # fmt: skip
    return pipeline.sample(pipeline.grid(5, 32, 32), conditions, ONE_STEP)


@pytest.mark.parametrize("original", [False, True], ids=["diffusers keys", "Wan original keys"])
def test_a_lora_loads_through_diffusers_and_changes_the_output_by_its_scale(tmp_path: Path, original: bool) -> None:
    base = DitPipeline.tiny(0)
    file = _lora_file(tmp_path / "lora.safetensors", base, original)
    loaded = DitPipeline.tiny(0, loras=parse_lora_specs(f"{file}:1.0"))
    assert loaded.loras == ["lora_0"]
    assert "lora_0" in loaded.transformer.peft_config
    assert not torch.allclose(_clip(base), _clip(loaded), atol=1e-3)
    silent = DitPipeline.tiny(0, loras=[LoraSpec(file, 0.0)])  # scale 0: the LoRA is there but does nothing
    torch.testing.assert_close(_clip(base), _clip(silent))


def test_lora_options_are_checked_before_anything_loads(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a file"):
        DitBackend(tiny=True, lora=str(tmp_path / "missing.safetensors"))
    file = tmp_path / "a.safetensors"
    file.write_bytes(b"")
    assert [(s.path.name, s.scale) for s in parse_lora_specs([f"{file}:0.5", str(file)])] == [
        ("a.safetensors", 0.5), ("a.safetensors", 1.0)]  # fmt: skip


# --- continuity -----------------------------------------------------------------------------------------------------


def test_four_blueprint_windows_continue_from_each_other() -> None:
    requests = make_requests(height=32, width=32, num_frames=24, seed=0, upscale=1)
    backend = DitBackend(tiny=True, max_frames=9, overlap_frames=4)
    assert len(plan_windows(24, 9, 4)) == 4
    pipeline = backend.pipeline
    given_per_call: list[dict[int, np.ndarray]] = []
    real_sample = pipeline.sample

    def spy_sample(grid: object, conditions: ClipConditions, sampler: DiffusionSettings, **kwargs: object) -> object:
        given_per_call.append(dict(conditions.given))
        return real_sample(grid, conditions, sampler, **kwargs)

    pipeline.sample = spy_sample  # type: ignore[method-assign]
    frames = list(backend.text_to_video(dataclasses.replace(requests.video, sampler=ONE_STEP)))
    assert len(frames) == 24
    starts = [w.start for w in plan_windows(24, 9, 4)]
    assert len(given_per_call) == 4
    assert sorted(given_per_call[0]) == [0]  # the reference, only in the first window
    for start, given in zip(starts[1:], given_per_call[1:], strict=True):
        assert sorted(given) == [0, 1, 2, 3]  # the overlap's frames the window before made (motion frames)
        for offset, frame in given.items():
            np.testing.assert_array_equal(frame, frames[start + offset])  # and the video keeps them


def test_overlaps_after_the_carried_frames_are_cross_faded() -> None:
    windows = [Window(0, 9, 9), Window(5, 9, 9)]  # frames 5-8 shared

    def constant(window: Window, inside: dict[int, np.ndarray]) -> list[np.ndarray]:
        value = 0 if window.start == 0 else 200
        return [np.full((2, 2, 3), value, np.uint8) for _ in range(window.num_frames)]

    frames = sample_windows(14, {}, windows, constant, motion_frames=1)
    values = [int(f[0, 0, 0]) for f in frames]
    assert values[:6] == [0] * 6  # frame 5 is carried over as the first window made it
    assert 0 < values[6] < values[7] < values[8] < 200  # a rising blend...
    assert values[9:] == [200] * 5  # ...then the second window alone


def test_super_resolution_gets_the_audio_the_anchors_and_overlapping_windows() -> None:
    requests = make_requests(height=32, width=32, num_frames=20, seed=0, upscale=2)
    backend = DitBackend(tiny=True, max_frames=9, overlap_frames=4)
    pipeline = backend.pipeline
    calls: list[tuple[ClipConditions, bool]] = []
    real_sample = pipeline.sample

    def spy_sample(grid: object, conditions: ClipConditions, sampler: DiffusionSettings, **kwargs: object) -> object:
        calls.append((conditions, kwargs.get("start") is not None))
        return real_sample(grid, conditions, sampler, **kwargs)

    pipeline.sample = spy_sample  # type: ignore[method-assign]
    request = requests.super_resolution()
    request = dataclasses.replace(request, sampler=ONE_STEP)
    frames = list(backend.super_resolve(request))
    assert len(frames) == 20
    assert frames[0].shape == (64, 64, 3)
    assert len(calls) == len(plan_windows(20, 9, 4)) >= 3
    assert all(from_video for _, from_video in calls)  # video-to-video from the low-resolution frames
    assert all(c.audio and c.audio[0] is not None and np.abs(c.audio[0]).max() > 0 for c, _ in calls)
    first, last = calls[0][0], calls[-1][0]
    anchor = first.given[0]
    assert anchor.shape == (64, 64, 3)
    np.testing.assert_array_equal(anchor, request.first_anchor)  # the high-resolution anchor, as it is
    np.testing.assert_array_equal(last.given[max(last.given)], request.last_anchor)


# --- cheaper steps ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("threshold", "expected_calls"), [(None, 4), (0.0, 4), (1e9, 1)])
def test_first_block_cache_skips_the_later_blocks_of_similar_steps(
    threshold: float | None, expected_calls: int
) -> None:
    pipeline = DitPipeline.tiny(0, first_block_cache=threshold)
    calls: list[int] = []
    pipeline.transformer.blocks[1].attn1.register_forward_pre_hook(lambda _m, _a: calls.append(1))
    conditions = ClipConditions(prompt="a person talks", negative_prompt="", given={0: synthetic_face(32, 32)},
                                audio=[], sample_rate=16_000, fps=25.0)  # fmt: skip
    four = DiffusionSettings(num_inference_steps=4, guidance_scale=1.0, seed=0)
    video = pipeline.sample(pipeline.grid(5, 32, 32), conditions, four)
    assert video.shape == (1, 3, 5, 32, 32)
    assert len(calls) == expected_calls  # the second block runs on every step, or only on the first
    calls.clear()
    pipeline.sample(pipeline.grid(5, 32, 32), conditions, four)
    assert len(calls) == expected_calls  # the cache starts afresh for every clip
