"""The record of co-reasoning: what each expert found, where they disagreed, and who settled it and why.

KlingAvatar 2.0 sec. 3.2: the experts "engage in several rounds of co-reasoning ... to resolve conflicts (e.g.,
an angry vocal tone paired with a neutral script) and to fill in underspecified details". Rounds, conflicts and
resolutions are explicit data, so a plan can be audited and an eval can check that a conflict was found.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from codirector.schemas.base import (
    CharacterId,
    Confidence,
    Contract,
    Document,
    Loc,
    RuleViolation,
    Seconds,
    check_unique,
)
from codirector.schemas.vocab import Modality

__all__ = ["Aspect", "CoReasoningRecord", "Conflict", "Finding", "Resolution"]

Aspect = Literal[
    "emotion",
    "intensity",
    "action",
    "camera",
    "framing",
    "timing",
    "speaker",
    "delivery",
    "style",
    "scene",
    "other",
]


class Finding(Contract):
    """One expert's claim about the video to make, e.g. audio: emotion=angry over 12-18 s."""

    id: str = Field(min_length=1)
    round: int = Field(ge=0, description="0 for the experts' first, independent reading.")
    expert: Modality
    aspect: Aspect
    value: str = Field(description="The claim in the vocabulary of its aspect, e.g. 'angry' or 'push_in'.")
    statement: str = Field(description="The claim in a sentence, with its evidence.")
    character_id: CharacterId | None = None
    start_s: Seconds | None = None
    end_s: Seconds | None = None
    confidence: Confidence = 1.0


class Conflict(Contract):
    """Two or more modalities disagree about one aspect."""

    id: str = Field(min_length=1)
    round: int = Field(ge=0)
    aspect: Aspect
    modalities: list[Modality] = Field(min_length=2)
    finding_ids: list[str] = Field(min_length=2)
    description: str


class Resolution(Contract):
    """How a conflict was settled: by which modality's priority, and why."""

    conflict_id: str
    round: int = Field(ge=0)
    decided_by: Modality
    decision: str = Field(description="What the storyline will do.")
    rationale: str


class CoReasoningRecord(Document):
    """Every round of the director's co-reasoning."""

    KIND: ClassVar[str] = "co_reasoning"
    kind: Literal["co_reasoning"] = "co_reasoning"
    num_rounds: int = Field(ge=0)
    max_rounds: int = Field(ge=1)
    findings: list[Finding] = Field(default_factory=list)
    conflicts: list[Conflict] = Field(default_factory=list)
    resolutions: list[Resolution] = Field(default_factory=list)
    stop_reason: Literal["no_open_conflicts", "max_rounds"] | None = None

    @property
    def open_conflicts(self) -> list[Conflict]:
        settled = {resolution.conflict_id for resolution in self.resolutions}
        return [conflict for conflict in self.conflicts if conflict.id not in settled]

    @model_validator(mode="after")
    def _check_references(self) -> CoReasoningRecord:
        issues: list[tuple[Loc, str]] = []
        issues += check_unique((f.id for f in self.findings), "findings", "finding id")
        issues += check_unique((c.id for c in self.conflicts), "conflicts", "conflict id")
        issues += check_unique((r.conflict_id for r in self.resolutions), "resolutions", "resolution of conflict")
        if self.num_rounds > self.max_rounds:
            issues.append((("num_rounds",), f"{self.num_rounds} rounds exceed max_rounds={self.max_rounds}"))
        finding_ids = {f.id for f in self.findings}
        conflicts = {c.id: c for c in self.conflicts}
        for index, conflict in enumerate(self.conflicts):
            if len(set(conflict.modalities)) < 2:
                issues.append((("conflicts", index, "modalities"), "a conflict needs two different modalities"))
            for ref_index, finding_id in enumerate(conflict.finding_ids):
                if finding_id not in finding_ids:
                    issues.append((("conflicts", index, "finding_ids", ref_index), f"no finding has id {finding_id!r}"))
        for index, resolution in enumerate(self.resolutions):
            conflict = conflicts.get(resolution.conflict_id)
            if conflict is None:
                issues.append((("resolutions", index, "conflict_id"), f"no conflict has id {resolution.conflict_id!r}"))
            elif resolution.decided_by not in conflict.modalities:
                issues.append(
                    (
                        ("resolutions", index, "decided_by"),
                        f"{resolution.decided_by.value} is not a party to conflict {conflict.id!r}",
                    )
                )
        for field, items in (("findings", self.findings), ("conflicts", self.conflicts)):
            for index, item in enumerate(items):
                if item.round > self.num_rounds:
                    issues.append(((field, index, "round"), f"round {item.round} is past num_rounds"))
        RuleViolation.raise_if_any(issues)
        return self
