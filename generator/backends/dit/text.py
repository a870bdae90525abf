"""Prompt embeddings for the dit backend: Wan's UMT5 encoder from a checkpoint folder, or a tiny random T5.

Wan conditions on up to 512 UMT5 token embeddings through text cross-attention; prompts are padded with zeros to
that length, as diffusers' Wan pipelines do. The tiny encoder (for tests and benchmarks) reads UTF-8 bytes as
token ids, so it needs no tokenizer files.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

__all__ = ["TextEncoder"]

MAX_TOKENS = 512


class TextEncoder:
    """prompt -> embeddings (1, max_tokens, text_dim), cached per prompt."""

    def __init__(self, model: torch.nn.Module, tokenize: object, max_tokens: int = MAX_TOKENS) -> None:
        self.model = model.eval()
        self.tokenize = tokenize
        self.max_tokens = max_tokens
        self.encode = functools.lru_cache(maxsize=64)(self._encode)  # type: ignore[method-assign]

    @classmethod
    def tiny(cls, text_dim: int, seed: int = 0, max_tokens: int = 64) -> TextEncoder:
        from transformers import T5Config, T5EncoderModel

        torch.manual_seed(seed)
        config = T5Config(vocab_size=256, d_model=text_dim, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
        model = T5EncoderModel(config)

        def tokenize(prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
            ids = list(prompt.encode("utf-8"))[:max_tokens] or [0]
            return torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long)

        return cls(model, tokenize, max_tokens)

    @classmethod
    def from_pretrained(cls, root: Path, *, device: str = "cpu", dtype: torch.dtype = torch.bfloat16) -> TextEncoder:
        from transformers import AutoTokenizer, UMT5EncoderModel

        tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer", local_files_only=True)
        model = UMT5EncoderModel.from_pretrained(root / "text_encoder", torch_dtype=dtype, local_files_only=True)

        def tokenize(prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
            tokens = tokenizer([prompt], max_length=MAX_TOKENS, truncation=True, return_tensors="pt")
            if tokens.input_ids.shape[1] == 0:  # an empty negative prompt: one end-of-text token, as UMT5 gives
                ids = torch.tensor([[tokenizer.eos_token_id or 0]])
                return ids.to(device), torch.ones_like(ids).to(device)
            return tokens.input_ids.to(device), tokens.attention_mask.to(device)

        return cls(model.to(device), tokenize)

    @torch.no_grad()
    def _encode(self, prompt: str) -> torch.Tensor:
        ids, mask = self.tokenize(prompt)  # type: ignore[operator]
        hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        length = int(mask.sum())
        padded = torch.zeros(1, self.max_tokens, hidden.shape[-1], dtype=hidden.dtype)
        padded[:, :length] = hidden[:, :length].cpu()
        return padded
