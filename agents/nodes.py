"""The director's nodes: each a verb phrase that reads the state and returns its update.

The thinking lives in the modules these call (`analysis`, `instructions`, `coreasoning`, `storyline`,
`negatives`, `segments`, `llm_experts`); a node only picks the offline or the model path for its expert and
records what it did.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal, TypeVar

from langgraph.runtime import Runtime
from langgraph.types import interrupt
from pydantic import BaseModel

from codirector.agents.analysis import analyze_images, analyze_track
from codirector.agents.context import DirectorContext
from codirector.agents.coreasoning import detect_conflicts, fill_details, prevailing, resolve_conflicts, stop_reason
from codirector.agents.findings import (
    findings_from_audio,
    findings_from_cues,
    findings_from_text,
    findings_from_visual,
    number_findings,
    place_cue,
)
from codirector.agents.instructions import load_lexicon, read_instructions
from codirector.agents.llm_experts import (
    StorylineDraft,
    describe_images,
    interpret_audio,
    read_instructions_llm,
    storyline_examples,
    take_turn,
    write_negatives,
    write_segment_prompts,
)
from codirector.agents.negatives import direct_negatives
from codirector.agents.providers.base import ChatModel
from codirector.agents.repair import clamp_vocabulary, fit_timeline, fix_gaze
from codirector.agents.segments import plan_segments
from codirector.agents.state import DirectorState
from codirector.agents.storyline import ShotLimits, write_storyline
from codirector.agents.structured import Asked, ask
from codirector.schemas.plan import Repair
from codirector.schemas.reasoning import Conflict, CoReasoningRecord, Finding
from codirector.schemas.storyline import Shot, Storyline
from codirector.schemas.vocab import Modality

__all__ = [
    "analyze_audio_tracks",
    "analyze_reference_images",
    "co_reason",
    "direct_negative_prompts",
    "plan_render_segments",
    "read_user_text",
    "review_storyline",
    "route_after_round",
    "write_shot_storyline",
]

Runtime_ = Runtime[DirectorContext]
_D = TypeVar("_D", bound=BaseModel)


def _accounting_update(asked: Asked) -> dict[str, Any]:
    return {
        "model_calls": asked.calls,
        "prompt_refs": asked.prompt_refs,
        "repairs": [Repair(stage="model", kind="model", action="retry", detail=d) for d in asked.repairs]
        + [Repair(stage="model", kind="deterministic", action="clamp_to_schema", detail=d) for d in asked.fixes],
    }


def _plain(document: _D) -> _D:
    """The same document with numpy scalars turned into Python numbers (what checkpoints can store)."""
    return type(document).model_validate_json(document.model_dump_json())


def analyze_audio_tracks(state: DirectorState, runtime: Runtime_) -> dict[str, Any]:
    """The audio expert, round 0: transcription and paralinguistics of every track."""
    ctx, job = runtime.context, state["job"]
    asked = Asked()
    reports = {}
    for character in job.characters:
        if character.audio is None:
            continue
        report = _plain(analyze_track(character.id, character.audio, language=job.language, config=ctx.config))
        model = ctx.chat_model("audio")
        if model is not None:
            report = interpret_audio(model, report, asked, ctx.prompts_dir)
        reports[character.id] = report
    return {
        "audio_reports": reports,
        "findings": findings_from_audio(list(reports.values())),
        **_accounting_update(asked),
    }


def analyze_reference_images(state: DirectorState, runtime: Runtime_) -> dict[str, Any]:
    """The visual expert, round 0: who is where, framing, light and style."""
    ctx, job = runtime.context, state["job"]
    asked = Asked()
    report = _plain(analyze_images(job, ctx.config))
    model = ctx.chat_model("visual")
    if model is not None:
        images = [p for p in [job.scene_image, *(c.reference_image for c in job.characters)] if p is not None]
        report = describe_images(model, report, images, asked, ctx.prompts_dir)
    return {"visual_report": report, "findings": findings_from_visual(report), **_accounting_update(asked)}


def read_user_text(state: DirectorState, runtime: Runtime_) -> dict[str, Any]:
    """The text expert, round 0: the user's instructions, placed on the timeline where words allow."""
    ctx, job = runtime.context, state["job"]
    asked = Asked()
    model = ctx.chat_model("text")
    if model is not None and job.prompt.strip():
        report = read_instructions_llm(
            model, job.prompt, [c.id for c in job.characters], state["duration_s"], asked, ctx.prompts_dir
        )
    else:
        lexicon = load_lexicon(ctx.prompts_dir)
        report = read_instructions(job.prompt, job.characters, state["duration_s"], lexicon)
        asked.prompt_refs.append(lexicon.ref)
    return {"text_report": report, "findings": findings_from_text(report), **_accounting_update(asked)}


