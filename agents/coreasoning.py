"""Co-reasoning rules: findings from each expert's reading, conflicts between modalities, resolutions by
priority, details filled in where the inputs are silent, and the stop rule.

KlingAvatar 2.0 sec. 3.2: the experts "engage in several rounds of co-reasoning ... to resolve conflicts (e.g.,
an angry vocal tone paired with a neutral script) and to fill in underspecified details such as implied actions
or camera movements". Kling-Avatar sec. 2.1 fixes the priority: "user knowledge, audio, and image references".

Everything here is a pure function of findings and reports, so a round can be replayed and tested, and the
LLM experts' findings go through the same conflict detection as the offline ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from itertools import combinations
from typing import Literal

from codirector.schemas.reasoning import Conflict, CoReasoningRecord, Finding, Resolution
from codirector.schemas.reports import AudioReport, Instruction, TextReport, VisualReport
from codirector.schemas.vocab import Delivery, Emotion, Modality, ShotSize

__all__ = [
    "PRIORITY",
    "detect_conflicts",
    "fill_details",
    "findings_from_audio",
    "findings_from_cues",
    "findings_from_text",
    "findings_from_visual",
    "place_cue",
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

_STOPWORDS = {"that", "this", "with", "about", "when", "then", "they", "their", "there", "from"}

StopReason = Literal["no_open_conflicts", "max_rounds"]


def _fid(expert: Modality, round_index: int, n: int) -> str:
    return f"{expert.value}-r{round_index}-{n}"


def findings_from_audio(reports: Sequence[AudioReport]) -> list[Finding]:
    """Round 0: what each voice says about emotion, delivery and who speaks when."""
    found: list[Finding] = []
    for report in reports:
        cid = report.character_id
        span = (report.words[0].start_s, report.words[-1].end_s) if report.words else (None, None)
        emo = report.emotion
        found.append(
            Finding(
                id="new",
                round=0,
                expert=Modality.AUDIO,
                aspect="emotion",
                value=emo.label.value,
                character_id=cid,
                start_s=span[0],
                end_s=span[1],
                confidence=emo.confidence,
                statement=f"{cid}'s voice sounds {emo.label.value} (intensity {emo.intensity}): pitch, energy "
                f"and rate measured over the track.",
            )
        )
        for utterance in report.utterances:
            if utterance.emotion is not None and utterance.emotion.label != emo.label:
                found.append(
                    Finding(
                        id="new",
                        round=0,
                        expert=Modality.AUDIO,
                        aspect="emotion",
                        value=utterance.emotion.label.value,
                        character_id=cid,
                        start_s=utterance.start_s,
                        end_s=utterance.end_s,
                        confidence=utterance.emotion.confidence,
                        statement=f"The phrase {utterance.text!r} turns {utterance.emotion.label.value}.",
                    )
                )
        found.append(
            Finding(
                id="new",
                round=0,
                expert=Modality.AUDIO,
                aspect="delivery",
                value=report.delivery.value,
                character_id=cid,
                confidence=report.delivery_confidence,
                statement=f"{cid}'s track is {report.delivery.value}"
                + (f" at {report.prosody.tempo_bpm:.0f} BPM" if report.prosody.tempo_bpm else "")
                + ".",
            )
        )
        if emo.intensity != 2:
            found.append(
                Finding(
                    id="new",
                    round=0,
                    expert=Modality.AUDIO,
                    aspect="intensity",
                    value=str(emo.intensity),
                    character_id=cid,
                    start_s=span[0],
                    end_s=span[1],
                    confidence=emo.confidence,
                    statement=f"{cid}'s delivery is {'restrained' if emo.intensity == 1 else 'strongly marked'}.",
                )
            )
    return _numbered(found, Modality.AUDIO, 0)


def findings_from_visual(report: VisualReport) -> list[Finding]:
    """Round 0: framing, subject and style of each reference."""
    found = []
    for character in report.characters:
        face = "a face" if character.face_bbox_xyxy_norm is not None else "no face found"
        found.append(
            Finding(
                id="new",
                round=0,
                expert=Modality.VISUAL,
                aspect="framing",
                value=character.framing.value,
                character_id=character.character_id,
                statement=f"The reference frames {character.character_id} as a {character.framing.value} "
                f"({character.subject.value}, {face}): {character.appearance}.",
            )
        )
    found.append(
        Finding(
            id="new",
            round=0,
            expert=Modality.VISUAL,
            aspect="style",
            value=report.style.value,
            statement=f"The images are {report.style.value}; {report.scene}; {report.lighting.description}.",
        )
    )
    return _numbered(found, Modality.VISUAL, 0)


def _instruction_finding(item: Instruction, round_index: int) -> Finding:
    aspect = {"gaze": "other"}.get(item.aspect, item.aspect)
    when = "" if item.timing == "throughout" else f" ({item.timing})"
    return Finding(
        id="new",
        round=round_index,
        expert=Modality.TEXT,
        aspect=aspect,
        character_id=item.character_id,  # type: ignore[arg-type]
        value=item.value if item.aspect != "gaze" else f"gaze:{item.value}",
        start_s=item.start_s,
        end_s=item.end_s,
        statement=f"The user asks for {item.aspect} {item.value}"
        + (f" ({item.detail})" if item.detail else "")
        + f"{when}: {item.source_text!r}.",
    )


def findings_from_cues(report: TextReport, round_index: int) -> list[Finding]:
    """Round 1: the word-cued requests, once `place_cue` has put them on the transcript."""
    return [_instruction_finding(item, round_index) for item in report.instructions if item.cue_word]


def findings_from_text(report: TextReport) -> list[Finding]:
    """Round 0: the user's requests that are placed without the transcript (word cues wait for round 1)."""
    found = [_instruction_finding(item, 0) for item in report.instructions if item.timing != "word"]
    return _numbered(found, Modality.TEXT, 0)


