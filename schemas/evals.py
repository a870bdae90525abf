"""Eval suites and their results: the files behind `codirector eval run` and `codirector eval compare`.

A suite is a list of cases, each a job plus what its plan and video are expected to show (the emotion a shot
must carry, a camera move that must appear, who speaks when, words no negative prompt may hold). A run writes one
`EvalRecord` per case as a JSON line, keyed by the prompt versions, the provider and the backend, so two runs
(shipped prompts against edited ones, one provider against another) can be compared case by case.

The papers judge by GSB, (G+S)/(B+S), from three annotators with a majority vote, overall and per dimension
(Kling-Avatar sec. 3.2; KlingAvatar 2.0 sec. 4): `GsbDimension` lists those dimensions.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import Field, JsonValue, StringConstraints, ValidationInfo, field_validator, model_validator

from codirector.schemas.base import CharacterId, Contract, Document, Loc, PromptRef, RuleViolation, Seconds, Sha256
from codirector.schemas.reasoning import Aspect
from codirector.schemas.vocab import CameraMovement, Delivery, Direction, Emotion, Modality

__all__ = [
    "CASE_CATEGORIES",
    "GSB_DIMENSIONS",
    "ActionExpectation",
    "CameraExpectation",
    "CaseCategory",
    "ConflictExpectation",
    "EmotionExpectation",
    "EvalCase",
    "EvalRecord",
    "EvalRun",
    "EvalSuite",
    "Expectations",
    "GsbDimension",
    "SpeakerExpectation",
    "When",
]

CaseCategory = Literal[
    "english_speech",
    "mandarin_speech",
    "singing",
    "multi_character",
    "non_human",
    "conflicting_instructions",
    "long_form",
    "other",
]
CASE_CATEGORIES: tuple[str, ...] = CaseCategory.__args__  # type: ignore[attr-defined]

GsbDimension = Literal["lip_sync", "visual_quality", "motion", "expressiveness", "text_relevance"]
GSB_DIMENSIONS: tuple[str, ...] = GsbDimension.__args__  # type: ignore[attr-defined]

CaseId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]


class When(Contract):
    """Where on the audio timeline an expectation must hold: a named part of the video, or a window in seconds.

    "start", "middle" and "end" are the shots that cover the first frame, the midpoint and the last frame;
    "throughout" is every shot (scored by the share of the timeline that shows it).
    """

    at: Literal["throughout", "start", "middle", "end", "window"] = "throughout"
    start_s: Seconds | None = None
    end_s: Seconds | None = None

    @model_validator(mode="after")
    def _check_window(self) -> When:
        window = self.start_s is not None and self.end_s is not None
        if self.at == "window" and not (window and self.end_s > self.start_s):  # type: ignore[operator]
            raise RuleViolation([(("end_s",), "a 'window' needs start_s < end_s")])
        if self.at != "window" and (self.start_s is not None or self.end_s is not None):
            raise RuleViolation([(("at",), "start_s and end_s go with at: window")])
        return self


class EmotionExpectation(When):
    label: Emotion
    character_id: CharacterId | None = None


class CameraExpectation(When):
    movement: CameraMovement
    direction: Direction | None = None


class ActionExpectation(When):
    text: str = Field(min_length=1, description="Words the shot's actions must contain, e.g. 'nod'.")
    character_id: CharacterId | None = None


class SpeakerExpectation(When):
    character_id: CharacterId
    alone: bool = Field(False, description="No other character is listed as speaking in that span.")


class ConflictExpectation(Contract):
    """A disagreement the director must find between modalities, and who must settle it."""

    aspect: Aspect
    modalities: list[Modality] = Field(default_factory=list, description="The parties; empty: any two.")
    decided_by: Modality | None = None


class Expectations(Contract):
    """What a case's plan must show. Every item is scored 0..1; absent items are not scored."""

    emotions: list[EmotionExpectation] = Field(default_factory=list)
    camera: list[CameraExpectation] = Field(default_factory=list)
    actions: list[ActionExpectation] = Field(default_factory=list)
    speakers: list[SpeakerExpectation] = Field(default_factory=list)
    conflicts: list[ConflictExpectation] = Field(default_factory=list)
    no_conflicts: bool = Field(False, description="The modalities agree: a conflict found is a false alarm.")
    negative_must_not_contain: list[str] = Field(
        default_factory=list, description="Words no shot's negative prompt may contain (case-insensitive)."
    )
    delivery: Delivery | None = None
    language: str | None = Field(None, pattern=r"^[a-z]{2,3}$")
    num_shots: tuple[int, int] | None = Field(None, description="Fewest and most shots, inclusive.")


