"""The experts when a language model backs them: prompts in, pydantic out, merged with the measurements.

The measurements (transcript, prosody, faces) always come from `analysis`: a model that cannot hear reads the
transcript and prosody as text, a model that cannot see reads the face boxes and colours (DESIGN.md). The
model adds what needs judgement: emotion and intent, appearance, the reading of the user's text, conflicts and
resolutions, the storyline, local prompts and negatives. Every answer goes through `structured.ask`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from codirector.agents.findings import claim
from codirector.agents.providers.base import AudioPart, ChatModel, ImagePart
from codirector.agents.structured import Asked, ask, exact_length, restrict
from codirector.prompts.templates import load_prompt_data
from codirector.schemas.base import CharacterId, Contract
from codirector.schemas.reasoning import Aspect, Conflict, Finding, Resolution
from codirector.schemas.render_plan import RenderPlan
from codirector.schemas.reports import AudioReport, EmotionEstimate, Instruction, TextReport, VisualReport
from codirector.schemas.storyline import Camera, EmotionCue, Gaze, Shot, Storyline
from codirector.schemas.vocab import Modality, ShotSize, SpeakingIntent, VisualStyle

__all__ = [
    "AudioInterpretation",
    "Contribution",
    "NegativePrompts",
    "SegmentPrompts",
    "ShotDraft",
    "StorylineDraft",
    "VisualInterpretation",
    "describe_images",
    "interpret_audio",
    "read_instructions_llm",
    "take_turn",
    "write_negatives",
    "write_segment_prompts",
]


class AudioInterpretation(Contract):
    emotion: EmotionEstimate
    speaking_intent: SpeakingIntent
    intent_summary: str = Field(max_length=200)


class AppearanceNote(Contract):
    character_id: CharacterId
    appearance: str = Field(max_length=160)


class VisualInterpretation(Contract):
    characters: list[AppearanceNote] = Field(max_length=8)
    scene: str = Field(max_length=200)
    style: VisualStyle


class InstructionList(Contract):
    instructions: list[Instruction] = Field(max_length=8)


# Drafts are what a model writes: short strings and short lists, because small models under constrained
# decoding otherwise run on until the token limit cuts the JSON off (measured with SmolLM2-135M).
class FindingDraft(Contract):
    aspect: Aspect
    value: str = Field(max_length=40)
    statement: str = Field(max_length=160)
    character_id: CharacterId | None = None
    start_s: float | None = Field(None, ge=0)
    end_s: float | None = Field(None, ge=0)


class ConflictDraft(Contract):
    aspect: Aspect
    finding_ids: list[str] = Field(min_length=2, max_length=4)
    description: str = Field(max_length=160)


class ResolutionDraft(Contract):
    conflict_id: str
    decided_by: Modality
    decision: str = Field(max_length=160)
    rationale: str = Field(max_length=160)


class Contribution(Contract):
    """One expert's turn in a round."""

    findings: list[FindingDraft] = Field(default_factory=list, max_length=3)
    conflicts: list[ConflictDraft] = Field(default_factory=list, max_length=3)
    resolutions: list[ResolutionDraft] = Field(default_factory=list, max_length=3)


class ShotDraft(Contract):
    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)
    speakers: list[CharacterId] = Field(default_factory=list)
    shot_size: ShotSize
    camera: Camera = Field(default_factory=Camera)
    emotion: EmotionCue
    actions: list[str] = Field(default_factory=list, max_length=4)
    gaze: Gaze = Field(default_factory=Gaze)
    prompt: str = Field(min_length=1, max_length=400)
    rationale: str = Field("", max_length=160)


class StorylineDraft(Contract):
    global_prompt: str = Field(min_length=1, max_length=400)
    shots: list[ShotDraft] = Field(min_length=1, max_length=40)


class SegmentPrompts(Contract):
    prompts: list[str]


class NegativePrompts(Contract):
    negative_prompts: list[str]


def _transcript(report: AudioReport) -> str:
    return " ".join(f"[{w.start_s:.2f}] {w.text.strip()}" for w in report.words) or "(no words)"


def interpret_audio(model: ChatModel, report: AudioReport, accounting: Asked, prompts_dir: Path | None) -> AudioReport:
    """Emotion and intent by the model, merged into the measured report."""
    attachments = [AudioPart(report.audio_path)] if model.hears_audio else []
    answer = ask(
        model,
        "audio_expert/interpret",
        AudioInterpretation,
        expert="audio",
        purpose="interpret",
        inputs={
            "character": report.character_id,
            "measurements": report.prosody.model_dump_json(),
            "transcript": _transcript(report),
        },
        attachments=attachments,
        accounting=accounting,
        prompts_dir=prompts_dir,
        max_tokens=400,
    )
    return AudioReport.model_validate({**report.model_dump(), **answer.model_dump()})


