"""What every LLM provider implements: one chat call that may be constrained to a JSON Schema.

Experts never talk to an SDK. They build a list of `ChatMessage`s (text, image and audio parts), hand it to a
`ChatModel` with the JSON Schema of the pydantic model they expect, and parse the reply themselves
(`codirector.agents.structured`), so every provider gets the same validation and repair loop.

The `offline` provider is not a chat model: it is the `OFFLINE` marker, and experts given it use signal
analysis and rules instead of a language model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

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
    "schema_instruction",
    "with_schema_instruction",
]


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class ImagePart:
    """An image file, sent as an image_url part to models that see (`ChatModel.sees_images`)."""

    path: Path


@dataclass(frozen=True)
class AudioPart:
    """An audio file, sent as an input_audio part to models that hear (`ChatModel.hears_audio`)."""

    path: Path


Part = TextPart | ImagePart | AudioPart


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str | tuple[Part, ...]

    def text(self) -> str:
        """The message's text parts joined: what a model that neither sees nor hears receives."""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content if isinstance(part, TextPart))


@dataclass(frozen=True)
class ChatResponse:
    """One reply. `text` is the raw output, kept so a failed parse can be reported with it."""

    text: str
    model: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class ChatModel(Protocol):
    """A chat model behind any SDK or runtime.

    Attributes:
        name: "provider:model", as a user would write it; recorded with every call.
        sees_images: whether `ImagePart`s reach the model (else they are dropped and the caller sends a
            description as text instead).
        hears_audio: likewise for `AudioPart`s (else the transcript and prosody go as text).
    """

    name: str
    sees_images: bool
    hears_audio: bool

    def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> ChatResponse:
        """Run one chat completion.

        Args:
            messages: the conversation, system message first.
            json_schema: when given, the reply must be one JSON value matching it; the provider uses the most
                constrained mode its runtime supports (strict schema, schema-guided JSON mode, grammar), and
                the caller still validates.
            max_tokens: upper bound on generated tokens.
            temperature: sampling temperature; 0 for repeatable plans.
            seed: sampling seed where the runtime takes one.

        Raises:
            codirector.errors.ProviderError: the model could not be reached or refused the request.
        """
        ...


@dataclass(frozen=True)
class OfflineProvider:
    """The embedded default: no language model; experts use signal analysis and rules."""

    name: str = "offline"


OFFLINE = OfflineProvider()

Provider = ChatModel | OfflineProvider


def schema_instruction(json_schema: dict[str, Any]) -> str:
    """The instruction that carries a JSON Schema in the prompt, for runtimes that cannot constrain decoding to it.

    Providers add it themselves when they fall back below a server-enforced schema, so experts build the same
    messages whatever the runtime can do.
    """
    schema_text = json.dumps(json_schema, ensure_ascii=False, separators=(",", ":"))
    return (
        "Answer with one JSON value and nothing else: no prose, no code fences. "
        f"It must match this JSON Schema:\n{schema_text}"
    )


def with_schema_instruction(messages: Sequence[ChatMessage], json_schema: dict[str, Any]) -> list[ChatMessage]:
    """`messages` with `schema_instruction` appended to the system message (or as a new first system message).

    Example:
        >>> out = with_schema_instruction([ChatMessage("user", "hi")], {"type": "object"})
        >>> [m.role for m in out]
        ['system', 'user']
    """
    instruction = schema_instruction(json_schema)
    if messages and messages[0].role == "system":
        first = messages[0]
        if isinstance(first.content, str):
            merged = ChatMessage("system", f"{first.content}\n\n{instruction}" if first.content else instruction)
        else:
            merged = ChatMessage("system", (*first.content, TextPart(instruction)))
        return [merged, *messages[1:]]
    return [ChatMessage("system", instruction), *messages]
