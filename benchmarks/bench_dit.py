"""Speed of the dit backend's transformer against the stock diffusers Wan transformer at the same shapes, as JSON.

Usage:
    python benchmarks/bench_dit.py --preset tiny --height 64 --width 64 --frames 9 --steps 2
    python benchmarks/bench_dit.py --preset wan-14b --height 480 --width 832 --frames 81 --device cuda \\
        --dtype bfloat16 --peak-tflops 989 --cfg

Weights are random: speed does not depend on weight values. For each model it times one denoising step (one
transformer forward, or two with --cfg, as classifier-free guidance does), counts its FLOPs with
torch.utils.flop_counter, and reports the achieved TFLOP/s and, given --peak-tflops, the utilisation. It then
times one whole sub-clip (`--steps` steps of the dit pipeline, VAE decode included) for the tiny preset, where a
random VAE is cheap. Published anchor: Wan2.1-I2V-14B 480p, 81 frames, with CFG, one H100: about 9.8 s/step in
diffusers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch
from diffusers import WanTransformer3DModel
from torch.utils.flop_counter import FlopCounterMode

from codirector.generator.backends.dit.model import AudioWanTransformer3DModel, tiny_config

_BACKBONES: dict[str, dict[str, Any]] = {
    "tiny": {k: v for k, v in tiny_config(in_channels=36).items() if not k.startswith(("audio", "mask", "identity"))},
    "wan-1.3b": dict(
        patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=36, out_channels=16,
        text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024,
    ),
    "wan-14b": dict(
        patch_size=(1, 2, 2), num_attention_heads=40, attention_head_dim=128, in_channels=36, out_channels=16,
        text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=40, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024,
    ),
}  # fmt: skip
_AUDIO = {
    "tiny": dict(audio_dim=16, audio_tokens_per_frame=4, audio_hidden_dim=32),
    "wan-1.3b": dict(audio_dim=768, audio_tokens_per_frame=32, audio_hidden_dim=1024),
    "wan-14b": dict(audio_dim=768, audio_tokens_per_frame=32, audio_hidden_dim=1024),
}


def _inputs(config: dict[str, Any], args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> dict:
    latent_frames = (args.frames - 1) // 4 + 1
    shape = (1, config["in_channels"], latent_frames, args.height // 8, args.width // 8)
    return {
        "hidden_states": torch.randn(shape, device=device, dtype=dtype),
        "timestep": torch.tensor([500], device=device),
        "encoder_hidden_states": torch.randn(1, 512, config["text_dim"], device=device, dtype=dtype),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def _time_step(model: torch.nn.Module, inputs: dict, passes: int, repeats: int, device: torch.device) -> list[float]:
    for _ in range(2):  # warm-up (kernels, caches)
        model(**inputs, return_dict=False)
    _sync(device)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(passes):
            model(**inputs, return_dict=False)
        _sync(device)
        times.append(time.perf_counter() - started)
    return times


@torch.no_grad()
def _flops(model: torch.nn.Module, inputs: dict) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        model(**inputs, return_dict=False)
    return counter.get_total_flops()


def measure(args: argparse.Namespace) -> dict[str, Any]:
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    backbone = _BACKBONES[args.preset]
    passes = 2 if args.cfg else 1
    torch.manual_seed(0)
    stock = WanTransformer3DModel(**backbone).to(device).eval()
    ours = AudioWanTransformer3DModel(**backbone, **_AUDIO[args.preset]).to(device).eval()
    if dtype != torch.float32:  # diffusers warns that norms should stay float32; for timing the cast is what counts
        stock, ours = stock.to(dtype), ours.to(dtype)
    ours.load_state_dict(stock.state_dict(), strict=False)
    inputs = _inputs(backbone, args, device, dtype)
    audio = torch.randn(1, 1, args.frames, _AUDIO[args.preset]["audio_dim"], device=device, dtype=dtype)
    results: dict[str, Any] = {}
    for name, model, extra in (("stock_wan", stock, {}), ("ours_with_audio", ours, {"audio_features": audio})):
        step_inputs = {**inputs, **extra}
        times = _time_step(model, step_inputs, passes, args.repeats, device)
        flops = _flops(model, step_inputs) * passes
        seconds = statistics.median(times)
        entry: dict[str, Any] = {
            "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
            "step_s": round(seconds, 4),
            "step_s_all": [round(t, 4) for t in times],
            "gflops_per_step": round(flops / 1e9, 3),
            "achieved_tflops": round(flops / seconds / 1e12, 4),
        }
        if args.peak_tflops:
            entry["utilisation"] = round(flops / seconds / 1e12 / args.peak_tflops, 3)
        results[name] = entry
    results["ratio_ours_to_stock_step"] = round(
        results["ours_with_audio"]["step_s"] / results["stock_wan"]["step_s"], 3
    )
    if args.preset == "tiny":
        results["subclip"] = _time_subclip(args)
    return results


def _time_subclip(args: argparse.Namespace) -> dict[str, Any]:
    """One whole sub-clip through the tiny dit pipeline: first-last-frame, audio, all guidance branches."""
    import numpy as np

    from codirector.generator.backends.dit.pipeline import ClipConditions, DitPipeline
    from codirector.schemas.render_plan import DiffusionSettings

    pipeline = DitPipeline.tiny(0)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (args.height, args.width, 3), dtype=np.uint8)
    conditions = ClipConditions(
        prompt="a person talks", negative_prompt="blurry", given={0: frame, args.frames - 1: frame},
        audio=[rng.standard_normal(int(args.frames / 25 * 16_000)).astype(np.float32) * 0.1], sample_rate=16_000,
        fps=25.0, negative_image=frame[::-1].copy(),
    )  # fmt: skip
    sampler = DiffusionSettings(num_inference_steps=args.steps, guidance_scale=5.0, audio_guidance_scale=3.0,
                                negative_frame_guidance_scale=1.5, seed=0)  # fmt: skip
    grid = pipeline.grid(args.frames, args.height, args.width)
    pipeline.sample(grid, conditions, sampler)  # warm-up
    started = time.perf_counter()
    pipeline.sample(grid, conditions, sampler)
    return {"steps": args.steps, "branches_per_step": 4, "seconds": round(time.perf_counter() - started, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(_BACKBONES), default="tiny")
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--frames", type=int, default=9, help="video frames, 4k + 1")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--cfg", action="store_true", help="two forwards per step (classifier-free guidance)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's dense peak, for utilisation")
    args = parser.parse_args()
    report = {
        "preset": args.preset, "shape": {"height": args.height, "width": args.width, "frames": args.frames},
        "device": args.device, "dtype": args.dtype, "torch": torch.__version__, "cfg": args.cfg,
        "threads": torch.get_num_threads(), **measure(args),
    }  # fmt: skip
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