def describe_images(
    model: ChatModel, report: VisualReport, images: Sequence[Path], accounting: Asked, prompts_dir: Path | None
) -> VisualReport:
    """Appearance, scene and style by the model, over the measured boxes and framing."""
    known = {c.character_id for c in report.characters}

    def check(answer: VisualInterpretation) -> VisualInterpretation:
        unknown = [n.character_id for n in answer.characters if n.character_id not in known]
        if unknown:
            raise ValueError(f"unknown character ids {unknown}; use {sorted(known)}")
        return answer

    answer = ask(
        model,
        "visual_expert/describe",
        VisualInterpretation,
        expert="visual",
        purpose="describe",
        inputs={"measurements": json.dumps([c.model_dump(mode="json") for c in report.characters])},
        attachments=[ImagePart(p) for p in images] if model.sees_images else [],
        check=check,
        json_schema=restrict(VisualInterpretation.model_json_schema(), "character_id", sorted(known)),
        accounting=accounting,
        prompts_dir=prompts_dir,
        max_tokens=600,
    )
    notes = {n.character_id: n.appearance for n in answer.characters}
    characters = [
        c.model_copy(update={"appearance": notes.get(c.character_id, c.appearance)}) for c in report.characters
    ]
    return report.model_copy(update={"characters": characters, "scene": answer.scene, "style": answer.style})


def read_instructions_llm(
    model: ChatModel,
    prompt: str,
    character_ids: Sequence[str],
    duration_s: float,
    accounting: Asked,
    prompts_dir: Path | None,
) -> TextReport:
    answer = ask(
        model,
        "text_expert/instructions",
        InstructionList,
        expert="text",
        purpose="instructions",
        inputs={"prompt": prompt, "characters": list(character_ids), "duration_s": round(duration_s, 2)},
        json_schema=restrict(InstructionList.model_json_schema(), "character_id", list(character_ids)),
        accounting=accounting,
        prompts_dir=prompts_dir,
        max_tokens=1200,
    )
    return TextReport(prompt=prompt, instructions=answer.instructions)


def _turn_schema(finding_ids: list[str], conflict_ids: list[str]) -> dict:
    """Contribution's schema with the ids a turn may cite as enums (no resolutions when nothing is open)."""
    schema = restrict(Contribution.model_json_schema(), "finding_ids", finding_ids)
    if conflict_ids:
        return restrict(schema, "conflict_id", conflict_ids)
    schema["properties"]["resolutions"] = {**schema["properties"]["resolutions"], "maxItems": 0}
    return schema


def take_turn(
    model: ChatModel,
    expert: Modality,
    round_index: int,
    findings: Sequence[Finding],
    open_conflicts: Sequence[Conflict],
    transcript: str,
    accounting: Asked,
    prompts_dir: Path | None,
    repairs: list[str] | None = None,
) -> tuple[list[Finding], list[Conflict], list[Resolution]]:
    """One expert's turn: new findings, conflicts and resolutions, checked against what exists."""
    repairs = repairs if repairs is not None else []
    finding_ids = {f.id for f in findings}
    experts = {f.id: f.expert for f in findings}
    conflict_parties = {c.id: set(c.modalities) for c in open_conflicts}

    def check(answer: Contribution) -> Contribution:
        # Deterministic repair first: a reference to a finding or conflict that does not exist, or a ruling by a
        # modality that is not a party, is dropped (and recorded) rather than sent back to the model.
        conflicts = []
        for draft in answer.conflicts:
            parties = {experts[i] for i in draft.finding_ids if i in finding_ids}
            if any(i not in finding_ids for i in draft.finding_ids) or len(parties) < 2:
                repairs.append(f"dropped conflict {draft.description!r}: it needs known findings of two experts")
            else:
                conflicts.append(draft)
        resolutions = []
        for draft in answer.resolutions:
            parties = conflict_parties.get(draft.conflict_id)
            if parties is None or draft.decided_by not in parties:
                repairs.append(f"dropped resolution of {draft.conflict_id!r}: no such open conflict, or not a party")
            else:
                resolutions.append(draft)
        return answer.model_copy(update={"conflicts": conflicts, "resolutions": resolutions})

    answer = ask(
        model,
        "coreasoning/round",
        Contribution,
        expert=expert.value,
        purpose="co-reasoning",
        round_index=round_index,
        inputs={
            "expert": expert.value,
            "round": round_index,
            "findings": json.dumps([f.model_dump(mode="json", exclude={"round"}) for f in findings]),
            "open_conflicts": json.dumps([c.model_dump(mode="json") for c in open_conflicts]),
            "transcript": transcript,
        },
        check=check,
        json_schema=_turn_schema(sorted(finding_ids), sorted(conflict_parties)),
        accounting=accounting,
        prompts_dir=prompts_dir,
        max_tokens=1200,
    )
    new_findings = [claim(expert, round_index, **draft.model_dump()) for draft in answer.findings]
    conflicts = [
        Conflict(
            id=f"c{round_index}-{expert.value}-{n}",
            round=round_index,
            aspect=draft.aspect,
            modalities=sorted({experts[i] for i in draft.finding_ids}),
            finding_ids=draft.finding_ids,
            description=draft.description,
        )
        for n, draft in enumerate(answer.conflicts, 1)
    ]
    resolutions = [Resolution(round=round_index, **draft.model_dump()) for draft in answer.resolutions]
    return new_findings, conflicts, resolutions


