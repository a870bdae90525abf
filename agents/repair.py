"""Deterministic repairs of a model's storyline draft, applied before asking the model again.

DESIGN.md: validate with pydantic and jsonschema; repair what rules can repair (snap times to word boundaries,
merge tiny shots, clamp to the vocabulary), and only then feed the error back to the model.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Sequence
from typing import Any

from codirector.agents.instructions import Lexicon, load_lexicon
from codirector.schemas.plan import Repair
from codirector.schemas.reports import AudioReport
from codirector.schemas.vocab import CameraMovement, Emotion, MotionSpeed, ShotSize

__all__ = ["clamp_vocabulary", "fit_timeline", "fix_gaze"]

_VOCAB: dict[tuple[str, ...], tuple[list[str], str]] = {
    ("shot_size",): ([s.value for s in ShotSize], ShotSize.MEDIUM_CLOSE_UP.value),
    ("emotion", "label"): ([e.value for e in Emotion], Emotion.NEUTRAL.value),
    ("camera", "movement"): ([m.value for m in CameraMovement], CameraMovement.STATIC.value),
    ("camera", "speed"): ([m.value for m in MotionSpeed], MotionSpeed.SLOW.value),
}


def _nearest(value: str, allowed: list[str], default: str, synonyms: dict[str, str]) -> str:
    cleaned = str(value).strip().lower().replace("-", "_").replace(" ", "_")
    if cleaned in allowed:
        return cleaned
    synonym = synonyms.get(str(value).strip().lower()) or synonyms.get(cleaned.replace("_", " "))
    if synonym in allowed:
        return synonym
    close = difflib.get_close_matches(cleaned, allowed, n=1, cutoff=0.6)
    return close[0] if close else default


def _synonyms(lexicon: Lexicon, aspect: str) -> dict[str, str]:
    return {
        phrase.lower(): value.partition("_")[0]
        if aspect == "camera" and value.startswith(("pan_", "tilt_", "truck_", "arc_"))
        else value
        for value, phrases in lexicon.tables.get(aspect, {}).items()
        for phrase in phrases
    }


def clamp_vocabulary(data: Any, repairs: list[Repair], lexicon: Lexicon | None = None) -> Any:
    """Map out-of-vocabulary values in shot drafts to the allowed term: a synonym from the text expert's lexicon
    ("joyful" is happy), else the closest spelling, else a neutral default."""
    lexicon = lexicon or load_lexicon()
    synonyms = {
        ("shot_size",): _synonyms(lexicon, "framing"),
        ("emotion", "label"): _synonyms(lexicon, "emotion"),
        ("camera", "movement"): _synonyms(lexicon, "camera"),
        ("camera", "speed"): _synonyms(lexicon, "speed"),
    }
    shots = data.get("shots") if isinstance(data, dict) else None
    if not isinstance(shots, list):
        return data
    for index, shot in enumerate(shots):
        if not isinstance(shot, dict):
            continue
        for path, (allowed, default) in _VOCAB.items():
            holder: Any = shot
            for key in path[:-1]:
                holder = holder.get(key) if isinstance(holder, dict) else None
            if isinstance(holder, dict) and path[-1] in holder and holder[path[-1]] not in allowed:
                fixed = _nearest(holder[path[-1]], allowed, default, synonyms[path])
                repairs.append(
                    Repair(
                        stage="storyline",
                        kind="deterministic",
                        action="clamp_vocabulary",
                        detail=f"shots[{index}].{'.'.join(path)}: {holder[path[-1]]!r} -> {fixed!r}",
                    )
                )
                holder[path[-1]] = fixed
        emotion = shot.get("emotion")
        if isinstance(emotion, dict) and isinstance(emotion.get("intensity"), int | float):
            emotion["intensity"] = min(max(int(emotion["intensity"]), 1), 3)
        camera = shot.get("camera")
        if isinstance(camera, dict):
            movement = camera.get("movement")
            if movement in ("pan", "truck", "arc") and camera.get("direction") not in ("left", "right"):
                camera["direction"] = "right"
            elif movement in ("tilt", "pedestal") and camera.get("direction") not in ("up", "down"):
                camera["direction"] = "up"
            elif movement not in ("pan", "truck", "arc", "tilt", "pedestal"):
                camera.pop("direction", None)
    return data


def fix_gaze(data: Any, character_ids: Sequence[str], repairs: list[Repair]) -> Any:
    """A gaze at "character" needs an existing other character: point it at one, or at the camera when alone."""
    shots = data.get("shots") if isinstance(data, dict) else None
    for index, shot in enumerate(shots if isinstance(shots, list) else []):
        gaze = shot.get("gaze") if isinstance(shot, dict) else None
        if not isinstance(gaze, dict):
            continue
        target, who = gaze.get("target"), gaze.get("character_id")
        if target == "character" and who not in character_ids:
            speakers = shot.get("speakers") or []
            others = [c for c in character_ids if c not in speakers] or list(character_ids)
            fixed = (
                {"target": "character", "character_id": others[0]} if len(character_ids) > 1 else {"target": "camera"}
            )
        elif target != "character" and who is not None:
            fixed = {"target": target}
        else:
            continue
        repairs.append(
            Repair(
                stage="storyline",
                kind="deterministic",
                action="fix_gaze",
                detail=f"shots[{index}].gaze: {gaze} -> {fixed}",
            )
        )
        shot["gaze"] = fixed
    return data


def fit_timeline(
    spans: Sequence[tuple[float, float]],
    audio: Sequence[AudioReport],
    duration_s: float,
    min_shot_s: float,
    repairs: list[Repair],
) -> list[tuple[float, float, int]]:
    """Make drafted shot spans tile [0, duration]: sort, snap inner cuts to the nearest gap between words,
    close gaps and overlaps, merge shots shorter than `min_shot_s`. Returns (start, end, draft index)."""
    order = sorted(range(len(spans)), key=lambda i: spans[i][0])
    words = sorted((w.start_s, w.end_s) for r in audio for w in r.words)
    gaps = [(a[1] + b[0]) / 2 for a, b in itertools.pairwise(words) if b[0] > a[1]]
    cuts = [0.0]
    kept: list[int] = [order[0]]
    for index in order[1:]:
        cut = min(max(spans[index][0], 0.0), duration_s)
        if gaps:
            snapped = min(gaps, key=lambda g: abs(g - cut))
            if abs(snapped - cut) > 1e-3:
                repairs.append(
                    Repair(
                        stage="storyline",
                        kind="deterministic",
                        action="snap_to_word",
                        detail=f"cut {cut:.3f} s -> {snapped:.3f} s",
                    )
                )
            cut = snapped
        if cut - cuts[-1] < min_shot_s or duration_s - cut < min_shot_s:
            repairs.append(
                Repair(
                    stage="storyline",
                    kind="deterministic",
                    action="merge_short_shot",
                    detail=f"shot at {spans[index][0]:.3f} s merged into its neighbour",
                )
            )
            continue
        cuts.append(cut)
        kept.append(index)
    if abs(spans[order[0]][0]) > 1e-6 or abs(max(s[1] for s in spans) - duration_s) > 1e-3:
        repairs.append(
            Repair(
                stage="storyline",
                kind="deterministic",
                action="stretch_to_timeline",
                detail=f"shots now span 0 to {duration_s:.3f} s",
            )
        )
    cuts.append(duration_s)
    return [(cuts[i], cuts[i + 1], kept[i]) for i in range(len(kept))]
