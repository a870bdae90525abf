"""What the director runs with but never checkpoints: providers, settings, and the review switch.

Providers are passed in, never global (DESIGN.md); LangGraph hands this object to every node as
`runtime.context`, so two plans with different providers can run side by side in one process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from codirector.agents.providers.base import OFFLINE, ChatModel, OfflineProvider, Provider
from codirector.config import Config
from codirector.schemas.job import ExpertName

__all__ = ["DirectorContext"]


@dataclass(frozen=True)
class DirectorContext:
    """Args:
    providers: the provider of each expert ("audio", "visual", "text", "negative"); missing ones are offline.
    config: settings (model folders, cache home).
    prompts_dir: a folder of prompt files that override the packaged ones, file by file.
    review: pause before the storyline is final so a person can review or edit it (LangGraph interrupt).
    max_attempts: model calls per answer, the first included, before `AgentOutputError`.
    max_segment_s: longest sub-clip of the render plan.
    """

    providers: dict[ExpertName, Provider] = field(default_factory=dict)
    config: Config = field(default_factory=Config)
    prompts_dir: Path | None = None
    review: bool = False
    max_attempts: int = 3
    max_segment_s: float = 5.0

    def provider(self, expert: ExpertName) -> Provider:
        return self.providers.get(expert, OFFLINE)

    def chat_model(self, expert: ExpertName) -> ChatModel | None:
        """The expert's chat model, or None when it runs offline."""
        provider = self.provider(expert)
        return None if isinstance(provider, OfflineProvider) else provider