def storyline_examples(prompts_dir: Path | None) -> str:
    data, _ref = load_prompt_data("text_expert/storyline_examples", prompts_dir)
    return json.dumps(data["examples"], ensure_ascii=False)


def _one_per_item(
    model: ChatModel,
    prompt_id: str,
    output_type: type[NegativePrompts] | type[SegmentPrompts],
    field: str,
    items: list[dict[str, Any]],
    *,
    input_name: str,
    expert: str,
    purpose: str,
    what: str,
    non_empty: bool,
    max_attempts: int,
    accounting: Asked,
    prompts_dir: Path | None,
) -> list[str]:
    """Ask for exactly one text per item (one negative per shot, one local prompt per segment)."""
    count = len(items)

    def check(answer: NegativePrompts | SegmentPrompts) -> NegativePrompts | SegmentPrompts:
        texts: list[str] = getattr(answer, field)
        if len(texts) != count or (non_empty and not all(t.strip() for t in texts)):
            empty = " non-empty" if non_empty else ""
            raise ValueError(f"give exactly {count}{empty} {what}s, one per item; got {len(texts)}")
        return answer

    answer = ask(
        model,
        prompt_id,
        output_type,
        expert=expert,
        purpose=purpose,
        inputs={input_name: json.dumps(items)},
        json_schema=exact_length(output_type.model_json_schema(), field, count),
        max_tokens=80 * count + 100,
        check=check,
        max_attempts=max_attempts,
        accounting=accounting,
        prompts_dir=prompts_dir,
    )
    return list(getattr(answer, field))


def write_negatives(
    model: ChatModel, shots: Sequence[Shot], max_attempts: int, accounting: Asked, prompts_dir: Path | None
) -> list[str]:
    """The negative director's model path: one negative prompt per shot."""
    items = [
        {
            "prompt": s.prompt,
            "emotion": s.emotion.label.value,
            "camera": s.camera.model_dump(mode="json"),
            "shot_size": s.shot_size.value,
        }
        for s in shots
    ]
    return _one_per_item(
        model,
        "negative_director/negatives",
        NegativePrompts,
        "negative_prompts",
        items,
        input_name="shots",
        expert="negative",
        purpose="negatives",
        what="negative prompt",
        non_empty=False,
        max_attempts=max_attempts,
        accounting=accounting,
        prompts_dir=prompts_dir,
    )


def write_segment_prompts(
    model: ChatModel,
    plan: RenderPlan,
    storyline: Storyline,
    max_attempts: int,
    accounting: Asked,
    prompts_dir: Path | None,
) -> list[str]:
    """Segment-level plans by the model: one local prompt per sub-clip, from its shot and its own words."""
    items = [
        {"start_s": s.start_s, "end_s": s.end_s, "shot_prompt": storyline.shots[s.shot_index].prompt, "local": s.prompt}
        for s in plan.segments
    ]
    return _one_per_item(
        model,
        "text_expert/segments",
        SegmentPrompts,
        "prompts",
        items,
        input_name="segments",
        expert="text",
        purpose="segments",
        what="prompt",
        non_empty=True,
        max_attempts=max_attempts,
        accounting=accounting,
        prompts_dir=prompts_dir,
    )