def _record(state: DirectorState, runtime: Runtime_, **changes: Any) -> CoReasoningRecord:
    values = {
        "num_rounds": state.get("num_rounds", 0),
        "max_rounds": state["job"].director.max_rounds,
        "findings": state.get("findings", []),
        "conflicts": state.get("conflicts", []),
        "resolutions": state.get("resolutions", []),
        "stop_reason": state.get("stop_reason"),
    }
    return CoReasoningRecord(**{**values, **changes})


def co_reason(state: DirectorState, runtime: Runtime_) -> dict[str, Any]:
    """One round: settle what earlier rounds opened, let each expert answer the others, find new conflicts.

    Round 1 also places word-cued instructions on the transcript and fills underspecified details (KlingAvatar
    2.0 sec. 3.2). Offline experts settle by priority; model-backed experts argue in turn, each seeing what the
    previous one said this round (the multi-turn dialogue), and rule-based detection runs over their findings.
    """
    ctx = runtime.context
    round_index = state.get("num_rounds", 0) + 1
    findings = list(state.get("findings", []))
    conflicts = list(state.get("conflicts", []))
    resolutions = list(state.get("resolutions", []))
    reports = list(state["audio_reports"].values())
    new_findings: list[Finding] = []
    asked = Asked()
    text_report = state["text_report"]
    if round_index == 1:
        placed = [place_cue(item, reports, state["duration_s"]) for item in text_report.instructions]
        text_report = text_report.model_copy(update={"instructions": placed})
        new_findings += number_findings(findings_from_cues(text_report, round_index), findings, round_index)
        new_findings += number_findings(
            fill_details([*findings, *new_findings], reports, state["visual_report"], round_index),
            [*findings, *new_findings],
            round_index,
        )
    settled = {r.conflict_id for r in resolutions}
    open_before = [c for c in conflicts if c.id not in settled]
    new_resolutions = []
    model_conflicts: list[Conflict] = []
    dropped: list[str] = []
    transcript = " | ".join(f"{r.character_id}: {' '.join(w.text.strip() for w in r.words)}" for r in reports)
    for expert, name in ((Modality.AUDIO, "audio"), (Modality.VISUAL, "visual"), (Modality.TEXT, "text")):
        model = ctx.chat_model(name)  # type: ignore[arg-type]
        if model is None:
            continue
        known = [*findings, *new_findings]
        still_open = [c for c in open_before if c.id not in {r.conflict_id for r in new_resolutions}]
        turn_findings, turn_conflicts, turn_resolutions = take_turn(
            model, expert, round_index, known, still_open, transcript, asked, ctx.prompts_dir, dropped
        )
        new_findings += number_findings(turn_findings, known, round_index)
        model_conflicts += turn_conflicts
        open_before += turn_conflicts
        new_resolutions += turn_resolutions
    # Offline (and any left unsettled): the priority rule settles conflicts opened in earlier rounds.
    answered = {r.conflict_id for r in new_resolutions}
    new_resolutions += resolve_conflicts(
        [c for c in open_before if c.id not in answered and c.round < round_index], findings, round_index
    )
    new_conflicts = [
        *model_conflicts,
        *detect_conflicts([*findings, *new_findings], conflicts + model_conflicts, round_index),
    ]
    record = _record(
        state,
        runtime,
        num_rounds=round_index,
        findings=[*findings, *new_findings],
        conflicts=[*conflicts, *new_conflicts],
        resolutions=[*resolutions, *new_resolutions],
    )
    update: dict[str, Any] = {
        "num_rounds": round_index,
        "findings": new_findings,
        "conflicts": new_conflicts,
        "resolutions": new_resolutions,
        "stop_reason": stop_reason(record),
        "text_report": text_report,
        **_accounting_update(asked),
    }
    update["repairs"] += [
        Repair(stage="co-reasoning", kind="deterministic", action="drop_reference", detail=d) for d in dropped
    ]
    return update


