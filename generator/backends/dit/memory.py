"""Memory preflight for the `dit` backend: refuse a checkpoint that cannot fit before tens of GB are loaded.

`component_parameters` counts each part's parameters by building it on the meta device from its config.json (no
weight is read), `estimate_memory` turns the counts into the peak accelerator and host (CPU RAM) bytes of one
offload mode, and `check_fits` raises `ConfigError` with the table and the `--backend-option` that would fit.
Sizes are counted in bytes and shown in GB (10^9 bytes), the one unit printed here; the fixed reserves are
chosen in GiB (2^30 bytes) and say so.

Formulas (b: the transformer's bytes per value, 2 for bf16; every working set times SAFETY_FACTOR = 1.25 for the
caching allocator's block rounding and fragmentation and cuBLAS/attention workspaces, which a count of live
tensors does not see). The counts were checked against live-storage traces of diffusers 0.42's modules
(tests/test_dit_memory.py repeats them: the published VAE on fake tensors, our transformer at Wan 14B's proportions
and reduced width run for real; the CPU runs RMSNorm unfused, so these traces bound CUDA's fused kernel from above):

- Transformer, one forward of the guidance batch of 1 (each guidance branch is its own forward). Tokens
  L = latent_frames * (height / 8 / p_h) * (width / 8 / p_w), latent_frames = (num_frames - 1) // 4 + 1, width
  D = heads * head_dim. Blocks run one after another, so the peak is one block's:
  L * max(8*D*b + 12*D, 2*D*b + 2*ffn_dim*b + 4*D). The attention phase holds the residual stream, its
  normalised copy, q, k, v, the attention output and the audio attention's accumulator and gated output (8
  D-wide tensors in the model dtype) plus three float32 D-wide temporaries (the blocks normalise in float32, the
  q/k RMSNorm upcasts, rotary embedding works in float32); a memory-efficient attention keeps no L x L scores.
  The FFN phase holds the residual, its normalised copy, the ffn_dim-wide up-projection and its GELU, and one
  float32 copy for the adaLN modulation. Added once: the float32 rotary tables (L * head_dim * 8), the context
  (512 text + 257 image tokens per image, with its k and v), the audio tokens, L * (audio tokens) * (1 + b)
  for the audio window (a mask and its additive bias, or the windows' gathered keys) and the latents in and out.
- VAE (float32), decode: the Wan VAE decodes one latent frame (4 video frames) at a time with a 2-frame causal
  cache, so its working set does not grow with the clip: 203 * base_dim bytes per output pixel (19.5 kB at
  base_dim 96, traced), plus the output video twice (torch.cat appends frames). Encode (the condition video of
  num_frames): 158 * base_dim bytes per pixel plus the input video. With tiling (diffusers' enable_tiling
  defaults: 256-pixel tiles every 192 pixels, only when a side exceeds 256) the per-pixel term covers one tile,
  and every tile's output is kept until blending: (sum of tile areas / frame area + 2) videos for decode, + 1 for
  encode.
- Text encoder (umt5-xxl) and image encoder (CLIP ViT-H/14, float32), per encoding of T tokens:
  T * (6 * d + 3 * d_ff) * b + 3 * heads * T^2 * 4 (eager attention scores), under 2 % of their weights.
- Accelerator reserve: 1 GiB for the CUDA context and the allocator. Host reserve: 2 GiB for the interpreter,
  torch and the CUDA libraries, plus the decoded clip twice in float32.

Offload modes (peak on the accelerator = the largest phase + the reserve):
- "none": transformer(s), image encoder and VAE resident; the text encoder visits only to encode prompts, so a
  phase is the resident weights + max(text encoder weights + its working set, transformer, VAE working sets).
- "model" (diffusers' enable_model_cpu_offload): one component at a time: max(weights + working set).
- "group" (apply_group_offloading of the transformer, num_blocks_per_group=1, use_stream=True: the running block
  and the prefetched next one, plus the non-block parameters) and model offload for the rest.
Host RAM: every component's weights, since they are loaded on the CPU before any moves ("none" peaks there, the
offload modes keep them there). "group" runs with low_cpu_mem_usage=True, so diffusers pins each group as it
streams instead of a pinned copy of the whole transformer up front (which would need its weights twice).
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from codirector.errors import ConfigError
from codirector.generator.backends.dit.checkpoint import (
    FOLDER_FIX,
    RESTORE_FIX,
    index_parts,
    library_class,
    read_json,
)
from codirector.generator.backends.dit.published import IMAGE_TOKENS

__all__ = [
    "OFFLOAD_MODES",
    "ComponentMemory",
    "MemoryEstimate",
    "Offload",
    "available_memory",
    "check_fits",
    "component_parameters",
    "estimate_memory",
    "format_table",
    "preflight",
    "transformer_working_bytes",
    "vae_working_bytes",
]

logger = logging.getLogger(__name__)

Offload = Literal["none", "model", "group"]
OFFLOAD_MODES: tuple[Offload, ...] = ("none", "model", "group")

GB = 10**9
GIB = 2**30
SAFETY_FACTOR = 1.25
ACCELERATOR_RESERVE_BYTES = 1 * GIB  # CUDA context + caching allocator headroom
HOST_RESERVE_BYTES = 2 * GIB  # interpreter, torch, CUDA runtime libraries
TEXT_TOKENS = 512  # Wan's text context (diffusers' max_sequence_length)
FLOAT32 = 4
# Every published Wan I2V folder has these encoders and VAE; their working sets are small beside their weights.
_TEXT_ENCODER = (4096, 10240, 64)  # umt5-xxl d_model, d_ff, heads
_IMAGE_ENCODER = (1280, 5120, 16)  # CLIP ViT-H/14 hidden, intermediate, heads
_VAE_BASE_DIM = 96
_VAE_DECODE_BYTES_PER_PIXEL = 203 * _VAE_BASE_DIM  # traced: 19,476 per output pixel, any clip length
_VAE_ENCODE_BYTES_PER_PIXEL = 158 * _VAE_BASE_DIM  # traced: 15,093
_VAE_TILE, _VAE_TILE_STRIDE = 256, 192  # AutoencoderKLWan's enable_tiling defaults, pixels
_PARTS = ("transformer", "transformer_2", "text_encoder", "image_encoder", "vae")
_REQUIRED = ("transformer", "text_encoder", "vae")
_PHASES = {
    "transformer": "denoising: transformer", "transformer_2": "denoising: transformer_2",
    "text_encoder": "encoding prompts: text_encoder", "image_encoder": "encoding images: image_encoder",
    "vae": "VAE encode/decode",
}  # fmt: skip


# --- parameter counts -------------------------------------------------------------------------------------------


def _build_on_meta(part: str, library: str, class_name: str, folder: Path, adapter_config: Mapping[str, Any]) -> Any:
    """The part's model with every tensor on the meta device, from its config alone."""
    import torch

    kind = library_class(library, class_name, part=part, root=folder.parent)
    with torch.device("meta"):
        if part.startswith("transformer"):
            from codirector.generator.backends.dit.model import AudioWanTransformer3DModel

            # our subclass in place of WanTransformer3DModel, so the audio (and mask) modules are counted
            config = read_json(folder / "config.json", f"dit weights {folder.parent} {part}/")
            return AudioWanTransformer3DModel.from_config({**config, **adapter_config})
        if library == "diffusers":
            return kind.from_config(kind.load_config(folder))
        return kind(kind.config_class.from_pretrained(folder))


