"""The offline text expert's reading of the user's prompt: what is asked for, for whom, and when.

KlingAvatar 2.0 sec. 3.2: the textual expert "interprets user instructions". Without a language model this is
a lexicon match (prompts/text_expert/lexicon.yaml) over clauses, with timing words ("at the end", "halfway
through", "from 3 to 6 seconds", "when she says 'launch'") placed on the audio timeline. Words a timing
phrase leads a sentence with apply to the rest of that sentence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from codirector.prompts.templates import load_prompt_data
from codirector.schemas.base import PromptRef
from codirector.schemas.job import CharacterSpec
from codirector.schemas.reports import Instruction, TextReport

__all__ = ["Lexicon", "load_lexicon", "read_instructions", "timing_window"]

_SENTENCE = re.compile(r"(?<=[.!?;。！？；])\s*")
_CLAUSE = re.compile(r",\s*|，|\s+(while|as)\s+|\s+then\s+|\s+and then\s+")
_WORD_CUE = re.compile(
    r"\bwhen\s+(?:he|she|they|it|[A-Z]\w*)\s+(?:says|say|sings|mentions|reaches|gets to|talks about|cuts in about)"
    r"\s+['\"“]?([^'\"”,.;]+)['\"”]?",
    re.IGNORECASE,
)
_SECONDS = r"(\d+(?:\.\d+)?)\s*(?:s\b|sec\b|secs\b|seconds?\b)"
_FROM_TO = re.compile(rf"\bfrom\s+(\d+(?:\.\d+)?)\s*(?:s|sec|seconds)?\s+to\s+{_SECONDS}", re.IGNORECASE)
_AFTER = re.compile(rf"\bafter\s+{_SECONDS}", re.IGNORECASE)
_FIRST_N = re.compile(rf"\b(?:for\s+)?the\s+first\s+{_SECONDS}", re.IGNORECASE)
_LAST_N = re.compile(rf"\b(?:in\s+|for\s+)?the\s+last\s+{_SECONDS}", re.IGNORECASE)
_AT = re.compile(rf"\bat\s+{_SECONDS}", re.IGNORECASE)
_CHANGE = re.compile(r"\b(turns?|becomes?|grows?|from then on|shifts?)\b", re.IGNORECASE)
_CJK = re.compile(r"[\u4e00-\u9fff]")


@dataclass(frozen=True)
class Lexicon:
    """Phrase tables by aspect: aspect -> vocabulary value -> phrases (see lexicon.yaml)."""

    tables: dict[str, dict[str, tuple[str, ...]]]
    everyone: tuple[str, ...]
    ref: PromptRef


@cache
def _compiled(phrases: tuple[str, ...]) -> re.Pattern[str]:
    ordered = sorted(phrases, key=len, reverse=True)
    latin = [re.escape(p) for p in ordered if not _CJK.search(p)]
    cjk = [re.escape(p) for p in ordered if _CJK.search(p)]
    alternatives = []
    if latin:
        alternatives.append(r"\b(?:" + "|".join(latin) + r")\b")
    if cjk:
        alternatives.append("(?:" + "|".join(cjk) + ")")
    return re.compile("|".join(alternatives) or r"(?!)", re.IGNORECASE)


def load_lexicon(prompts_dir: Path | None = None) -> Lexicon:
    data, ref = load_prompt_data("text_expert/lexicon", prompts_dir)
    tables = {
        aspect: {str(value): tuple(str(p) for p in phrases) for value, phrases in table.items()}
        for aspect, table in data.items()
        if isinstance(table, dict)
    }
    return Lexicon(tables=tables, everyone=tuple(data.get("everyone", ())), ref=ref)


def _matches(lexicon: Lexicon, aspect: str, text: str) -> list[tuple[int, str, str]]:
    """(position, value, matched phrase) for each vocabulary value whose phrases occur in `text`."""
    found = []
    for value, phrases in lexicon.tables.get(aspect, {}).items():
        match = _compiled(phrases).search(text)
        if match is not None:
            found.append((match.start(), value, match.group(0)))
    return sorted(found)


def timing_window(timing: str, duration_s: float) -> tuple[float, float]:
    """The span of the timeline a timing anchor names. The start and the end are a quarter of the video,
    at most 5 s, so "push in at the end" lands on the last phrase rather than the last half."""
    edge = min(0.25 * duration_s, 5.0)
    return {
        "start": (0.0, edge),
        "middle": (0.4 * duration_s, 0.6 * duration_s),
        "second_half": (0.5 * duration_s, duration_s),
        "end": (duration_s - edge, duration_s),
    }.get(timing, (0.0, duration_s))


def _clause_timing(clause: str, lexicon: Lexicon, duration_s: float) -> dict[str, Any] | None:
    """The timing a clause states, if any, as Instruction fields."""
    if match := _FROM_TO.search(clause):
        start, end = sorted((float(match.group(1)), float(match.group(2))))
        return {"timing": "window", "start_s": min(start, duration_s), "end_s": min(end, duration_s)}
    if match := _FIRST_N.search(clause):
        return {"timing": "window", "start_s": 0.0, "end_s": min(float(match.group(1)), duration_s)}
    if match := _LAST_N.search(clause):
        return {"timing": "window", "start_s": max(0.0, duration_s - float(match.group(1))), "end_s": duration_s}
    if match := _AFTER.search(clause):
        return {"timing": "window", "start_s": min(float(match.group(1)), duration_s), "end_s": duration_s}
    if match := _AT.search(clause):
        start = min(float(match.group(1)), duration_s)
        return {"timing": "window", "start_s": start, "end_s": min(start + 2.0, duration_s)}
    if match := _WORD_CUE.search(clause):
        return {"timing": "word", "cue_word": match.group(1).strip()}
    timings = _matches(lexicon, "timing", clause)
    if not timings:
        return None
    value = timings[0][1]
    if value == "until_end":
        return {"timing": "window", "start_s": None, "end_s": duration_s}
    if value == "throughout":
        return {"timing": "throughout"}
    start, end = timing_window(value, duration_s)
    anchor = "middle" if value == "second_half" else value
    return {"timing": anchor, "start_s": start, "end_s": end}


def _has_items(clause: str, lexicon: Lexicon) -> bool:
    aspects = ("emotion", "camera", "framing", "action", "gaze", "style", "delivery")
    return any(_matches(lexicon, aspect, clause) for aspect in aspects)


def _character_for(clause: str, characters: Sequence[CharacterSpec], lexicon: Lexicon) -> str | None:
    if len(characters) == 1:
        return characters[0].id
    if _compiled(lexicon.everyone).search(clause):
        return None
    named = [c.id for c in characters if re.search(rf"\b{re.escape(c.display_name)}\b|\b{c.id}\b", clause, re.I)]
    return named[0] if len(named) == 1 else None


def _items(clause: str, lexicon: Lexicon) -> Iterable[tuple[str, str, str, str]]:
    """(aspect, value, detail, phrase) found in one clause."""
    intensity = _matches(lexicon, "intensity", clause)
    speeds = _matches(lexicon, "speed", clause)
    for _, value, phrase in _matches(lexicon, "emotion", clause):
        yield "emotion", value, intensity[0][1] if intensity else "", phrase
    for _, value, phrase in _matches(lexicon, "camera", clause):
        movement, _, direction = (
            value.partition("_")
            if value.startswith(("pan_", "tilt_", "truck_", "arc_"))
            else (
                value,
                "",
                "",
            )
        )
        speed = speeds[0][1] if speeds else ""
        yield "camera", movement, ",".join(part for part in (direction, speed) if part), phrase
    for aspect in ("framing", "action", "gaze", "style", "delivery"):
        for _, value, phrase in _matches(lexicon, aspect, clause):
            yield aspect, value, "", phrase


def read_instructions(
    prompt: str, characters: Sequence[CharacterSpec], duration_s: float, lexicon: Lexicon
) -> TextReport:
    """Read the user's prompt into placed instructions.

    Example:
        >>> from codirector.schemas.job import CharacterSpec
        >>> host = CharacterSpec(id="host", reference_image="a.jpg", audio="a.wav")
        >>> report = read_instructions("She smiles, slow push-in at the end.", [host], 12.0, load_lexicon())
        >>> [(i.aspect, i.value, i.timing) for i in report.instructions]
        [('emotion', 'happy', 'throughout'), ('action', 'smiles', 'throughout'), ('camera', 'push_in', 'end')]
    """
    instructions: list[Instruction] = []
    unparsed: list[str] = []
    for sentence in filter(None, (s.strip() for s in _SENTENCE.split(prompt))):
        carried: dict[str, Any] | None = None
        previous: dict[str, Any] | None = None
        pieces = _CLAUSE.split(sentence)
        # re.split interleaves the captured separator ("while"/"as", else None) before each later clause
        clauses = [(pieces[0], None), *list(zip(pieces[2::2], pieces[1::2], strict=False))]
        for raw, separator in clauses:
            clause = (raw or "").strip()
            if not clause:
                continue
            timing = _clause_timing(clause, lexicon, duration_s)
            if timing is not None and not _has_items(clause, lexicon):
                if timing.get("timing") == "word" and carried and carried.get("start_s") is not None:
                    timing = {**timing, "start_s": carried["start_s"]}  # "halfway through, when ...": not before
                carried = timing  # a lead-in such as "halfway through," or "when she says 'launch',"
                continue
            if timing is None and separator is not None:
                timing = previous  # "...at the end while the camera pushes in": simultaneous with the last clause
            if timing is not None and "start_s" in timing and timing["start_s"] is None:
                # "until the end" continues the sentence's lead-in to the end of the video
                timing = {**(carried or {"timing": "window", "start_s": 0.0}), "end_s": duration_s}
            placed = timing or carried or {"timing": "throughout"}
            if placed.get("timing") == "word" and _CHANGE.search(clause):
                placed = {**placed, "end_s": duration_s}  # "her mood turns excited": from the cue on
            previous = placed
            character_id = _character_for(clause, characters, lexicon)
            items = list(_items(clause, lexicon))
            if not items:
                unparsed.append(clause)
            for aspect, value, detail, _phrase in items:
                instructions.append(
                    Instruction(
                        aspect=aspect,  # type: ignore[arg-type]
                        value=value,
                        detail=detail,
                        character_id=character_id,
                        source_text=clause,
                        **placed,
                    )
                )
    return TextReport(prompt=prompt, instructions=_dedupe(instructions), unparsed=unparsed)


def _dedupe(instructions: list[Instruction]) -> list[Instruction]:
    seen: set[tuple[Any, ...]] = set()
    kept = []
    for item in instructions:
        key = (item.aspect, item.value, item.character_id, item.timing, item.start_s, item.end_s, item.cue_word)
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept
