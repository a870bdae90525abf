"""The JSON configs of the published Wan2.1 14B image-to-video folders, to estimate a checkpoint before downloading
it (`memory.py`, `benchmarks/bench_dit_memory.py`, `benchmarks/gpu_check.py`) and to test the estimate.

Transcribed from diffusers' scripts/convert_wan_to_diffusers.py (the transformer configs) and the published folders'
parts: UMT5-XXL, CLIP ViT-H/14 (laion/CLIP-ViT-H-14-laion2B-s32B-b79K), the Wan VAE.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["IMAGE_TOKENS", "published_configs", "write_config_folder"]

IMAGE_TOKENS = 257  # CLIP ViT-H/14 at 224: 16 x 16 patches + the class token

_WAN21_TRANSFORMER = dict(
    _class_name="WanTransformer3DModel", patch_size=[1, 2, 2], num_attention_heads=40, attention_head_dim=128,
    in_channels=36, out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=40, cross_attn_norm=True,
    qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=1280, added_kv_proj_dim=5120, rope_max_seq_len=1024,
)  # fmt: skip
_WAN21_PARTS = dict(
    text_encoder=dict(
        architectures=["UMT5EncoderModel"], model_type="umt5", d_model=4096, d_ff=10240, d_kv=64, num_heads=64,
        num_layers=24, vocab_size=256384, feed_forward_proj="gated-gelu", relative_attention_num_buckets=32,
        relative_attention_max_distance=128, tie_word_embeddings=False,
    ),
    image_encoder=dict(
        architectures=["CLIPVisionModelWithProjection"], model_type="clip_vision_model", hidden_size=1280,
        intermediate_size=5120, num_attention_heads=16, num_hidden_layers=32, patch_size=14, image_size=224,
        projection_dim=1024, hidden_act="gelu",
    ),
    # the published file also lists latents_mean/std, which shape no parameter
    vae=dict(_class_name="AutoencoderKLWan", base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
             temperal_downsample=[False, True, True], attn_scales=[], dropout=0.0),
)  # fmt: skip
_WAN21_INDEX = dict(
    _class_name="WanImageToVideoPipeline", transformer=["diffusers", "WanTransformer3DModel"],
    text_encoder=["transformers", "UMT5EncoderModel"], tokenizer=["transformers", "T5TokenizerFast"],
    image_encoder=["transformers", "CLIPVisionModelWithProjection"],
    image_processor=["transformers", "CLIPImageProcessor"], vae=["diffusers", "AutoencoderKLWan"],
    scheduler=["diffusers", "UniPCMultistepScheduler"],
)  # fmt: skip


def published_configs(name: str) -> dict[str, dict[str, Any]]:
    """The JSON configs of a published Wan2.1 14B folder (model_index and each model part), to estimate its memory
    before downloading it. `name` is Wan2.1-I2V-14B-480P-Diffusers, -720P-Diffusers or
    Wan2.1-FLF2V-14B-720P-diffusers (480P and 720P share every config; only their weights differ)."""
    transformer = dict(_WAN21_TRANSFORMER)
    if name == "Wan2.1-FLF2V-14B-720P-diffusers":
        transformer["pos_embed_seq_len"] = 2 * IMAGE_TOKENS  # first and last frame
    elif name not in ("Wan2.1-I2V-14B-480P-Diffusers", "Wan2.1-I2V-14B-720P-Diffusers"):
        raise ValueError(f"no published configs stored for {name!r}")
    return {"model_index": dict(_WAN21_INDEX), "transformer": transformer, **_WAN21_PARTS}


def write_config_folder(root: str | Path, configs: Mapping[str, Mapping[str, Any]]) -> Path:
    """Write configs in the published layout: model_index.json at the root, <part>/config.json for each part."""
    root = Path(root)
    for part, config in configs.items():
        path = root / "model_index.json" if part == "model_index" else root / part / "config.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return root