def component_parameters(root: str | Path, adapter_config: Mapping[str, Any] | None = None) -> dict[str, int]:
    """Parameters of each model part of a diffusers-format Wan folder, from its JSON configs (no weight is read).

    Args:
        root: the folder (model_index.json, and config.json in transformer/, text_encoder/, vae/ and, where
            model_index.json names them, transformer_2/ and image_encoder/).
        adapter_config: our adapter's audio config (`model._read_adapter_config`); None builds the default audio
            modules, which are counted as part of the transformer.

    Returns:
        part name -> parameter count, for the parts present among transformer, transformer_2, text_encoder,
        image_encoder, vae.

    Raises:
        ConfigError: model_index.json or a part's config.json is missing or unreadable, or names an unknown class.

    Example:
        >>> from codirector.generator.backends.dit.published import published_configs, write_config_folder
        >>> root = write_config_folder(tempfile.mkdtemp(), published_configs("Wan2.1-I2V-14B-480P-Diffusers"))
        >>> component_parameters(root)
        {'transformer': 20761914176, 'text_encoder': 5680910336, 'image_encoder': 632076800, 'vae': 126892531}
    """
    root = Path(root).expanduser()
    source = f"dit weights {root}"
    index = read_json(root / "model_index.json", source)
    parts = {name: value for name, value in index_parts(index).items() if name in _PARTS}
    for part in _REQUIRED:
        if part not in parts:
            raise ConfigError(source, f"model_index.json names no {part}", FOLDER_FIX)
    counts = {}
    for part, (library, class_name) in parts.items():
        folder = root / part
        if not (folder / "config.json").is_file():
            raise ConfigError(source, f"has no {part}/config.json (model_index.json names {class_name})", FOLDER_FIX)
        try:
            model = _build_on_meta(part, str(library), str(class_name), folder, adapter_config or {})
        except (ValueError, TypeError, OSError) as error:
            raise ConfigError(f"{folder / 'config.json'}", f"does not build a {class_name} ({error})",
                              RESTORE_FIX) from None  # fmt: skip
        counts[part] = sum(parameter.numel() for parameter in model.parameters())
    return counts


