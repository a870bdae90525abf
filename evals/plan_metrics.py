"""Deterministic metrics on a plan: is it valid, does it tile the audio, does it do what the case asks.

Every metric is a number with a direction (see `codirector.evals.metric_info`); every expectation of a case is
scored 0..1 and kept in the details, so a report can show which request a plan missed. Instruction adherence is
judged against the case's expectations (what the user asked for), not against the director's own reading of the
prompt, which may itself be wrong.

The negative-prompt check uses the *shipped* opposites table (prompts/negative_director/opposites.yaml) as its
yardstick, so an edited table under test is measured against a fixed reference.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from codirector.errors import SchemaValidationError
from codirector.schemas import Plan
from codirector.schemas.documents import validate_data
from codirector.schemas.evals import (
    ActionExpectation,
    CameraExpectation,
    ConflictExpectation,
    EmotionExpectation,
    Expectations,
    SpeakerExpectation,
    When,
)
from codirector.schemas.storyline import Shot

__all__ = ["PlanMeasurement", "measure_plan", "score_when"]

_WORD_TOLERANCE_S = 0.02  # a cut this close to a word's edge is at its boundary
_CONTENT_WORD = re.compile(r"[a-z]{4,}")


@dataclass(frozen=True)
class PlanMeasurement:
    metrics: dict[str, float | None]
    details: dict[str, Any]


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _shot_at(shots: Sequence[Shot], time_s: float) -> Shot:
    return next((shot for shot in shots if shot.start_s <= time_s < shot.end_s), shots[-1])


def score_when(shots: Sequence[Shot], duration_s: float, when: When, holds: Callable[[Shot], bool]) -> float:
    """How well `holds` is true where `when` says: 1 or 0 at the start, middle or end; the covered share of the
    whole timeline ("throughout") or of a window."""
    if when.at in ("start", "middle", "end"):
        time_s = {"start": 0.0, "middle": duration_s / 2, "end": max(0.0, duration_s - 1e-6)}[when.at]
        return float(holds(_shot_at(shots, time_s)))
    start_s, end_s = (0.0, duration_s) if when.at == "throughout" else (when.start_s or 0.0, when.end_s or duration_s)
    span = max(end_s - start_s, 1e-9)
    covered = sum(
        max(0.0, min(shot.end_s, end_s) - max(shot.start_s, start_s)) for shot in shots if holds(shot)
    )  # fmt: skip
    return min(1.0, covered / span)


def _names(plan: Plan) -> dict[str, str]:
    return {c.id: c.name for c in plan.storyline.characters}


def _emotion(expected: EmotionExpectation) -> Callable[[Shot], bool]:
    return lambda shot: (
        shot.emotion.label == expected.label
        and (expected.character_id is None or not shot.speakers or expected.character_id in shot.speakers)
    )


def _camera(expected: CameraExpectation) -> Callable[[Shot], bool]:
    return lambda shot: (
        shot.camera.movement == expected.movement
        and (expected.direction is None or shot.camera.direction == expected.direction)
    )


def _action(expected: ActionExpectation, names: dict[str, str]) -> Callable[[Shot], bool]:
    wanted = expected.text.lower()
    who = names.get(expected.character_id or "", "").lower()
    everyone = [name.lower() for name in names.values()]

    def mine(action: str) -> bool:
        # multi-character shots name who acts ("Sam nods"); an action naming nobody is the shot's one character's
        return not who or who in action or not any(name in action for name in everyone)

    # stems match: "nod" is in "nods"
    return lambda shot: any(wanted in action.lower() and mine(action.lower()) for action in shot.actions)


def _speaker(expected: SpeakerExpectation) -> Callable[[Shot], bool]:
    return lambda shot: (
        expected.character_id in shot.speakers and (not expected.alone or shot.speakers == [expected.character_id])
    )


def _timeline(plan: Plan) -> dict[str, float]:
    """Coverage, gaps and overlaps of the shots on [0, duration]."""
    duration = plan.storyline.duration_s
    spans = sorted((shot.start_s, shot.end_s) for shot in plan.storyline.shots)
    gaps = spans[0][0] + max(0.0, duration - max(end for _, end in spans))
    overlaps = 0.0
    reach = spans[0][1]
    for start, end in spans[1:]:
        gaps += max(0.0, start - reach)
        overlaps += max(0.0, min(reach, end) - start)
        reach = max(reach, end)
    covered = sum(end - start for start, end in spans) - overlaps
    return {"coverage": min(1.0, covered / duration), "gaps_s": gaps, "overlaps_s": overlaps}


def _cuts_at_word_boundaries(plan: Plan) -> tuple[float | None, list[float]]:
    """Share of the inner cuts that fall between words on every track; the cuts that split a word."""
    words = [(w.start_s, w.end_s) for report in plan.audio_reports for w in report.words]
    cuts = [shot.start_s for shot in plan.storyline.shots[1:]]
    if not cuts:
        return None, []
    inside = [
        cut for cut in cuts if any(s + _WORD_TOLERANCE_S < cut < e - _WORD_TOLERANCE_S for s, e in words)
    ]  # fmt: skip
    return 1.0 - len(inside) / len(cuts), inside


def _speaker_binding(plan: Plan) -> tuple[float | None, list[dict[str, Any]]]:
    """Duration-weighted share of shots whose speakers are exactly the characters heard in them.

    A character is heard in a shot when at least half of one of their words falls inside it (the audio
    expert's word timestamps, per track).
    """
    total = 0.0
    right = 0.0
    wrong: list[dict[str, Any]] = []
    for index, shot in enumerate(plan.storyline.shots):
        heard = set()
        for report in plan.audio_reports:
            for word in report.words:
                overlap = min(word.end_s, shot.end_s) - max(word.start_s, shot.start_s)
                if overlap >= 0.5 * max(word.end_s - word.start_s, 1e-3):
                    heard.add(report.character_id)
                    break
        total += shot.duration_s
        if heard and set(shot.speakers) != heard:
            wrong.append({"shot": index, "speakers": shot.speakers, "heard": sorted(heard)})
        else:
            right += shot.duration_s
    return (right / total if total else None), wrong


def _conflict_score(plan: Plan, expected: ConflictExpectation) -> float:
    """1: found and settled by the expected modality; 0.5: found but settled otherwise or left open; 0: missed."""
    record = plan.storyline.reasoning
    if record is None:
        return 0.0
    settled = {r.conflict_id: r for r in record.resolutions}
    found = [
        c for c in record.conflicts
        if c.aspect == expected.aspect and set(expected.modalities) <= set(c.modalities)
    ]  # fmt: skip
    if not found:
        return 0.0
    if expected.decided_by is None:
        return 1.0 if any(c.id in settled for c in found) else 0.5
    return 1.0 if any(c.id in settled and settled[c.id].decided_by == expected.decided_by for c in found) else 0.5


def _described(item: When | ConflictExpectation) -> dict[str, Any]:
    return item.model_dump(mode="json", exclude_defaults=True)


def _content_words(text: str) -> set[str]:
    return set(_CONTENT_WORD.findall(text.lower()))


def _negative_check(plan: Plan, opposites: dict[str, Any], banned: Sequence[str]) -> tuple[float, int, list[Any]]:
    """Share of shots whose negative prompt names an opposite of the shot's emotion and asks nothing against the
    shot itself; the count of violations (a negative against the shot's own emotion or actions, or a banned word)."""
    opposing = 0
    violations: list[dict[str, Any]] = []
    names = _content_words(" ".join(_names(plan).values()))  # "Sam nods": the name is not what the shot asks for
    for index, shot in enumerate(plan.storyline.shots):
        negative = shot.negative_prompt.lower()
        terms = opposites.get("emotion", {}).get(shot.emotion.label.value, [])
        own = _content_words(" ".join([shot.emotion.label.value, *shot.actions])) - names
        against = sorted(own & _content_words(negative))
        hits = [word for word in banned if word.lower() in negative]
        if against or hits:
            violations.append({"shot": index, "against_own": against, "banned": hits})
        elif any(term.lower() in negative for term in terms):
            opposing += 1
    return opposing / len(plan.storyline.shots), len(violations), violations


def measure_plan(
    plan: Plan,
    expect: Expectations,
    *,
    opposites: dict[str, Any],
    text_relevance: Callable[[Plan], float | None] | None = None,
    latency_s: float | None = None,
) -> PlanMeasurement:
    """Score a plan against its case's expectations.

    Args:
        plan: the director's output.
        expect: what the case asks for.
        opposites: the reference opposites table (the shipped prompts/negative_director/opposites.yaml).
        text_relevance: a scorer of how well the shot prompts match the user's words (see `text_relevance`).
        latency_s: how long planning took, when the caller timed it.
    """
    story = plan.storyline
    shots, duration = story.shots, story.duration_s
    names = _names(plan)
    details: dict[str, Any] = {}
    metrics: dict[str, float | None] = {}

    data = plan.model_dump(mode="json")
    try:
        validate_data(data, "plan", source="<plan>")
        metrics["plan.schema_valid"] = 1.0
    except SchemaValidationError as error:  # the object validated; its JSON must pass the exported schema too
        metrics["plan.schema_valid"] = 0.0
        details["plan.schema_error"] = str(error)
    metrics["plan.repairs"] = float(len(plan.repairs))
    metrics["plan.model_calls"] = float(len(plan.model_calls))
    metrics["plan.model_retries"] = float(sum(call.attempt > 1 for call in plan.model_calls))
    metrics["plan.latency_s"] = latency_s
    metrics["plan.num_shots"] = float(len(shots))

    timeline = _timeline(plan)
    metrics["plan.coverage"] = timeline["coverage"]
    metrics["plan.gaps_s"] = timeline["gaps_s"]
    metrics["plan.overlaps_s"] = timeline["overlaps_s"]
    metrics["plan.word_boundary_cuts"], details["plan.cuts_inside_words_s"] = _cuts_at_word_boundaries(plan)

    outcomes: list[dict[str, Any]] = []

    def score(kind: str, items: Sequence[When], holds_for: Callable[[Any], Callable[[Shot], bool]]) -> list[float]:
        values = []
        for item in items:
            value = score_when(shots, duration, item, holds_for(item))
            values.append(value)
            outcomes.append({"kind": kind, "expect": _described(item), "score": value})
        return values

    emotion = score("emotion", expect.emotions, _emotion)
    camera = score("camera", expect.camera, _camera)
    action = score("action", expect.actions, lambda item: _action(item, names))
    speaker = score("speaker", expect.speakers, _speaker)
    metrics["plan.emotion_adherence"] = _mean(emotion)
    metrics["plan.camera_adherence"] = _mean(camera)
    metrics["plan.action_adherence"] = _mean(action)
    metrics["plan.speaker_expectations"] = _mean(speaker)
    metrics["plan.instruction_adherence"] = _mean(emotion + camera + action + speaker)
    metrics["plan.speaker_binding"], details["plan.speaker_mismatches"] = _speaker_binding(plan)

    conflicts = [_conflict_score(plan, item) for item in expect.conflicts]
    for item, value in zip(expect.conflicts, conflicts, strict=True):
        outcomes.append({"kind": "conflict", "expect": _described(item), "score": value})
    record = story.reasoning
    found = len(record.conflicts) if record else 0
    if expect.no_conflicts:
        conflicts.append(1.0 if found == 0 else 0.0)
        outcomes.append({"kind": "no_conflicts", "expect": {}, "score": conflicts[-1]})
    metrics["plan.conflict_resolution"] = _mean(conflicts)
    metrics["plan.conflicts_found"] = float(found)
    metrics["plan.open_conflicts"] = float(len(record.open_conflicts)) if record else 0.0
    metrics["plan.rounds"] = float(record.num_rounds) if record else None

    opposition, violations, where = _negative_check(plan, opposites, expect.negative_must_not_contain)
    metrics["plan.negative_opposition"] = opposition
    metrics["plan.negative_violations"] = float(violations)
    details["plan.negative_violations"] = where

    facts: list[float] = []
    if expect.delivery is not None:
        facts.append(float(all(r.delivery == expect.delivery for r in plan.audio_reports)))
    if expect.language is not None:
        facts.append(float(all((r.language or "").split("-")[0] == expect.language for r in plan.audio_reports)))
    metrics["plan.audio_analysis"] = _mean(facts)
    if expect.num_shots is not None:
        low, high = expect.num_shots
        metrics["plan.shot_count_ok"] = float(low <= len(shots) <= high)
    metrics["plan.text_relevance"] = text_relevance(plan) if text_relevance is not None else None
    details["plan.expectations"] = outcomes
    return PlanMeasurement(metrics, details)
