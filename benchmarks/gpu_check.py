"""GPU check (issue 13): the dit backend at Wan2.1-I2V-14B's real size with random weights, as one JSON object.

Part 1 (`step`), one 480p (832x480) 81-frame denoising step: the stock diffusers `WanTransformer3DModel` against
ours (`AudioWanTransformer3DModel`, default audio config) with one voice, and with two voices gated by
`character_masks`, both fed the text context (512 x 4096) and CLIP image embeddings (257 x 1280) as the pipeline
feeds them. Per model and attention backend: seconds per forward (median after warm-up), peak
`torch.cuda.max_memory_allocated` (reset per case) and ours/stock (goal <= 1.10). The models are built one after
the other (ours ~42 GB in bf16, stock ~33 GB). Part 2 (`cascade`): examples/dialogue/job.yaml (two speakers) cut to
`--duration-s` and planned by the offline director, every stage at 2 steps, high_res 832x480, through the whole
cascade with a `dit` backend whose pipeline holds random full-size parts (14B transformer, UMT5-XXL, CLIP ViT-H, Wan
VAE, UniPC): wall seconds per stage (manifest), where the time went, GPU-seconds per second of video.

Random weights, built on the GPU: each part is made on the meta device from its published config
(`published.published_configs`; buffers such as rotary tables are computed for real), then every tensor is allocated
on the GPU in its load dtype (bf16, float32 where `_keep_in_fp32_modules` says, float32 VAE and CLIP as
`checkpoint.load_components` loads them) and filled by one normal_. Speed does not depend on weight values; nothing
is downloaded or read. The tokenizer has no weights but must be real: tiny.py's WordLevel one stands in for UMT5's
(the text encoder still runs on 512 padded tokens). Parts are time-boxed within `--budget-s` (480): part 2 is
skipped, or stopped at a task boundary, with a note. `--tiny` runs the same code on the CPU with tiny.py's configs.

To run without network (the H200 image has Python 3.12 with torch, transformers, accelerate, peft, safetensors,
tokenizers, opencv-python-headless, numpy, scipy, scikit-learn, numba, pillow, pyyaml, jinja2; KINDS.md), carry
`.gpu_check/` (~48 MB of the 64 MiB a call may carry) holding the plan, made here by the offline director (whose
faster-whisper, ctranslate2, Whisper-weight wheels and langgraph outweigh a call), and, no-deps cp312 wheels of
codirector and of what the render path imports that the image lacks (the venv's versions). Here, in the repo root:

    echo /.gpu_check/ >> .git/info/exclude
    .venv/bin/python benchmarks/gpu_check.py --write-plan .gpu_check/plan
    .venv/bin/pip wheel --no-deps --no-build-isolation -q -w .gpu_check/whl . && rm -rf build
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \\
      -d .gpu_check/whl diffusers==0.42.1 ftfy==6.3.1 wcwidth==0.9.4 pydantic==2.14.4 pydantic-core==2.50.5 \\
      annotated-types==0.8.0 typing-inspection==0.4.5 pydantic-settings==2.16.3 python-dotenv==1.2.4 \\
      jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 \\
      av==18.1.0 librosa==0.11.0 decorator==5.3.1 pooch==1.9.0 platformdirs==4.14.9 soundfile==0.14.0 \\
      cffi==2.1.1 soxr==1.1.0

There (carry [".gpu_check"], timeout_s 600; stdout is the JSON, logs go to stderr):

    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu_check/whl/*.whl && \\
    PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py \\
      --plan .gpu_check/plan/render_plan.json | tee $OUT/gpu_check.json

(`--attention-backend _native_cudnn,flash` also times those diffusers backends in part 1; flash needs flash-attn.)
Here: `.venv/bin/python benchmarks/gpu_check.py --tiny` (plans with the offline director, then renders).
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import math
import platform
import shutil
import statistics
import tempfile
import time
import traceback
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch

from codirector.errors import CodirectorError
from codirector.generator.backends.dit.backend import DitBackend

REPO = Path(__file__).resolve().parents[1]
CHECKPOINT = "Wan2.1-I2V-14B-480P-Diffusers"
TEXT_TOKENS, IMAGE_TOKENS = 512, 257  # Wan's text context; CLIP ViT-H/14 at 224: 16 x 16 patches + class token
GOAL_RATIO = 1.10
STAGES = ("blueprint", "keyframes", "subclips", "transitions", "super_resolution")
GB = 1e9
# part 1's clip (height, width, frames); part 2's high_res and, at tiny size, low_res (else the plan's)
STEP_SIZE = {"full": (480, 832, 81), "tiny": (32, 32, 9)}
RENDER_SIZE = {"full": ((832, 480), None), "tiny": ((64, 64), (32, 32))}
TINY_AUDIO = dict(audio_dim=16, audio_tokens_per_frame=4, audio_hidden_dim=32)
FAILURES = (CodirectorError, RuntimeError, ValueError, OSError, ImportError)  # torch.OutOfMemoryError included


class OutOfTime(Exception):
    """Raised from the render's progress hook when part 2's time box is spent."""


# --- random weights on the device -------------------------------------------------------------------------------


def _cheap_init(tensor: torch.Tensor, name: str) -> None:
    """Biases 0, 1-D weights (norms) 1, the rest normal with std 1/sqrt(fan_in), so activations stay finite."""
    if name == "bias":
        tensor.zero_()
    elif tensor.ndim == 1:
        tensor.fill_(1.0)
    else:
        tensor.normal_(0.0, 1.0 / math.sqrt(max(1, tensor[0].numel())))


def materialize(build: Callable[[], torch.nn.Module], device: torch.device, dtype: torch.dtype,
                keep_fp32: tuple[str, ...] = ()) -> torch.nn.Module:  # fmt: skip
    """`build()` on the meta device, then every tensor allocated on `device` and filled cheaply.

    Parameters and floating buffers take `dtype`, or float32 inside a module named in `keep_fp32` (as diffusers'
    from_pretrained keeps `_keep_in_fp32_modules`); buffers keep their computed values; tied weights stay tied.
    """
    from accelerate import init_empty_weights

    with init_empty_weights():  # parameters on meta; buffers (rotary tables, position ids) computed on the CPU
        model = build()
    if hasattr(model, "tie_weights"):  # init_empty_weights re-registers assigned parameters: UMT5's shared and
        model.tie_weights()  # encoder.embed_tokens come out untied (1 B parameters twice); transformers ties them
    made: dict[int, torch.nn.Parameter] = {}
    for module_name, module in model.named_modules():
        for name, parameter in list(module._parameters.items()):
            if parameter is not None and id(parameter) not in made:
                wanted = torch.float32 if set(f"{module_name}.{name}".split(".")) & set(keep_fp32) else dtype
                tensor = torch.empty(parameter.shape, device=device, dtype=wanted)
                _cheap_init(tensor, name)
                made[id(parameter)] = torch.nn.Parameter(tensor, requires_grad=False)
            if parameter is not None:
                module._parameters[name] = made[id(parameter)]
        for name, buffer in list(module._buffers.items()):
            if buffer is not None and buffer.is_floating_point():
                wanted = torch.float32 if set(f"{module_name}.{name}".split(".")) & set(keep_fp32) else dtype
                module._buffers[name] = buffer.to(device, wanted)
            elif buffer is not None:
                module._buffers[name] = buffer.to(device)
    return model.eval()


def _fp32_modules(kind: type) -> tuple[str, ...]:
    return tuple(getattr(kind, "_keep_in_fp32_modules", None) or ())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _gb(device: torch.device, peak: bool = False) -> float | None:
    if device.type != "cuda":
        return None
    return round((torch.cuda.max_memory_allocated(device) if peak else torch.cuda.memory_allocated(device)) / GB, 2)


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _failure(error: BaseException) -> str:
    traceback.print_exception(error)  # the whole story on stderr; the JSON keeps the line
    return f"{type(error).__name__}: {error}"[:600]


# --- part 1: one denoising step ---------------------------------------------------------------------------------


def _transformer_config(tiny: bool) -> dict[str, Any]:
    from codirector.generator.backends.dit.published import published_configs
    from codirector.generator.backends.dit.tiny import TINY_TRANSFORMER

    config = dict(TINY_TRANSFORMER) if tiny else dict(published_configs(CHECKPOINT)["transformer"])
    config.pop("_class_name", None)
    return config


def _step_inputs(config: dict[str, Any], size: tuple[int, int, int], device: torch.device) -> dict[str, Any]:
    """The forward's arguments per case: no audio (stock), one voice, two voices gated by character masks."""
    height, width, num_frames = size
    latent = ((num_frames - 1) // 4 + 1, height // 8, width // 8)
    grid = (latent[0], latent[1] // config["patch_size"][1], latent[2] // config["patch_size"][2])

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, device=device, dtype=torch.bfloat16)

    base = {"hidden_states": randn(1, config["in_channels"], *latent), "timestep": torch.tensor([999], device=device),
            "encoder_hidden_states": randn(1, TEXT_TOKENS, config["text_dim"]), "return_dict": False,
            "encoder_hidden_states_image": randn(1, IMAGE_TOKENS, config["image_dim"])}  # fmt: skip
    audio_dim = config.get("audio_dim", 768)
    masks = torch.rand(1, 2, *grid, device=device, dtype=torch.bfloat16)
    return {"no_audio": base, "one_voice": {**base, "audio_features": randn(1, 1, num_frames, audio_dim)},
            "two_voices_masked": {**base, "audio_features": randn(1, 2, num_frames, audio_dim),
                                  "character_masks": masks}}  # fmt: skip


@torch.no_grad()
def _time_forward(model: torch.nn.Module, inputs: dict[str, Any], warmup: int, repeats: int,
                  device: torch.device) -> dict[str, Any]:  # fmt: skip
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(warmup):
        model(**inputs)
    _sync(device)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model(**inputs)
        _sync(device)
        times.append(time.perf_counter() - started)
    return {"step_s": round(statistics.median(times), 4), "step_s_all": [round(t, 4) for t in times],
            "peak_gb": _gb(device, peak=True)}  # fmt: skip


def _use_backend(model: Any, backend: str) -> str:
    """Switch the model's attention to a diffusers backend; returns the one that now runs ("native" is torch SDPA,
    which picks its flash, cuDNN or memory-efficient kernel itself)."""
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    if backend == "default":
        model.reset_attention_backend()
    else:
        model.set_attention_backend(backend)  # RuntimeError when the backend's package is missing
    return str(_AttentionBackendRegistry.get_active_backend()[0].value)


def measure_step(args: argparse.Namespace, device: torch.device, deadline: float) -> dict[str, Any]:
    """Part 1: stock against ours, one forward at the checkpoint's size, per attention backend."""
    from diffusers import WanTransformer3DModel
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    from codirector.generator.backends.dit.model import AudioWanTransformer3DModel

    size = STEP_SIZE["tiny" if args.tiny else "full"]
    config = _transformer_config(args.tiny)
    audio = TINY_AUDIO if args.tiny else {}  # full size: the model's defaults
    inputs = _step_inputs({**config, **audio}, size, device)
    default_backend = _AttentionBackendRegistry.get_active_backend()[0]
    tokens = ((size[2] - 1) // 4 + 1) * (size[0] // 16) * (size[1] // 16)
    report: dict[str, Any] = {
        "config": "tiny.TINY_TRANSFORMER" if args.tiny else CHECKPOINT,
        "shape": {"height": size[0], "width": size[1], "num_frames": size[2], "video_tokens": tokens,
                  "text_tokens": TEXT_TOKENS, "image_tokens": IMAGE_TOKENS},
        "audio_config": audio or "AudioWanTransformer3DModel defaults (audio_dim 768, 32 tokens/frame, hidden 1024)",
        "dtype": "bfloat16, float32 for _keep_in_fp32_modules", "warmup": args.warmup, "repeats": args.repeats,
        "models": {}, "notes": [],
    }  # fmt: skip
    models = (("stock_wan", WanTransformer3DModel, {}, ("no_audio",)),
              ("ours", AudioWanTransformer3DModel, audio, ("one_voice", "two_voices_masked")))  # fmt: skip
    for label, kind, extra, cases in models:
        if time.perf_counter() > deadline:
            report["notes"].append(f"{label} skipped: part 1's time box was spent")
            continue
        started = time.perf_counter()
        model = materialize(functools.partial(kind, **config, **extra), device, torch.bfloat16, _fp32_modules(kind))
        _sync(device)
        entry: dict[str, Any] = {"parameters": sum(p.numel() for p in model.parameters()), "weights_gb": _gb(device),
                                 "build_s": round(time.perf_counter() - started, 2), "runs": {}}  # fmt: skip
        for backend in ["default", *args.attention_backend]:
            try:
                runs: dict[str, Any] = {"attention_backend_ran": _use_backend(model, backend)}
            except FAILURES as error:
                entry["runs"][backend] = {"error": _failure(error)}
                continue
            for case in cases:
                if time.perf_counter() > deadline:
                    runs[case] = {"skipped": "part 1's time box was spent"}
                    continue
                try:
                    runs[case] = _time_forward(model, inputs[case], args.warmup, args.repeats, device)
                except FAILURES as error:  # a backend that refuses a shape, or memory
                    runs[case] = {"error": _failure(error)}
            entry["runs"][backend] = runs
        _AttentionBackendRegistry.set_active_backend(default_backend)
        report["models"][label] = entry
        del model
        _free(device)
    report["ratios_ours_to_stock"] = _ratios(report["models"])
    report["goal_ratio_max"] = GOAL_RATIO
    return report


def _ratios(models: dict[str, Any]) -> dict[str, Any]:
    ratios: dict[str, Any] = {}
    stock_runs = models.get("stock_wan", {}).get("runs", {})
    for backend, runs in models.get("ours", {}).get("runs", {}).items():
        stock = stock_runs.get(backend, {}).get("no_audio", {}).get("step_s")
        for case, run in runs.items():
            if stock and isinstance(run, dict) and "step_s" in run:
                ratio = round(run["step_s"] / stock, 3)
                ratios[f"{backend}/{case}"] = {"ratio": ratio, "meets_goal": ratio <= GOAL_RATIO}
    return ratios


# --- part 2: the plan -------------------------------------------------------------------------------------------


def _cut_job(duration_s: float, folder: Path) -> Path:
    """examples/dialogue with both tracks cut to `duration_s` (so the job is that long); returns the job file."""
    import yaml

    source = REPO / "examples" / "dialogue"
    folder.mkdir(parents=True, exist_ok=True)
    job = yaml.safe_load((source / "job.yaml").read_text(encoding="utf-8"))
    shutil.copyfile(source / job["scene_image"], folder / job["scene_image"])
    for character in job["characters"]:
        with wave.open(str(source / character["audio"]), "rb") as reader:
            params = reader.getparams()
            frames = reader.readframes(min(params.nframes, round(duration_s * params.framerate)))
        with wave.open(str(folder / character["audio"]), "wb") as writer:
            writer.setparams(params)
            writer.writeframes(frames)
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(job, sort_keys=False), encoding="utf-8")
    return path


def make_plan(duration_s: float, folder: Path) -> Any:
    """The offline director's render plan for the cut job (its media and checkpoints under `folder`)."""
    import codirector

    job = _cut_job(duration_s, folder / "job")
    return codirector.plan(job, config=codirector.Config(home=folder / "home"), checkpoint=False).render_plan


def _media_fields(data: dict[str, Any], change: Callable[[str], str]) -> None:
    """Apply `change` to every media path of a render plan's JSON data, in place."""
    fields = [(data, "scene_image")] + [(c, k) for c in data["characters"] for k in ("reference_image", "audio")]
    for holder, key in fields:
        if holder[key] is not None:
            holder[key] = change(holder[key])


def write_plan(plan: Any, folder: Path) -> Path:
    """The render plan as JSON with its media beside it, paths relative (so the folder can travel)."""
    data = plan.model_dump(mode="json")
    (folder / "media").mkdir(parents=True, exist_ok=True)

    def copy(path: str) -> str:
        shutil.copyfile(path, folder / "media" / Path(path).name)
        return f"media/{Path(path).name}"

    _media_fields(data, copy)
    path = folder / "render_plan.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def read_plan(path: Path) -> Any:
    """A plan `write_plan` wrote, its media paths resolved against its folder (load_document does that for jobs)."""
    from codirector.schemas import RenderPlan

    data = json.loads(path.read_text(encoding="utf-8"))
    _media_fields(data, lambda name: str(path.parent.resolve() / name))
    return RenderPlan.model_validate(data)


def fast_plan(plan: Any, steps: int, high: tuple[int, int], low: tuple[int, int] | None) -> Any:
    """Every stage at `steps` steps, high_res and output at `high` (width, height): as tests/helpers.py rewrites."""
    from codirector.schemas import RenderPlan

    data = plan.model_dump()
    data["output"] = data["stages"]["high_res"] = {"width": high[0], "height": high[1]}
    if low is not None:
        data["stages"]["low_res"] = {"width": low[0], "height": low[1]}
    for name in STAGES:
        data["stages"][name]["num_inference_steps"] = steps
    return RenderPlan.model_validate(data)


# --- part 2: the pipeline and the render ------------------------------------------------------------------------


def build_components(tiny: bool, device: torch.device) -> Any:
    """`WanComponents` of random parts with the published configs (tiny.py's with --tiny), built on `device`."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
        UMT5Config,
        UMT5EncoderModel,
    )

    from codirector.generator.backends.dit.checkpoint import WanComponents
    from codirector.generator.backends.dit.model import AudioWanTransformer3DModel
    from codirector.generator.backends.dit.published import published_configs
    from codirector.generator.backends.dit.tiny import _tokenizer, tiny_components

    if tiny:
        parts = tiny_components(0)  # for their configs (and the tiny image processor)
        text, image = parts.text_encoder.config.to_dict(), parts.image_encoder.config.to_dict()
        vae, processor = dict(parts.vae.config), parts.image_processor
    else:
        configs = published_configs(CHECKPOINT)
        text, image, vae = configs["text_encoder"], configs["image_encoder"], configs["vae"]
        processor = CLIPImageProcessor()  # the published one: shortest edge 224, centre crop 224, CLIP statistics
    config = {**_transformer_config(tiny), **(TINY_AUDIO if tiny else {})}
    kind = AudioWanTransformer3DModel
    # bf16 transformer and text encoder; float32 VAE and CLIP image encoder, as checkpoint.load_components loads them
    return WanComponents(
        transformer=materialize(lambda: kind(**config), device, torch.bfloat16, _fp32_modules(kind)),
        text_encoder=materialize(lambda: UMT5EncoderModel(UMT5Config.from_dict(text)), device, torch.bfloat16),
        image_encoder=materialize(lambda: CLIPVisionModelWithProjection(CLIPVisionConfig.from_dict(image)), device,
                                  torch.float32),
        vae=materialize(lambda: AutoencoderKLWan.from_config(vae), device, torch.float32),
        # the published 480P scheduler: UniPC over flow-matching sigmas, shift 3
        scheduler=UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                          num_train_timesteps=1000, flow_shift=3.0),
        tokenizer=_tokenizer(), image_processor=processor, image_embeddings=1,
    )  # fmt: skip


class PrebuiltDit(DitBackend):
    """The dit backend around a pipeline built in this process (`pipeline_for` returns it at any size).

    `tiny=True` only waives the weights folder and its memory preflight; preset "plan" keeps the plan's steps.
    """

    name = "dit-gpu-check"
    prebuilt: ClassVar[Any] = None

    def __init__(self, **options: Any) -> None:
        super().__init__(**{"tiny": True, "preset": "plan", **options})

    def pipeline_for(self, height: int, width: int) -> Any:
        if PrebuiltDit.prebuilt is None:
            raise RuntimeError("PrebuiltDit.prebuilt is not set: build the pipeline before rendering")
        return PrebuiltDit.prebuilt

    def report(self) -> dict[str, Any]:
        return {"checkpoint": "random weights with the published configs (benchmarks/gpu_check.py)",
                "audio_conditioning": {"weights": "random", "trained": False, "mask_head": False},
                "character_gating": "drawn soft masks", "lip_sync_driven": False}  # fmt: skip


class _Clock:
    """Calls and seconds per label (each timed call ends with a device sync)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.totals: dict[str, list[float]] = {}

    def add(self, label: str, seconds: float) -> None:
        calls, total = self.totals.get(label, [0, 0.0])
        self.totals[label] = [calls + 1, total + seconds]

    def wrap(self, label: Callable[..., str], fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                _sync(self.device)
                self.add(label(*args, **kwargs), time.perf_counter() - started)

        return timed

    def report(self, wall_s: float) -> dict[str, Any]:
        """Seconds per part (transformer, vae_encode, ...; "other" is the rest of `wall_s`: CPU work and idle GPU)
        and per label."""
        parts: dict[str, float] = {}
        for label, (_, total) in self.totals.items():
            parts[label.split("[")[0]] = parts.get(label.split("[")[0], 0.0) + total
        parts["other"] = wall_s - sum(parts.values())
        detail = {name: {"calls": int(n), "s": round(total, 2)} for name, (n, total) in sorted(self.totals.items())}
        return {"by_part_s": {name: round(total, 2) for name, total in parts.items()}, "detail": detail}


def _instrument(pipeline: Any, clock: _Clock) -> None:
    """Time the pipeline's parts through public hooks: transformer forwards by token count (one per guidance
    branch and step), VAE encodes and decodes by video size, text and image encodings (the text encoder's include
    moving it onto the GPU and off; cache hits count as calls)."""
    started: list[float] = []

    def before(module: Any, args: tuple, kwargs: dict[str, Any]) -> None:
        started.append(time.perf_counter())

    def after(module: Any, args: tuple, kwargs: dict[str, Any], output: Any) -> None:
        frames, height, width = (kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]).shape[2:]
        tokens = frames * (height // module.config.patch_size[1]) * (width // module.config.patch_size[2])
        _sync(clock.device)
        clock.add(f"transformer[{tokens} tokens]", time.perf_counter() - started.pop())

    for model in (pipeline.transformer, pipeline.transformer_2):
        if model is not None:
            model.register_forward_pre_hook(before, with_kwargs=True)
            model.register_forward_hook(after, with_kwargs=True)
    factor = pipeline.vae_scale_factor_spatial

    def video_size(name: str, tensor: torch.Tensor, latent: bool) -> str:
        frames, height, width = tensor.shape[2:]
        if latent:  # the decoded video's size
            frames, height, width = 4 * (frames - 1) + 1, height * factor, width * factor
        return f"{name}[{frames}x{height}x{width}]"

    vae = pipeline.vae
    vae.encode = clock.wrap(lambda *a, **k: video_size("vae_encode", (a or [*k.values()])[0], False), vae.encode)
    vae.decode = clock.wrap(lambda *a, **k: video_size("vae_decode", (a or [*k.values()])[0], True), vae.decode)
    pipeline.text_encoder.encode = clock.wrap(lambda *a, **k: "text_encoder", pipeline.text_encoder.encode)
    if pipeline.image_encoder is not None:
        pipeline.image_encoder.encode = clock.wrap(lambda *a, **k: "image_encoder", pipeline.image_encoder.encode)


def measure_cascade(args: argparse.Namespace, device: torch.device, deadline: float) -> dict[str, Any]:
    """Part 2: the cut dialogue job through the whole cascade with random full-size parts."""
    import codirector
    from codirector.faces import haar_cascade
    from codirector.generator.backends.dit.audio_features import make_audio_encoder
    from codirector.generator.backends.dit.pipeline import AudioConditioning, DitPipeline
    from codirector.generator.registry import register_backend

    haar_cascade("haarcascade_frontalface_default.xml")  # keyframe scoring and gating need them (opencv < 5)
    workdir = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    report: dict[str, Any] = {"tokenizer": "tiny.py's WordLevel tokenizer in place of UMT5's (the text encoder "
                              "still runs on 512 padded tokens)", "notes": []}  # fmt: skip
    started = time.perf_counter()
    if args.plan:
        planned, report["job"] = read_plan(Path(args.plan)), f"plan file {args.plan}"
    else:
        planned = make_plan(args.duration_s, workdir)
        report["job"] = f"examples/dialogue/job.yaml cut to {args.duration_s} s, offline director"
    report["plan_s"] = round(time.perf_counter() - started, 2)
    plan = fast_plan(planned, args.steps, *RENDER_SIZE["tiny" if args.tiny else "full"])
    report.update(
        video_s=round(plan.duration_s, 3), fps=plan.fps, num_characters=len(plan.characters),
        num_segments=len(plan.segments), steps_per_stage=args.steps, low_res=plan.stages.low_res.model_dump(),
        high_res=plan.stages.high_res.model_dump(),
        guidance={name: {k: v for k, v in getattr(plan.stages, name).model_dump().items() if k.endswith("scale")}
                  for name in STAGES},
    )  # fmt: skip
    started = time.perf_counter()
    components = build_components(args.tiny, device)
    report["parameters"] = {part: sum(p.numel() for p in getattr(components, part).parameters())
                            for part in ("transformer", "text_encoder", "image_encoder", "vae")}  # fmt: skip
    encoder = make_audio_encoder(f"logmel:{components.transformer.config.audio_dim}")
    pipeline = DitPipeline(components, encoder, AudioConditioning("random", trained=False, mask_head=False),
                           device=device, dtype=torch.bfloat16)  # fmt: skip
    del components
    _sync(device)
    report.update(build_s=round(time.perf_counter() - started, 2), resident_gb=_gb(device))
    clock = _Clock(device)
    _instrument(pipeline, clock)
    PrebuiltDit.prebuilt = pipeline
    register_backend(PrebuiltDit.name, PrebuiltDit, clobber=True)

    def progress(stage: str, done: int, total: int) -> None:
        if time.perf_counter() > deadline:
            raise OutOfTime(f"stopped in stage {stage} after {done}/{total} tasks: part 2's time box was spent")

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    run_dir = workdir / "run"
    started = time.perf_counter()
    try:
        codirector.render(plan, run_dir=run_dir, backend=PrebuiltDit.name, executor="local",
                          config=codirector.Config(home=workdir / "home"), progress=progress)  # fmt: skip
        report["completed"] = True
    except (OutOfTime, *FAILURES) as error:
        report["completed"] = False
        report["notes"].append(str(error) if isinstance(error, OutOfTime) else _failure(error))
    render_s = time.perf_counter() - started
    manifest = run_dir / "manifest.json"
    stages = json.loads(manifest.read_text(encoding="utf-8"))["stages"] if manifest.is_file() else []
    report.update(render_s=round(render_s, 2), stage_s={s["name"]: round(s["duration_s"], 2) for s in stages},
                  peak_gb=_gb(device, peak=True), time_in=clock.report(render_s))  # fmt: skip
    if report["completed"]:  # one GPU held for the whole render: its wall seconds are GPU-seconds
        report["gpu_s_per_video_s"] = round(render_s / plan.duration_s, 2)
        busy = render_s - report["time_in"]["by_part_s"]["other"]
        report["model_s_per_video_s"] = round(busy / plan.duration_s, 2)  # the models' share alone
    PrebuiltDit.prebuilt = None
    del pipeline
    _free(device)
    if args.keep:
        report["workdir"] = str(workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return report


# --- main -------------------------------------------------------------------------------------------------------


def _environment(device: torch.device) -> dict[str, Any]:
    import diffusers
    import transformers

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "diffusers": diffusers.__version__, "transformers": transformers.__version__,
                            "device": str(device)}  # fmt: skip
    if device.type == "cuda":
        info.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    gpu_memory_gb=round(torch.cuda.get_device_properties(device).total_memory / GB, 1))  # fmt: skip
    else:
        info["threads"] = torch.get_num_threads()
    return info


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny configs on the CPU (checkable without a GPU)")
    parser.add_argument("--parts", default="step,cascade", help="step, cascade, or both (default)")
    parser.add_argument("--budget-s", type=float, default=480.0, help="the whole run's time box")
    parser.add_argument("--step-budget-s", type=float, default=210.0, help="part 1's share of the time box")
    parser.add_argument("--min-cascade-s", type=float, default=150.0, help="skip part 2 with less than this left")
    parser.add_argument("--stop-margin-s", type=float, default=30.0,
                        help="part 2 stops at the first task boundary past the budget minus this")  # fmt: skip
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--attention-backend", type=lambda s: [b for b in s.split(",") if b], default=[],
                        help="diffusers attention backends timed besides the default, e.g. _native_cudnn,flash",
                        )  # fmt: skip
    parser.add_argument("--duration-s", type=float, default=10.0, help="cut the dialogue job to this length")
    parser.add_argument("--steps", type=int, default=2, help="denoising steps of every cascade stage")
    parser.add_argument("--plan", help="a render_plan.json written by --write-plan (skips the director)")
    parser.add_argument("--write-plan", metavar="DIR", help="plan the cut job, write DIR/render_plan.json, exit")
    parser.add_argument("--keep", action="store_true", help="keep part 2's run folder")
    return parser


