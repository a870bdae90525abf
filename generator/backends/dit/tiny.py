"""Tiny random Wan image-to-video checkpoints with the published structure, for tests, benchmarks and CI.

Every part is the class the published `Wan2.1-I2V-14B-480P-Diffusers` folder names in its model_index.json (a
`WanTransformer3DModel` with the CLIP image branch, `AutoencoderKLWan`, `UMT5EncoderModel`, a fast T5-style
tokenizer, `CLIPVisionModelWithProjection`, `CLIPImageProcessor`, `UniPCMultistepScheduler` with flow sigmas), at
diffusers' own test sizes. `write_tiny_checkpoint` saves one with diffusers' `WanImageToVideoPipeline.save_pretrained`,
so it is a stock folder in every respect but size; the FLF2V variant sets `pos_embed_seq_len` (two image
embeddings) and the Wan2.2 variant has two experts and no image encoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from codirector.generator.backends.dit.checkpoint import WanComponents

__all__ = ["TINY_TRANSFORMER", "tiny_components", "write_tiny_checkpoint"]

TinyFamily = Literal["wan2.1-i2v", "wan2.1-flf2v", "wan2.2-i2v"]

# diffusers' own tiny Wan test config, with the I2V image branch (image_dim is the tiny CLIP's width)
TINY_TRANSFORMER: dict[str, Any] = dict(
    patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=36, out_channels=16,
    text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
    rope_max_seq_len=32, image_dim=4, added_kv_proj_dim=24,
)  # fmt: skip
_CLIP = dict(hidden_size=4, projection_dim=4, num_hidden_layers=2, num_attention_heads=2, image_size=16,
             intermediate_size=16, patch_size=4)  # fmt: skip
_CLIP_TOKENS = (16 // 4) ** 2 + 1  # patches + the class token
_WORDS = ["a", "person", "talks", "smiles", "the", "camera", "slowly", "pushes", "in", "blurry", "static"]


def _tokenizer() -> Any:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{word: i + 3 for i, word in enumerate(_WORDS)}}
    words = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    words.normalizer = normalizers.Lowercase()
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    # T5 tokenizers end every sequence with </s>; an empty prompt is then one end token, as with UMT5
    words.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=words, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def tiny_components(seed: int = 0, family: TinyFamily = "wan2.1-i2v", transformer_class: Any = None) -> WanComponents:
    """Tiny random parts of a Wan image-to-video checkpoint (float32, CPU).

    Args:
        seed: seeds every random weight.
        family: "wan2.1-i2v" (one image embedding), "wan2.1-flf2v" (two), "wan2.2-i2v" (two experts, no CLIP).
        transformer_class: the transformer class to build (default: stock `WanTransformer3DModel`).
    """
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanTransformer3DModel
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
        UMT5Config,
        UMT5EncoderModel,
    )

    kind = transformer_class or WanTransformer3DModel
    torch.manual_seed(seed)
    config = dict(TINY_TRANSFORMER)
    if family == "wan2.1-flf2v":
        config["pos_embed_seq_len"] = 2 * _CLIP_TOKENS
    if family == "wan2.2-i2v":
        config.update(image_dim=None, added_kv_proj_dim=None)
    transformer = kind(**config)
    transformer_2 = kind(**config) if family == "wan2.2-i2v" else None
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])  # fmt: skip
    text_config = UMT5Config(vocab_size=len(_WORDS) + 3, d_model=config["text_dim"], d_kv=8, d_ff=32, num_layers=1,
                             num_heads=2, relative_attention_num_buckets=8)  # fmt: skip
    text_encoder = UMT5EncoderModel(text_config).eval()
    image_encoder = image_processor = None
    if family != "wan2.2-i2v":
        image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**_CLIP)).eval()
        image_processor = CLIPImageProcessor(crop_size=16, size=16)
    # the published 480P folders' scheduler: UniPC over flow-matching sigmas, shift 3
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        num_train_timesteps=1000, flow_shift=3.0)  # fmt: skip
    return WanComponents(
        transformer=transformer, vae=vae, text_encoder=text_encoder, tokenizer=_tokenizer(), scheduler=scheduler,
        image_encoder=image_encoder, image_processor=image_processor, transformer_2=transformer_2,
        boundary_ratio=0.9 if family == "wan2.2-i2v" else None,
        image_embeddings=0 if image_encoder is None else 2 if family == "wan2.1-flf2v" else 1,
    )  # fmt: skip


def write_tiny_checkpoint(root: str | Path, family: TinyFamily = "wan2.1-i2v", seed: int = 0) -> Path:
    """Save a tiny stock checkpoint folder with diffusers' own `WanImageToVideoPipeline.save_pretrained`."""
    from diffusers import WanImageToVideoPipeline

    parts = tiny_components(seed, family)
    pipeline = WanImageToVideoPipeline(
        tokenizer=parts.tokenizer, text_encoder=parts.text_encoder, vae=parts.vae, scheduler=parts.scheduler,
        image_processor=parts.image_processor, image_encoder=parts.image_encoder, transformer=parts.transformer,
        transformer_2=parts.transformer_2, boundary_ratio=parts.boundary_ratio,
    )  # fmt: skip
    pipeline.save_pretrained(str(root))
    return Path(root)
