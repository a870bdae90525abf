"""LLM providers for the director's experts: "offline", "openai:MODEL", "transformers:PATH", or your own.

Importing this package imports no SDK: `resolve_provider` imports a provider's module (and its SDK) only when a
reference names it.

Example:
    >>> from codirector.agents.providers import OFFLINE, resolve_provider
    >>> resolve_provider("offline") is OFFLINE
    True
"""

from __future__ import annotations

from .base import (
    OFFLINE,
    AudioPart,
    ChatMessage,
    ChatModel,
    ChatResponse,
    ImagePart,
    OfflineProvider,
    Part,
    Provider,
    TextPart,
)
from .registry import known_providers, register_provider, resolve_provider

__all__ = [
    "OFFLINE",
    "AudioPart",
    "ChatMessage",
    "ChatModel",
    "ChatResponse",
    "ImagePart",
    "OfflineProvider",
    "Part",
    "Provider",
    "TextPart",
    "known_providers",
    "register_provider",
    "resolve_provider",
]
