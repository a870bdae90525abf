"""The director's state: what every node reads and writes, with reducers where several nodes add.

The three experts run in parallel and each adds findings, so findings, conflicts, resolutions, repairs and
model calls are lists merged by concatenation; audio reports are keyed by character and merged. Rounds and the
stop reason are plain values written by the co-reasoning node (STYLE.md: rounds are explicit state).
"""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

from codirector.schemas.base import PromptRef
from codirector.schemas.job import Job
from codirector.schemas.plan import ModelCall, Repair
from codirector.schemas.reasoning import Conflict, Finding, Resolution
from codirector.schemas.render_plan import RenderPlan
from codirector.schemas.reports import AudioReport, TextReport, VisualReport
from codirector.schemas.storyline import Storyline

__all__ = ["DirectorState", "merge_reports"]


def merge_reports(left: dict[str, AudioReport], right: dict[str, AudioReport]) -> dict[str, AudioReport]:
    return {**left, **right}


class DirectorState(TypedDict, total=False):
    job: Job
    duration_s: float
    audio_reports: Annotated[dict[str, AudioReport], merge_reports]
    visual_report: VisualReport
    text_report: TextReport
    findings: Annotated[list[Finding], operator.add]
    conflicts: Annotated[list[Conflict], operator.add]
    resolutions: Annotated[list[Resolution], operator.add]
    num_rounds: int
    stop_reason: str | None
    storyline: Storyline
    render_plan: RenderPlan
    reviewed: bool
    repairs: Annotated[list[Repair], operator.add]
    model_calls: Annotated[list[ModelCall], operator.add]
    prompt_refs: Annotated[list[PromptRef], operator.add]
