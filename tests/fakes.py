"""Scripted fake chat models for tests of the director's logic (never used outside tests)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from codirector.agents.providers.base import ChatMessage, ChatResponse

Script = Callable[[Sequence[ChatMessage], dict[str, Any] | None], str]


@dataclass
class ScriptedChatModel:
    """A fake chat model that answers from a script: a list of replies in order, or a function of the
    conversation. Records every conversation it was sent."""

    script: list[str] | Script
    name: str = "fake:scripted"
    sees_images: bool = False
    hears_audio: bool = False
    conversations: list[list[ChatMessage]] = field(default_factory=list)

    def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> ChatResponse:
        self.conversations.append(list(messages))
        if callable(self.script):
            text = self.script(messages, json_schema)
        else:
            if not self.script:
                raise AssertionError("the scripted model ran out of replies")
            text = self.script.pop(0)
        return ChatResponse(text=text, model=self.name, prompt_tokens=10, completion_tokens=5, latency_s=0.001)