def route_after_round(state: DirectorState) -> Literal["co_reason", "write_storyline"]:
    """Another round, or the storyline: the pure stop rule decides (`coreasoning.stop_reason`)."""
    return "write_storyline" if state.get("stop_reason") else "co_reason"


def _settle_leftovers(state: DirectorState, runtime: Runtime_) -> tuple[CoReasoningRecord, list]:
    """Conflicts still open when the rounds ran out are settled by priority, in the last round."""
    record = _record(state, runtime)
    late = resolve_conflicts(record.open_conflicts, record.findings, record.num_rounds)
    return record.model_copy(update={"resolutions": [*record.resolutions, *late]}), late


def write_shot_storyline(state: DirectorState, runtime: Runtime_) -> dict[str, Any]:
    """The text expert writes the storyline from what prevailed."""
    ctx, job = runtime.context, state["job"]
    record, late = _settle_leftovers(state, runtime)
    record = CoReasoningRecord.model_validate(record.model_dump())
    reports = list(state["audio_reports"].values())
    staged = prevailing(record.findings, record.conflicts, record.resolutions)
    anchors = sorted({t for f in staged if f.expert is Modality.TEXT for t in (f.start_s, f.end_s) if t is not None})
    storyline = write_storyline(
        job, reports, state["visual_report"], staged, record, anchors_s=anchors, prompts_dir=ctx.prompts_dir
    )
    asked = Asked()
    repairs: list[Repair] = []
    model = ctx.chat_model("text")
    if model is not None:
        storyline = _storyline_from_model(model, storyline, state, staged, ctx, asked, repairs)
    update = {"storyline": storyline, "resolutions": late, "repairs": repairs, **_accounting_update(asked)}
    update["repairs"] = repairs + update["repairs"]
    update["prompt_refs"] = [*storyline.prompt_refs, *asked.prompt_refs]
    return update


def _storyline_schema(duration_s: float, min_shot_s: float) -> dict[str, Any]:
    """StorylineDraft's schema with no more shots than the timeline can hold at the shortest shot length, so a
    small model cannot run on until the token limit cuts its JSON off."""
    schema = StorylineDraft.model_json_schema()
    most = max(1, min(int(duration_s / min_shot_s), 40))
    schema["properties"]["shots"] = {**schema["properties"]["shots"], "maxItems": most}
    return schema