def place_cue(item: Instruction, reports: Sequence[AudioReport], duration_s: float) -> Instruction:
    """Place an instruction tied to a spoken word ("when she reaches launch day") at that word's time.

    The window runs from the cue's first word to the end of its phrase, or to the instruction's own end (e.g.
    "until the end"). A lead-in window ("halfway through, when she reaches launch day") rules out earlier
    matches. A cue that is never spoken (or mis-heard) falls back to the lead-in's start, else to the second half
    of the video, and says so.
    """
    if item.timing != "word" or not item.cue_word:
        return item
    words = re.findall(r"\w+", item.cue_word.lower())
    cue = [w for w in words if len(w) > 3 and w not in _STOPWORDS] or words or [item.cue_word.lower()]
    best: tuple[int, float, float] | None = None  # (distinct cue words matched, cue start, phrase end)
    for report in reports:
        if item.character_id is not None and report.character_id != item.character_id:
            continue
        for utterance in report.utterances:
            spoken = report.words[utterance.first_word : utterance.last_word + 1]
            hits = [w for w in spoken if any(c in w.text.lower() for c in cue)]
            matched = len({c for c in cue for w in hits if c in w.text.lower()})
            not_before = item.start_s if item.start_s is not None else 0.0  # a lead-in such as "halfway through"
            hits = [w for w in hits if w.start_s >= not_before - 1.0]
            if hits and (best is None or matched > best[0]):  # "launch day" beats an earlier lone "launch"
                best = (matched, hits[0].start_s, max(utterance.end_s, hits[0].end_s))
    if best is not None:
        end = item.end_s if item.end_s is not None else best[2]
        return item.model_copy(update={"start_s": best[1], "end_s": max(end, best[2])})
    return item.model_copy(
        update={
            "timing": "middle",
            "start_s": item.start_s if item.start_s is not None else duration_s / 2,
            "end_s": item.end_s or duration_s,
            "detail": (item.detail + "; " if item.detail else "") + f"cue {item.cue_word!r} is never spoken",
        }
    )


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
    if a.aspect == b.aspect == "intensity" and abs(int(a.value) - int(b.value)) >= 2:
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
                        Finding(
                            id="new",
                            round=round_index,
                            expert=Modality.TEXT,
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
                Finding(
                    id="new",
                    round=round_index,
                    expert=Modality.AUDIO,
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
                        Finding(
                            id="new",
                            round=round_index,
                            expert=Modality.AUDIO,
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
            Finding(
                id="new",
                round=round_index,
                expert=Modality.VISUAL,
                aspect="other",
                value="gaze:character",
                confidence=0.7,
                statement="Several characters share the frame: listeners look at whoever speaks.",
            )
        )
    return filled


def _numbered(found: Iterable[Finding], expert: Modality, round_index: int, start: int = 1) -> list[Finding]:
    return [f.model_copy(update={"id": _fid(expert, round_index, n)}) for n, f in enumerate(found, start)]


def number_findings(found: Sequence[Finding], existing: Sequence[Finding], round_index: int) -> list[Finding]:
    """Give new findings unique ids of the form ``<expert>-r<round>-<n>``."""
    taken = {f.id for f in existing}
    numbered = []
    for finding in found:
        n = 1
        while _fid(finding.expert, round_index, n) in taken:
            n += 1
        fid = _fid(finding.expert, round_index, n)
        taken.add(fid)
        numbered.append(finding.model_copy(update={"id": fid, "round": round_index}))
    return numbered


def stop_reason(record: CoReasoningRecord) -> StopReason | None:
    """The pure stop rule: stop when no conflict is open, or when the rounds are spent; else go on."""
    if record.num_rounds >= 1 and not record.open_conflicts:
        return "no_open_conflicts"
    if record.num_rounds >= record.max_rounds:
        return "max_rounds"
    return None