def _transformer_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The transformer config with our model's defaults filled in (audio arguments included)."""
    from codirector.generator.backends.dit.model import AudioWanTransformer3DModel

    signature = inspect.signature(AudioWanTransformer3DModel.__init__).parameters.values()
    defaults = {p.name: p.default for p in signature if p.default is not inspect.Parameter.empty}
    return {**defaults, **{key: value for key, value in config.items() if key in defaults}}


def _block_parameters(config: Mapping[str, Any]) -> int:
    """Parameters of one transformer block (built on the meta device: a one-block model of the same config)."""
    import torch

    from codirector.generator.backends.dit.model import AudioWanTransformer3DModel

    with torch.device("meta"):
        model = AudioWanTransformer3DModel(**{**_transformer_settings(config), "num_layers": 1, "mask_layers": ()})
    return sum(parameter.numel() for parameter in model.blocks[0].parameters())


# --- working sets -----------------------------------------------------------------------------------------------


def transformer_working_bytes(
    config: Mapping[str, Any], *, height: int, width: int, num_frames: int, dtype_bytes: int, context_parallel: int = 1
) -> int:
    """Accelerator bytes one transformer forward needs beyond its weights (module docstring formula, safety
    factor not applied), on each of `context_parallel` ranks that share the clip's tokens by latent frames."""
    c = _transformer_settings(config)
    b, dim, head_dim = dtype_bytes, c["num_attention_heads"] * c["attention_head_dim"], c["attention_head_dim"]
    latent_frames, latent_h, latent_w = (num_frames - 1) // 4 + 1, height // 8, width // 8
    # a rank holds its share of the frames (Ulysses swaps tokens for heads: the same share of q, k, v)
    tokens = -(-latent_frames // context_parallel) * (latent_h // c["patch_size"][1]) * (latent_w // c["patch_size"][2])
    block = tokens * max(8 * dim * b + 3 * FLOAT32 * dim, 2 * dim * b + 2 * c["ffn_dim"] * b + FLOAT32 * dim)
    image_tokens = 0 if c["image_dim"] is None else IMAGE_TOKENS * (2 if c["pos_embed_seq_len"] else 1)
    context = (TEXT_TOKENS + image_tokens) * dim * b * 3 + TEXT_TOKENS * c["text_dim"] * b
    audio_tokens = latent_frames * c["audio_tokens_per_frame"]
    audio = audio_tokens * dim * b + tokens * audio_tokens * (1 + b)  # audio tokens, their windows
    rope = tokens * head_dim * 2 * FLOAT32
    latents = (c["in_channels"] + c["out_channels"]) * latent_frames * latent_h * latent_w * FLOAT32
    return block + context + audio + rope + latents


def _tile_area_ratio(height: int, width: int) -> float:
    def extents(size: int) -> list[int]:
        return [min(_VAE_TILE, size - start) for start in range(0, size, _VAE_TILE_STRIDE)]

    return sum(extents(height)) * sum(extents(width)) / (height * width)


def vae_working_bytes(*, height: int, width: int, num_frames: int, tiling: bool) -> int:
    """Accelerator bytes of the VAE's larger pass (decode, or encode of the condition video) beyond its weights,
    float32 (module docstring formula, safety factor not applied)."""
    video = 3 * num_frames * height * width * FLOAT32
    if tiling and (height > _VAE_TILE or width > _VAE_TILE):
        tile, ratio = min(height, _VAE_TILE) * min(width, _VAE_TILE), _tile_area_ratio(height, width)
        decode = _VAE_DECODE_BYTES_PER_PIXEL * tile + (ratio + 2) * video
        encode = _VAE_ENCODE_BYTES_PER_PIXEL * tile + (ratio + 1) * video
    else:
        decode = _VAE_DECODE_BYTES_PER_PIXEL * height * width + 2 * video
        encode = _VAE_ENCODE_BYTES_PER_PIXEL * height * width + video
    return int(max(decode, encode))


def _encoder_working_bytes(shape: tuple[int, int, int], tokens: int, dtype_bytes: int) -> int:
    width, ffn, heads = shape
    return tokens * (6 * width + 3 * ffn) * dtype_bytes + 3 * heads * tokens**2 * FLOAT32


# --- the estimate -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ComponentMemory:
    """One row of the estimate.

    Attributes:
        name: the part (transformer, transformer_2, text_encoder, image_encoder, vae).
        parameters: its parameter count.
        dtype_bytes: bytes per weight as it runs (the VAE and the image encoder run in float32).
        weights_bytes: all its weights.
        working_bytes: what its forward needs on the accelerator beyond the weights (safety factor applied).
        placement: where its weights sit during generation under the estimate's offload mode.
        accelerator_bytes: what it occupies on the accelerator while it runs (its resident share + working set).
    """

    name: str
    parameters: int
    dtype_bytes: int
    weights_bytes: int
    working_bytes: int
    placement: str
    accelerator_bytes: int


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak accelerator and host bytes of one configuration; `components` are the table's rows."""

    components: tuple[ComponentMemory, ...]
    offload: Offload
    height: int
    width: int
    num_frames: int
    vae_tiling: bool
    dtype_bytes: int
    peak_accelerator_bytes: int
    peak_phase: str
    host_bytes: int
    parameters: Mapping[str, int]
    transformer_config: Mapping[str, Any]
    context_parallel: int = 1

    def with_options(self, *, offload: Offload, vae_tiling: bool) -> MemoryEstimate:
        """The same checkpoint and clip under another offload mode or tiling."""
        return estimate_memory(
            self.parameters, dtype_bytes=self.dtype_bytes, offload=offload, height=self.height, width=self.width,
            num_frames=self.num_frames, vae_tiling=vae_tiling, transformer_config=self.transformer_config,
            context_parallel=self.context_parallel,
        )  # fmt: skip


def estimate_memory(
    parameters: Mapping[str, int],
    *,
    dtype_bytes: int,
    offload: Offload,
    height: int,
    width: int,
    num_frames: int,
    vae_tiling: bool,
    transformer_config: Mapping[str, Any],
    context_parallel: int = 1,
) -> MemoryEstimate:
    """Estimate the peak accelerator and host memory of generating one clip (formulas: module docstring).

    Args:
        parameters: `component_parameters`' counts.
        dtype_bytes: bytes per value of the transformer(s) and text encoder (2 for bfloat16).
        offload: "none", "model" or "group".
        height, width: the clip's size in pixels (multiples of 16); num_frames: 4k + 1.
        vae_tiling: decode (and encode) with diffusers' VAE tiling.
        transformer_config: the transformer's config.json (with the adapter's audio config merged in).
        context_parallel: ranks sharing each clip's tokens (`context_parallel.py`); the accelerator figures are
            rank 0's (it also runs the VAE and encoders), the host figure covers every rank's copy of the weights.

    Example:
        >>> from codirector.generator.backends.dit.published import published_configs, write_config_folder
        >>> configs = published_configs("Wan2.1-I2V-14B-480P-Diffusers")
        >>> counts = component_parameters(write_config_folder(tempfile.mkdtemp(), configs))
        >>> estimate = estimate_memory(counts, dtype_bytes=2, offload="group", height=480, width=832, num_frames=81,
        ...                            vae_tiling=True, transformer_config=configs["transformer"])
        >>> round(estimate.peak_accelerator_bytes / 1e9, 1)  # GB
        12.8
    """
    if offload not in OFFLOAD_MODES:
        raise ConfigError("backend 'dit' option offload", f"must be one of {', '.join(OFFLOAD_MODES)}, not {offload!r}",
                          "Use offload=none, offload=model or offload=group.")  # fmt: skip
    if height <= 0 or width <= 0 or height % 16 or width % 16 or num_frames < 1 or (num_frames - 1) % 4:
        raise ValueError(f"height and width must be positive multiples of 16 and num_frames 4k + 1, got "
                         f"{height}x{width}, {num_frames} frames")  # fmt: skip
    size = dict(height=height, width=width, num_frames=num_frames)
    transformers = [name for name in ("transformer", "transformer_2") if name in parameters]
    transformer_working = transformer_working_bytes(transformer_config, **size, dtype_bytes=dtype_bytes,
                                                    context_parallel=context_parallel)  # fmt: skip
    working = dict.fromkeys(transformers, int(SAFETY_FACTOR * transformer_working))
    working["vae"] = int(SAFETY_FACTOR * vae_working_bytes(**size, tiling=vae_tiling))
    working["text_encoder"] = int(SAFETY_FACTOR * _encoder_working_bytes(_TEXT_ENCODER, TEXT_TOKENS, dtype_bytes))
    settings = _transformer_settings(transformer_config)
    num_images = 2 if settings["pos_embed_seq_len"] else 1
    image_working = num_images * _encoder_working_bytes(_IMAGE_ENCODER, IMAGE_TOKENS, FLOAT32)
    working["image_encoder"] = int(SAFETY_FACTOR * image_working)
    dtypes = {name: FLOAT32 if name in ("vae", "image_encoder") else dtype_bytes for name in parameters}
    weights = {name: count * dtypes[name] for name, count in parameters.items()}

    on_device = dict(weights)  # weights on the accelerator while the component runs
    if offload == "group":
        block = _block_parameters(transformer_config) * dtype_bytes
        num_layers = settings["num_layers"]
        for name in transformers:  # two blocks (running, prefetched) + the non-block parameters
            on_device[name] = 2 * block + weights[name] - num_layers * block
    resident = sum(weights[name] for name in (*transformers, "image_encoder", "vae") if name in weights)
    visits = "visits the accelerator to encode prompts"
    placement = {
        "none": {name: visits if name == "text_encoder" else "resident" for name in parameters},
        "model": dict.fromkeys(parameters, "moved in while it runs (model offload)"),
        "group": {name: "2 blocks + non-block parameters (group offload)" if name in transformers
                  else "moved in while it runs (model offload)" for name in parameters},
    }[offload]  # fmt: skip

    def phase_bytes(name: str) -> int:
        if offload == "none":  # the resident parts hold their weights through every phase
            return resident + working[name] + (weights[name] if name == "text_encoder" else 0)
        return on_device[name] + working[name]

    phases = {_PHASES[name]: phase_bytes(name) for name in parameters}
    peak_phase, peak = max(phases.items(), key=lambda item: item[1])
    video = 3 * num_frames * height * width * FLOAT32
    rows = tuple(
        ComponentMemory(name, count, dtypes[name], weights[name], working[name], placement[name],
                        on_device[name] + working[name])
        for name, count in parameters.items()
    )  # fmt: skip
    return MemoryEstimate(
        components=rows, offload=offload, height=height, width=width, num_frames=num_frames, vae_tiling=vae_tiling,
        dtype_bytes=dtype_bytes, peak_accelerator_bytes=peak + ACCELERATOR_RESERVE_BYTES, peak_phase=peak_phase,
        host_bytes=context_parallel * sum(weights.values()) + 2 * video + HOST_RESERVE_BYTES,
        parameters=dict(parameters), transformer_config=dict(transformer_config), context_parallel=context_parallel,
    )  # fmt: skip


# --- reporting and the preflight --------------------------------------------------------------------------------


def _gb(value: float) -> str:
    return f"{value / GB:.1f}"


def format_table(estimate: MemoryEstimate) -> str:
    """The estimate as a text table for logs and errors; sizes in GB (10^9 bytes)."""
    dtype = {1: "8-bit", 2: "16-bit", 4: "float32"}
    lines = [
        f"dit memory, {estimate.width}x{estimate.height}, {estimate.num_frames} frames, offload={estimate.offload}, "
        f"VAE tiling {'on' if estimate.vae_tiling else 'off'}"
        + (f", rank 0 of {estimate.context_parallel} context-parallel ranks" if estimate.context_parallel > 1 else "")
        + " (GB = 10^9 bytes)",
        f"{'component':<14} {'params (B)':>10} {'dtype':>8} {'weights GB':>10} {'working GB':>10}  placement",
    ]
    for row in estimate.components:
        lines.append(f"{row.name:<14} {row.parameters / 1e9:>10.2f} {dtype.get(row.dtype_bytes, '?'):>8} "
                     f"{_gb(row.weights_bytes):>10} {_gb(row.working_bytes):>10}  {row.placement}")  # fmt: skip
    lines.append(f"{'reserve':<14} {'':>10} {'':>8} {'':>10} {_gb(ACCELERATOR_RESERVE_BYTES):>10}  CUDA context and "
                 "allocator (1 GiB)")  # fmt: skip
    lines.append(f"peak on the accelerator: {_gb(estimate.peak_accelerator_bytes)} GB ({estimate.peak_phase}); "
                 f"host RAM: {_gb(estimate.host_bytes)} GB")  # fmt: skip
    return "\n".join(lines)


def _fits(estimate: MemoryEstimate, accelerator_bytes: int | None, host_bytes: int | None) -> bool:
    return (accelerator_bytes is None or estimate.peak_accelerator_bytes <= accelerator_bytes) and (
        host_bytes is None or estimate.host_bytes <= host_bytes
    )


def check_fits(estimate: MemoryEstimate, *, accelerator_bytes: int | None, host_bytes: int | None) -> None:
    """Raise ConfigError when the estimate exceeds the accelerator's or the host's free memory (None: unchecked).

    The message holds the table, the peak, and the first option that fits (less offloading first, then VAE
    tiling), or says that nothing fits and to lower the resolution or the frames per clip.
    """
    if _fits(estimate, accelerator_bytes, host_bytes):
        return
    short = []
    if accelerator_bytes is not None and estimate.peak_accelerator_bytes > accelerator_bytes:
        short.append(f"about {_gb(estimate.peak_accelerator_bytes)} GB on the accelerator, which has "
                     f"{_gb(accelerator_bytes)} GB free")  # fmt: skip
    if host_bytes is not None and estimate.host_bytes > host_bytes:
        short.append(f"about {_gb(estimate.host_bytes)} GB of host RAM, which has {_gb(host_bytes)} GB available")
    options = [(mode, tiling) for tiling in dict.fromkeys((estimate.vae_tiling, True)) for mode in OFFLOAD_MODES]
    options.remove((estimate.offload, estimate.vae_tiling))
    for mode, tiling in options:
        other = estimate.with_options(offload=mode, vae_tiling=tiling)
        if _fits(other, accelerator_bytes, host_bytes):
            flags = f"offload={mode}" + (" vae_tiling=true" if tiling and not estimate.vae_tiling else "")
            fix = (f"Pass --backend-option {flags}: peak {_gb(other.peak_accelerator_bytes)} GB on the accelerator, "
                   f"{_gb(other.host_bytes)} GB host RAM")  # fmt: skip
            break
    else:
        least = estimate.with_options(offload="group", vae_tiling=True)  # the least accelerator memory
        lean = estimate.with_options(offload="model", vae_tiling=True)  # the least host RAM
        fix = (f"No offload mode fits: offload=group with VAE tiling needs {_gb(least.peak_accelerator_bytes)} GB on "
               f"the accelerator and {_gb(least.host_bytes)} GB host RAM, offload=model "
               f"{_gb(lean.peak_accelerator_bytes)} and {_gb(lean.host_bytes)} GB; lower the resolution (height, "
               "width) or the frames per clip (--backend-option max_frames=...), or free host RAM")  # fmt: skip
    raise ConfigError("backend 'dit' memory", "needs " + " and ".join(short), f"{fix}.\n{format_table(estimate)}")


def available_memory(device: str) -> tuple[int | None, int | None]:
    """(free accelerator bytes, or None on the CPU; available host bytes, or None where unknown)."""
    accelerator = None
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            accelerator = torch.cuda.mem_get_info(torch.device(device))[0]
    host = None
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                host = int(line.split()[1]) * 1024
    elif hasattr(os, "sysconf") and "SC_AVPHYS_PAGES" in os.sysconf_names:
        host = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return accelerator, host


def preflight(
    root: str | Path, *, device: str, dtype_bytes: int, offload: Offload, height: int, width: int, num_frames: int,
    vae_tiling: bool, adapter_config: Mapping[str, Any] | None = None, accelerator_budget_bytes: int | None = None,
    context_parallel: int = 1,
) -> MemoryEstimate:  # fmt: skip
    """Estimate a folder's memory for one clip, log the table, and refuse (ConfigError) before anything loads if
    it does not fit this machine (or `accelerator_budget_bytes`, when given, in place of the GPU's free memory).

    `adapter_config` is the audio adapter's config, or {"with_audio": False} for a stock model without one."""
    root = Path(root).expanduser()
    counts = component_parameters(root, adapter_config)
    config = {**read_json(root / "transformer" / "config.json", f"dit weights {root}"), **(adapter_config or {})}
    estimate = estimate_memory(counts, dtype_bytes=dtype_bytes, offload=offload, height=height, width=width,
                               num_frames=num_frames, vae_tiling=vae_tiling, transformer_config=config,
                               context_parallel=context_parallel)  # fmt: skip
    logger.info("%s", format_table(estimate))
    accelerator, host = available_memory(device)
    if accelerator_budget_bytes is not None:
        accelerator = accelerator_budget_bytes
    check_fits(estimate, accelerator_bytes=accelerator, host_bytes=host)
    return estimate