class EvalCase(Contract):
    """One job to plan (and render), with what it must show."""

    id: CaseId
    category: CaseCategory
    description: str = ""
    job: Path = Field(description="The job file, relative to the suite file.")
    prompt: str | None = Field(None, description="Replaces the job's prompt, e.g. to set text against voice.")
    expect: Expectations = Field(default_factory=Expectations)
    render: bool | None = Field(None, description="Render this case; default: the suite's setting.")

    @field_validator("job", mode="after")
    @classmethod
    def _anchor(cls, path: Path, info: ValidationInfo) -> Path:
        base_dir = (info.context or {}).get("base_dir")
        return Path(base_dir) / path if base_dir is not None and not path.is_absolute() else path


class EvalSuite(Document):
    """A named list of cases (`codirector eval run SUITE`)."""

    KIND: ClassVar[str] = "eval_suite"
    kind: Literal["eval_suite"] = "eval_suite"
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    description: str = ""
    render: bool = Field(True, description="Render every case (render metrics need the video).")
    cases: list[EvalCase] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_ids(self) -> EvalSuite:
        issues: list[tuple[Loc, str]] = []
        seen: set[str] = set()
        for index, case in enumerate(self.cases):
            if case.id in seen:
                issues.append((("cases", index, "id"), f"case id {case.id!r} appears more than once"))
            seen.add(case.id)
        RuleViolation.raise_if_any(issues)
        return self


class EvalRecord(Contract):
    """One case's result: a line of results.jsonl.

    `key` is what makes records comparable across runs: suite, case, provider, backend and prompt versions. Metric
    values are plain numbers (None where a metric does not apply, e.g. right-mouth for one character); curves and
    per-expectation outcomes go in `details`.
    """

    schema_version: Literal["1"] = "1"
    suite: str
    case_id: CaseId
    category: CaseCategory
    provider: str = Field(description="The director's providers, e.g. 'offline' or 'audio=offline,text=openai:x'.")
    backend: str | None = Field(None, description="The render backend; None when the case was not rendered.")
    prompt_versions: dict[str, str] = Field(
        default_factory=dict, description="Every prompt the plan used: id -> 'version@sha256[:12]'."
    )
    prompts_sha256: Sha256 = Field(description="Hash of prompt_versions: one value per prompt set.")
    job_sha256: Sha256
    plan_sha256: Sha256 | None = None
    video_sha256: Sha256 | None = None
    plan_path: str | None = Field(None, description="The plan, relative to the run folder.")
    video_path: str | None = Field(None, description="The MP4, relative to the run folder.")
    status: Literal["ok", "failed"]
    error: str | None = None
    metrics: dict[str, float | None] = Field(default_factory=dict)
    details: dict[str, JsonValue] = Field(default_factory=dict)
    timings_s: dict[str, float] = Field(default_factory=dict)
    reused: list[Literal["plan", "render", "metrics"]] = Field(
        default_factory=list, description="What came from the cache instead of being made again."
    )

    @property
    def key(self) -> tuple[str, str, str, str | None, str]:
        return (self.suite, self.case_id, self.provider, self.backend, self.prompts_sha256)


class EvalRun(Document):
    """What a run folder holds (run.json): the suite, who planned and rendered, with which prompts, and when."""

    KIND: ClassVar[str] = "eval_run"
    kind: Literal["eval_run"] = "eval_run"
    codirector_version: str
    suite: str
    suite_path: Path
    suite_sha256: Sha256
    provider: str
    backend: str | None
    prompts_dir: Path | None = None
    prompt_refs: list[PromptRef] = Field(default_factory=list)
    created_at: datetime
    duration_s: float = Field(ge=0)
    num_cases: int = Field(ge=0)
    num_failed: int = Field(ge=0)
