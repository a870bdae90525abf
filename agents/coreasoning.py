"""Co-reasoning rules: conflicts between modalities, resolutions by priority, details filled in where the inputs
are silent, and the stop rule (the findings themselves come from `findings.py`).

KlingAvatar 2.0 sec. 3.2: the experts "engage in several rounds of co-reasoning ... to resolve conflicts (e.g.,
an angry vocal tone paired with a neutral script) and to fill in underspecified details such as implied actions
or camera movements". Kling-Avatar sec. 2.1 fixes the priority: "user knowledge, audio, and image references".

Everything here is a pure function of findings and reports, so a round can be replayed and tested, and the
LLM experts' findings go through the same conflict detection as the offline ones.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import combinations
from typing import Literal

from codirector.agents.findings import claim
from codirector.schemas.reasoning import Conflict, CoReasoningRecord, Finding, Resolution
from codirector.schemas.reports import AudioReport, VisualReport
from codirector.schemas.vocab import Delivery, Emotion, Modality, ShotSize

__all__ = [
    "PRIORITY",
    "detect_conflicts",
    "fill_details",
    "prevailing",
    "resolve_conflicts",
    "stop_reason",
]

PRIORITY: tuple[Modality, ...] = (Modality.TEXT, Modality.AUDIO, Modality.VISUAL)
"""Who wins a conflict (Kling-Avatar sec. 2.1: "prioritized by user knowledge, audio, and image references")."""

# Emotions by valence and arousal: two labels conflict when their valence differs, or when their arousal
# differs and the voice is strongly marked.
_VALENCE = {
    Emotion.HAPPY: 1,
    Emotion.EXCITED: 1,
    Emotion.TENDER: 1,
    Emotion.CALM: 1,
    Emotion.SURPRISED: 0,
    Emotion.NEUTRAL: 0,
    Emotion.CONFUSED: -1,
    Emotion.SAD: -1,
    Emotion.ANGRY: -1,
    Emotion.FEARFUL: -1,
    Emotion.DISGUSTED: -1,
}
_AROUSAL = {
    Emotion.EXCITED: 1,
    Emotion.ANGRY: 1,
    Emotion.FEARFUL: 1,
    Emotion.SURPRISED: 1,
    Emotion.HAPPY: 0,
    Emotion.DISGUSTED: 0,
    Emotion.CONFUSED: 0,
    Emotion.NEUTRAL: 0,
    Emotion.CALM: -1,
    Emotion.TENDER: -1,
    Emotion.SAD: -1,
}
_FULL_BODY_ACTIONS = {"walks across the frame", "dances"}
_STILLNESS = {"stands still"}
_TIGHT = {ShotSize.EXTREME_CLOSE_UP, ShotSize.CLOSE_UP, ShotSize.MEDIUM_CLOSE_UP}

StopReason = Literal["no_open_conflicts", "max_rounds"]


def _overlap(a: Finding, b: Finding) -> bool:
    a0, a1 = a.start_s if a.start_s is not None else 0.0, a.end_s if a.end_s is not None else float("inf")
    b0, b1 = b.start_s if b.start_s is not None else 0.0, b.end_s if b.end_s is not None else float("inf")
    return a0 < b1 and b0 < a1


def _same_character(a: Finding, b: Finding) -> bool:
    return a.character_id is None or b.character_id is None or a.character_id == b.character_id


def _clash(a: Finding, b: Finding) -> str | None:
    """Why two findings of different modalities cannot both be staged, or None."""
    if a.expert == b.expert or not _same_character(a, b) or not _overlap(a, b):
        return None
    pair = {a.aspect, b.aspect}
    if a.aspect == b.aspect == "emotion":
        try:
            ea, eb = Emotion(a.value), Emotion(b.value)
        except ValueError:
            return None
        if ea is Emotion.NEUTRAL or eb is Emotion.NEUTRAL or ea == eb:
            return None
        if _VALENCE[ea] * _VALENCE[eb] < 0 or abs(_AROUSAL[ea] - _AROUSAL[eb]) == 2:
            return f"{a.expert.value} says {ea.value}, {b.expert.value} says {eb.value}"
    if pair == {"delivery", "action"} or pair == {"delivery", "camera"}:
        delivery, other = (a, b) if a.aspect == "delivery" else (b, a)
        if delivery.value == Delivery.SINGING.value and (other.value in _STILLNESS or other.value == "static"):
            return f"the track is a song, but the text asks for {other.value.replace('_', ' ')}"
    if a.aspect == b.aspect == "delivery" and a.value != b.value and Delivery.MIXED.value not in (a.value, b.value):
        return f"{a.expert.value} says {a.value}, {b.expert.value} says {b.value}"
    if pair == {"framing", "action"}:
        framing, action = (a, b) if a.aspect == "framing" else (b, a)
        if action.value in _FULL_BODY_ACTIONS and framing.value in {s.value for s in _TIGHT}:
            return f"the reference is a {framing.value.replace('_', ' ')}, but the text asks that it {action.value}"
    if a.aspect == b.aspect == "style" and a.value != b.value:
        return f"the images are {b.value if b.expert is Modality.VISUAL else a.value}, the text asks for " + (
            a.value if a.expert is Modality.TEXT else b.value
        )
    if (
        a.aspect == b.aspect == "intensity"
        and a.value.isdigit()
        and b.value.isdigit()
        and abs(int(a.value) - int(b.value)) >= 2
    ):  # a model may write any value: only numbers on the 1-3 scale compare
        return f"{a.expert.value} intensity {a.value} against {b.expert.value} intensity {b.value}"
    return None


def detect_conflicts(findings: Sequence[Finding], known: Sequence[Conflict], round_index: int) -> list[Conflict]:
    """New conflicts among the findings; a pair already in a known conflict is not reported again."""
    seen = {frozenset(c.finding_ids) for c in known}
    new: list[Conflict] = []
    for a, b in combinations(findings, 2):
        why = _clash(a, b)
        if why is None or frozenset((a.id, b.id)) in seen:
            continue
        seen.add(frozenset((a.id, b.id)))
        aspect = a.aspect if a.aspect == b.aspect else ("action" if "action" in (a.aspect, b.aspect) else a.aspect)
        who = f" for {a.character_id or b.character_id}" if (a.character_id or b.character_id) else ""
        new.append(
            Conflict(
                id=f"c{round_index}-{len(new) + 1}",
                round=round_index,
                aspect=aspect,  # type: ignore[arg-type]
                modalities=[a.expert, b.expert],
                finding_ids=[a.id, b.id],
                description=f"{why}{who}.",
            )
        )
    return new


_DECISIONS = {
    "emotion": "Stage the {winner} emotion; the {loser} reading only sets how strongly it shows.",
    "delivery": "Follow the {winner} expert's reading of the delivery.",
    "action": "Keep the {winner} request; the lips and head still follow the audio so sync is kept.",
    "framing": "Widen the shot so the requested action fits; identity still comes from the reference.",
    "style": "Render in the {winner} style the user asked for; keep the reference's identity and layout.",
    "intensity": "Use the {winner} expert's intensity.",
}


def resolve_conflicts(conflicts: Sequence[Conflict], findings: Sequence[Finding], round_index: int) -> list[Resolution]:
    """Settle each conflict by priority (text > audio > visual), with the decision and its reason."""
    by_id = {f.id: f for f in findings}
    resolutions = []
    for conflict in conflicts:
        winner = min(conflict.modalities, key=PRIORITY.index)
        losers = [m.value for m in conflict.modalities if m != winner]
        won = [by_id[i] for i in conflict.finding_ids if i in by_id and by_id[i].expert == winner]
        decision = _DECISIONS.get(conflict.aspect, "Follow the {winner} expert.").format(
            winner=winner.value, loser="/".join(losers)
        )
        if won:
            decision += f" Chosen: {won[0].aspect} {won[0].value}."
        resolutions.append(
            Resolution(
                conflict_id=conflict.id,
                round=round_index,
                decided_by=winner,
                decision=decision,
                rationale=f"{winner.value} outranks {', '.join(losers)} (priority text > audio > visual, "
                "Kling-Avatar sec. 2.1).",
            )
        )
    return resolutions


def prevailing(
    findings: Sequence[Finding], conflicts: Sequence[Conflict], resolutions: Sequence[Resolution]
) -> list[Finding]:
    """The findings the storyline stages: those that lost a settled conflict are dropped."""
    settled = {r.conflict_id: r.decided_by for r in resolutions}
    losing: set[str] = set()
    by_id = {f.id: f for f in findings}
    for conflict in conflicts:
        winner = settled.get(conflict.id)
        if winner is None:
            continue
        losing.update(i for i in conflict.finding_ids if i in by_id and by_id[i].expert != winner)
    return [f for f in findings if f.id not in losing]


_IMPLIED = (
    (re.compile(r"\b(hello|hi|hey|welcome|good (?:morning|evening|afternoon))\b|你好|欢迎", re.I), "waves a hand"),
    (re.compile(r"\b(thank you|thanks)\b|谢谢", re.I), "nods"),
    (re.compile(r"\b(ha(?:ha)+|funny|joke)\b|哈哈", re.I), "laughs"),
    (re.compile(r"\b(look|see|here|this)\b", re.I), "gestures with the hands"),
)


def fill_details(
    findings: Sequence[Finding], audio: Sequence[AudioReport], visual: VisualReport, round_index: int
) -> list[Finding]:
    """Details no input states: implied actions from the words, camera from emphasis, gaze in dialogue."""
    filled: list[Finding] = []
    present = {(f.aspect, f.value, f.character_id) for f in findings}
    text_actions = {f.value for f in findings if f.expert is Modality.TEXT and f.aspect == "action"}
    asks_camera = any(f.aspect == "camera" for f in findings)
    still = bool(text_actions & _STILLNESS)
    for report in audio:
        cid = report.character_id
        for utterance in report.utterances:
            for pattern, action in _IMPLIED:
                if pattern.search(utterance.text) and ("action", action, cid) not in present and not still:
                    present.add(("action", action, cid))
                    filled.append(
                        claim(
                            Modality.TEXT,
                            round_index,
                            aspect="action",
                            value=action,
                            character_id=cid,
                            start_s=utterance.start_s,
                            end_s=utterance.end_s,
                            confidence=0.6,
                            statement=f"Implied by the words {utterance.text!r}: {cid} {action}.",
                        )
                    )
        if report.delivery is Delivery.SINGING and not still and ("action", "sways to the rhythm", cid) not in present:
            filled.append(
                claim(
                    Modality.AUDIO,
                    round_index,
                    aspect="action",
                    value="sways to the rhythm",
                    character_id=cid,
                    confidence=0.6,
                    statement=f"{cid} sings; a gentle sway on the beat keeps the body alive.",
                )
            )
        if not asks_camera:
            for utterance in report.utterances:
                if utterance.emotion is not None and utterance.emotion.intensity == 3:
                    filled.append(
                        claim(
                            Modality.AUDIO,
                            round_index,
                            aspect="camera",
                            value="push_in",
                            character_id=cid,
                            start_s=utterance.start_s,
                            end_s=utterance.end_s,
                            confidence=0.5,
                            statement=f"The voice peaks on {utterance.text!r}: a slow push-in underlines it.",
                        )
                    )
    if len(visual.characters) > 1 and not any(f.value.startswith("gaze:") for f in findings):
        filled.append(
            claim(
                Modality.VISUAL,
                round_index,
                aspect="other",
                value="gaze:character",
                confidence=0.7,
                statement="Several characters share the frame: listeners look at whoever speaks.",
            )
        )
    return filled


def stop_reason(record: CoReasoningRecord) -> StopReason | None:
    """The pure stop rule: stop when no conflict is open, or when the rounds are spent; else go on."""
    if record.num_rounds >= 1 and not record.open_conflicts:
        return "no_open_conflicts"
    if record.num_rounds >= record.max_rounds:
        return "max_rounds"
    return None
