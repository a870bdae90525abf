"""The director's whole output in one file: what `codirector plan` writes and `codirector render` reads.

It holds the storyline and the render plan (KlingAvatar 2.0 sec. 3.2: "the director further refines the global
storyline into segment-level plans"), the experts' reports and the co-reasoning transcript (inside the
storyline), and the bookkeeping an eval needs: which repairs were applied, and every model call.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from codirector.schemas.base import Contract, Document, Loc, PromptRef, RuleViolation, Sha256
from codirector.schemas.render_plan import RenderPlan
from codirector.schemas.reports import AudioReport, TextReport, VisualReport
from codirector.schemas.storyline import Storyline

__all__ = ["ModelCall", "Plan", "Repair"]


class Repair(Contract):
    """A fix the director applied to a draft before it validated: deterministic, or by asking the model again."""

    stage: str = Field(description="What was being made, e.g. 'storyline'.")
    kind: Literal["deterministic", "model"]
    action: str = Field(description="e.g. 'snap_to_word', 'merge_short_shot', 'clamp_vocabulary', 'retry'.")
    detail: str


class ModelCall(Contract):
    """One call to an LLM provider (the offline provider makes none)."""

    expert: str
    purpose: str
    provider: str
    round: int | None = None
    attempt: int = Field(ge=1)
    ok: bool
    latency_s: float = Field(ge=0)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class Plan(Document):
    """A job's plan: storyline, render plan, expert reports and how they came about."""

    KIND: ClassVar[str] = "plan"
    kind: Literal["plan"] = "plan"
    job_sha256: Sha256 = Field(description="Hash of the job (and its media) this plan was made for.")
    providers: dict[str, str] = Field(description="The provider each expert used, e.g. {'audio': 'offline'}.")
    audio_reports: list[AudioReport] = Field(min_length=1)
    visual_report: VisualReport
    text_report: TextReport
    storyline: Storyline
    render_plan: RenderPlan
    repairs: list[Repair] = Field(default_factory=list)
    model_calls: list[ModelCall] = Field(default_factory=list)
    prompt_refs: list[PromptRef] = Field(default_factory=list)
    reviewed: bool = Field(False, description="Whether a person reviewed (and maybe edited) the storyline.")

    @model_validator(mode="after")
    def _check_agreement(self) -> Plan:
        issues: list[tuple[Loc, str]] = []
        if self.storyline.reasoning is None:
            issues.append((("storyline", "reasoning"), "a plan keeps its co-reasoning record"))
        story_ids = [c.id for c in self.storyline.characters]
        plan_ids = [c.id for c in self.render_plan.characters]
        if story_ids != plan_ids:
            issues.append((("render_plan", "characters"), f"characters {plan_ids} differ from the storyline's"))
        if abs(self.storyline.duration_s - self.render_plan.duration_s) > 1.0 / self.storyline.fps:
            issues.append((("render_plan", "duration_s"), "the render plan's duration differs from the storyline's"))
        for index, segment in enumerate(self.render_plan.segments):
            if segment.shot_index >= len(self.storyline.shots):
                issues.append((("render_plan", "segments", index, "shot_index"), "no such storyline shot"))
        RuleViolation.raise_if_any(issues)
        return self