def _storyline_from_model(
    model: ChatModel,
    draft_base: Storyline,
    state: DirectorState,
    staged: Sequence[Finding],
    ctx: DirectorContext,
    asked: Asked,
    repairs: list[Repair],
) -> Storyline:
    """The model's storyline: its draft fitted to the timeline, its speakers taken from the audio, validated."""
    reports = list(state["audio_reports"].values())
    utterances = [f"{u.start_s:.2f}-{u.end_s:.2f} {r.character_id} {u.text!r}" for r in reports for u in r.utterances]
    min_shot_s = min(ShotLimits().min_s, draft_base.duration_s / 2)

    built: list[Storyline] = []

    def check(draft: StorylineDraft) -> StorylineDraft:
        spans = fit_timeline(
            [(s.start_s, s.end_s) for s in draft.shots], reports, draft_base.duration_s, min_shot_s, repairs
        )
        shots = []
        for start, end, index in spans:
            shot = draft.shots[index]
            words = [w.text.strip() for r in reports for w in r.words if start <= (w.start_s + w.end_s) / 2 < end]
            speakers = [
                r.character_id for r in reports if any(start <= (w.start_s + w.end_s) / 2 < end for w in r.words)
            ]
            if sorted(speakers) != sorted(shot.speakers):
                repairs.append(
                    Repair(
                        stage="storyline",
                        kind="deterministic",
                        action="speakers_from_audio",
                        detail=f"shot {start:.2f}-{end:.2f}: {shot.speakers} -> {speakers}",
                    )
                )
            shots.append(
                Shot(
                    **{
                        **shot.model_dump(),
                        "start_s": start,
                        "end_s": end,
                        "speakers": speakers,
                        "transcript": " ".join(words),
                    }
                )
            )
        # the whole storyline must validate (tiling, speakers, gaze), or the error goes back to the model
        data = {
            **draft_base.model_dump(),
            "global_prompt": draft.global_prompt,
            "shots": [s.model_dump() for s in shots],
        }
        built[:] = [Storyline.model_validate(data)]
        return draft

    ask(
        model,
        "text_expert/storyline",
        StorylineDraft,
        expert="text",
        purpose="storyline",
        inputs={
            "examples": storyline_examples(ctx.prompts_dir),
            "characters": json.dumps([c.model_dump(mode="json", exclude={"audio"}) for c in draft_base.characters]),
            "duration_s": round(draft_base.duration_s, 3),
            "utterances": "; ".join(utterances) or "(none)",
            "findings": json.dumps(
                [
                    {"aspect": f.aspect, "value": f.value, "who": f.character_id, "from": f.start_s, "to": f.end_s}
                    for f in staged
                ]
            ),
            "resolutions": json.dumps([r.decision for r in draft_base.reasoning.resolutions])
            if draft_base.reasoning
            else "[]",
            "style": draft_base.style.visual_style.value,
            "scene": draft_base.style.scene,
        },
        json_schema=_storyline_schema(draft_base.duration_s, min_shot_s),
        prepare=lambda data: fix_gaze(
            clamp_vocabulary(data, repairs, load_lexicon(ctx.prompts_dir)),
            [c.id for c in draft_base.characters],
            repairs,
        ),
        check=check,  # type: ignore[arg-type,return-value]
        max_attempts=ctx.max_attempts,
        accounting=asked,
        prompts_dir=ctx.prompts_dir,
        max_tokens=2000,
    )
    return built[0]


def direct_negative_prompts(state: DirectorState, runtime: Runtime_) -> dict[str, Any]:
    """The negative director: one negative prompt per shot (KlingAvatar 2.0 sec. 3.2)."""
    ctx = runtime.context
    storyline, refs = direct_negatives(state["storyline"], state["visual_report"], ctx.prompts_dir)
    asked = Asked()
    model = ctx.chat_model("negative")
    if model is not None:
        texts = write_negatives(model, storyline.shots, ctx.max_attempts, asked, ctx.prompts_dir)
        shots = [
            shot.model_copy(update={"negative_prompt": f"{text.strip()}, {shot.negative_prompt}".strip(", ")})
            for shot, text in zip(storyline.shots, texts, strict=True)
        ]
        storyline = storyline.model_copy(update={"shots": shots})
    update = _accounting_update(asked)
    update["prompt_refs"] = [*refs, *asked.prompt_refs]
    return {"storyline": Storyline.model_validate(storyline.model_dump()), **update}


def review_storyline(state: DirectorState, runtime: Runtime_) -> dict[str, Any]:
    """An optional pause for a person: resume with None to accept, or with an edited storyline (dict)."""
    if not runtime.context.review:
        return {}
    edited = interrupt({"storyline": state["storyline"].model_dump(mode="json")})
    if edited is None:
        return {"reviewed": True}
    return {"storyline": Storyline.model_validate(edited), "reviewed": True}


def plan_render_segments(state: DirectorState, runtime: Runtime_) -> dict[str, Any]:
    """Segment-level plans: the render plan's sub-clips, anchors and local prompts."""
    ctx = runtime.context
    reports = list(state["audio_reports"].values())
    plan, refs = plan_segments(
        state["storyline"], state["job"], reports, max_segment_s=ctx.max_segment_s, prompts_dir=ctx.prompts_dir
    )
    asked = Asked()
    model = ctx.chat_model("text")
    if model is not None:
        prompts = write_segment_prompts(model, plan, state["storyline"], ctx.max_attempts, asked, ctx.prompts_dir)
        segments = [s.model_copy(update={"prompt": p}) for s, p in zip(plan.segments, prompts, strict=True)]
        plan = plan.model_copy(update={"segments": segments})
    update = _accounting_update(asked)
    update["prompt_refs"] = [*refs, *asked.prompt_refs]
    return {"render_plan": plan, **update}