def main() -> None:
    args = _parser().parse_args()
    if args.write_plan:
        with tempfile.TemporaryDirectory() as tmp:
            path = write_plan(make_plan(args.duration_s, Path(tmp)), Path(args.write_plan))
        print(json.dumps({"render_plan": str(path)}))
        return
    if not args.tiny and not torch.cuda.is_available():
        raise SystemExit("gpu_check: torch sees no CUDA GPU; --tiny runs the CPU version")
    device = torch.device("cpu" if args.tiny else "cuda")
    started = time.perf_counter()
    end = started + args.budget_s
    parts = set(args.parts.split(","))
    report: dict[str, Any] = {"issue": 13, "tiny": args.tiny, **_environment(device)}
    if "step" in parts:
        try:
            report["denoising_step"] = measure_step(args, device, min(end, started + args.step_budget_s))
        except FAILURES as error:
            report["denoising_step"] = {"error": _failure(error)}
        _free(device)
    if "cascade" in parts:
        left = end - time.perf_counter()
        if left < args.min_cascade_s:
            report["cascade"] = {"skipped": f"{left:.0f} s of the {args.budget_s:.0f} s budget were left"}
        else:
            try:
                report["cascade"] = measure_cascade(args, device, end - args.stop_margin_s)
            except FAILURES as error:
                report["cascade"] = {"error": _failure(error)}
    report["total_s"] = round(time.perf_counter() - started, 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
