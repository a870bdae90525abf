"""Prompt and image embeddings for the dit backend, computed exactly as diffusers' Wan image-to-video pipeline does.

Text: the prompt cleaned with diffusers' own `prompt_clean` (ftfy and whitespace), tokenised to 512 tokens, run
through the UMT5 encoder with its attention mask, cut to the prompt's length and padded with zeros back to 512
(`WanImageToVideoPipeline._get_t5_prompt_embeds`). Images: the CLIP vision encoder's penultimate hidden states
(`WanImageToVideoPipeline.encode_image`), one image for Wan2.1 I2V and two (first and last frame) for FLF2V.
Both are cached per input, so a prompt shared by many clips is encoded once.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["ImageEncoder", "TextEncoder"]

MAX_TOKENS = 512  # Wan's text context length (diffusers' max_sequence_length)


class TextEncoder:
    """prompt -> embeddings (1, max_tokens, text_dim) on the CPU, cached per prompt.

    Args:
        model: the UMT5 encoder (any transformers encoder with `last_hidden_state`).
        tokenizer: its tokenizer.
        before, after: called around each encoding (the pipeline moves the encoder onto the accelerator and off
            again, so that it does not sit there while the transformer runs).
    """

    def __init__(
        self, model: torch.nn.Module, tokenizer: Any, max_tokens: int = MAX_TOKENS,
        before: Callable[[], torch.device] | None = None, after: Callable[[], None] | None = None,
    ) -> None:  # fmt: skip
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self._before = before
        self._after = after
        self.encode = functools.lru_cache(maxsize=256)(self._encode)  # type: ignore[method-assign]

    @torch.no_grad()
    def _encode(self, prompt: str) -> torch.Tensor:
        from diffusers.pipelines.wan.pipeline_wan_i2v import prompt_clean

        device = self._before() if self._before else next(self.model.parameters()).device
        try:
            tokens = self.tokenizer([prompt_clean(prompt)], padding="max_length", max_length=self.max_tokens,
                                    truncation=True, add_special_tokens=True, return_attention_mask=True,
                                    return_tensors="pt")  # fmt: skip
            length = int(tokens.attention_mask.gt(0).sum())
            hidden = self.model(tokens.input_ids.to(device), tokens.attention_mask.to(device)).last_hidden_state
        finally:
            if self._after:
                self._after()
        padded = torch.zeros(1, self.max_tokens, hidden.shape[-1], dtype=hidden.dtype)
        padded[:, :length] = hidden[:, :length].cpu()
        return padded


class ImageEncoder:
    """RGB uint8 frames -> CLIP image embeddings (num_images, tokens, image_dim) on the CPU, cached.

    `num_images` is what the transformer takes: 1 (Wan2.1 I2V: the first frame) or 2 (FLF2V: first and last; a
    clip with only a first frame gives it twice).
    """

    def __init__(
        self, model: torch.nn.Module, processor: Any, num_images: int,
        before: Callable[[], torch.device] | None = None, after: Callable[[], None] | None = None,
    ) -> None:  # fmt: skip
        if num_images not in (1, 2):
            raise ValueError(f"num_images must be 1 (I2V) or 2 (FLF2V), got {num_images}")
        self.model = model.eval()
        self.processor = processor
        self.num_images = num_images
        self._before = before
        self._after = after
        self._cache: dict[bytes, torch.Tensor] = {}

    @torch.no_grad()
    def encode(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """Embeddings of the first frame (I2V), or of the first and last (FLF2V)."""
        if not frames:
            raise ValueError("image embeddings need at least one frame")
        from PIL import Image

        chosen = [frames[0]] if self.num_images == 1 else [frames[0], frames[-1]]
        key = hashlib.sha256(b"".join(np.ascontiguousarray(f).tobytes() + repr(f.shape).encode() for f in chosen))
        if key.digest() in self._cache:
            return self._cache[key.digest()]
        images = [Image.fromarray(np.ascontiguousarray(frame)) for frame in chosen]
        device = self._before() if self._before else next(self.model.parameters()).device
        try:
            pixels = self.processor(images=images, return_tensors="pt").to(device)
            hidden = self.model(**pixels, output_hidden_states=True).hidden_states[-2]  # n tokens image_dim
        finally:
            if self._after:
                self._after()
        # (num_images, tokens, image_dim): FLF2V's image embedder itself folds the two images into one sequence
        embeddings = hidden.cpu()
        if len(self._cache) > 64:
            self._cache.clear()
        self._cache[key.digest()] = embeddings
        return embeddings
