"""The experts' findings: each reading turned into claims on the timeline, and word cues placed on the transcript.

A `Finding` is one expert's claim about the video to make (audio: "angry over 12-18 s"; text: "push in at the
end"). Round 0 is each expert's independent reading (KlingAvatar 2.0 sec. 3.2); the text expert's requests tied
to spoken words are placed in round 1, once the audio expert's transcript is there.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from codirector.schemas.reasoning import Finding
from codirector.schemas.reports import AudioReport, Instruction, TextReport, VisualReport
from codirector.schemas.vocab import Modality

__all__ = [
    "claim",
    "findings_from_audio",
    "findings_from_cues",
    "findings_from_text",
    "findings_from_visual",
    "number_findings",
    "place_cue",
]

_UNNUMBERED = "new"
_STOPWORDS = {"that", "this", "with", "about", "when", "then", "they", "their", "there", "from"}


def claim(expert: Modality, round_index: int, **fields: Any) -> Finding:
    """A new, not yet numbered finding of `expert` in `round_index`; `number_findings` gives it its id."""
    return Finding(id=_UNNUMBERED, round=round_index, expert=expert, **fields)


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
            claim(
                Modality.AUDIO,
                0,
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
                    claim(
                        Modality.AUDIO,
                        0,
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
            claim(
                Modality.AUDIO,
                0,
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
                claim(
                    Modality.AUDIO,
                    0,
                    aspect="intensity",
                    value=str(emo.intensity),
                    character_id=cid,
                    start_s=span[0],
                    end_s=span[1],
                    confidence=emo.confidence,
                    statement=f"{cid}'s delivery is {'restrained' if emo.intensity == 1 else 'strongly marked'}.",
                )
            )
    return number_findings(found, (), 0)


def findings_from_visual(report: VisualReport) -> list[Finding]:
    """Round 0: framing, subject and style of each reference."""
    found = []
    for character in report.characters:
        face = "a face" if character.face_bbox_xyxy_norm is not None else "no face found"
        found.append(
            claim(
                Modality.VISUAL,
                0,
                aspect="framing",
                value=character.framing.value,
                character_id=character.character_id,
                statement=f"The reference frames {character.character_id} as a {character.framing.value} "
                f"({character.subject.value}, {face}): {character.appearance}.",
            )
        )
    found.append(
        claim(
            Modality.VISUAL,
            0,
            aspect="style",
            value=report.style.value,
            statement=f"The images are {report.style.value}; {report.scene}; {report.lighting.description}.",
        )
    )
    return number_findings(found, (), 0)


def _instruction_finding(item: Instruction, round_index: int) -> Finding:
    aspect = {"gaze": "other"}.get(item.aspect, item.aspect)
    when = "" if item.timing == "throughout" else f" ({item.timing})"
    return claim(
        Modality.TEXT,
        round_index,
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
    return number_findings(found, (), 0)


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
