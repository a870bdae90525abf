"""The text expert's storyline synthesis: shots that tile the audio timeline, cut where people pause.

KlingAvatar 2.0 sec. 3.2: the textual expert "synthesizes a logically coherent storyline plan"; "the director
outputs a structured storyline that decomposes the video into a sequence of shots". Cuts fall between words (in
the gap between two phrases, or where the speaker changes), never inside one, so a cut never splits a syllable.
Each shot stages the findings that prevailed in co-reasoning (`coreasoning.prevailing`), text before audio
before image, and its prompt is written from `prompts/text_expert/shot_prompt.md`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from codirector.prompts.templates import PromptTemplate, load_prompt
from codirector.schemas.job import Job
from codirector.schemas.reasoning import CoReasoningRecord, Finding
from codirector.schemas.reports import AudioReport, VisualReport, Word
from codirector.schemas.storyline import Camera, EmotionCue, Gaze, GlobalStyle, Shot, StoryCharacter, Storyline
from codirector.schemas.vocab import (
    CameraMovement,
    Delivery,
    Direction,
    Emotion,
    GazeTarget,
    Modality,
    MotionSpeed,
    ShotSize,
    VisualStyle,
)

__all__ = ["ShotLimits", "cut_points", "speech_spans", "write_storyline"]

_LISTENING = {"listens attentively"}
_RANK = {Modality.TEXT: 0, Modality.AUDIO: 1, Modality.VISUAL: 2}


@dataclass(frozen=True)
class ShotLimits:
    """Shot lengths the synthesis aims for: longer shots are cut at the widest pause, shorter ones merged."""

    min_s: float = 1.5
    max_s: float = 8.0


def speech_spans(reports: Sequence[AudioReport]) -> list[tuple[float, float, str]]:
    """(start_s, end_s, character_id) of every word on every track, by start time."""
    return sorted((w.start_s, w.end_s, r.character_id) for r in reports for w in r.words)


def _gaps(spans: Sequence[tuple[float, float, str]]) -> list[tuple[float, float]]:
    """Where nobody is mid-word: (cut time, silence length) at the middle of each gap between words."""
    gaps = []
    reach = spans[0][1] if spans else 0.0
    for (_start, _end, _who), (next_start, next_end, _) in itertools.pairwise(spans):
        if next_start > reach:
            gaps.append(((reach + next_start) / 2, next_start - reach))
        reach = max(reach, next_end)
    return gaps


def cut_points(
    reports: Sequence[AudioReport], duration_s: float, anchors_s: Sequence[float], limits: ShotLimits
) -> list[float]:
    """Shot boundaries from 0 to `duration_s`.

    Mandatory cuts: speaker changes, and the edges of timed instructions (`anchors_s`), each snapped to the
    nearest gap between words. Then any shot longer than `limits.max_s` is cut at its widest pause, and any
    shot shorter than `limits.min_s` is merged into a neighbour.
    """
    spans = speech_spans(reports)
    gaps = _gaps(spans)
    if not gaps:
        return [0.0, duration_s]
    cuts = {0.0, duration_s}
    for (_, _, who), (start, _, next_who) in itertools.pairwise(spans):
        if who != next_who:
            cuts.add(min(gaps, key=lambda g: abs(g[0] - start))[0])
    for anchor in anchors_s:
        if 0.0 < anchor < duration_s:
            cuts.add(min(gaps, key=lambda g: abs(g[0] - anchor))[0])
    ordered = sorted(cuts)
    changed = True
    while changed:  # split the longest-overrun shot at its widest pause until all fit
        changed = False
        for start, end in itertools.pairwise(ordered):
            inside = [g for g in gaps if start + limits.min_s <= g[0] <= end - limits.min_s]
            if end - start > limits.max_s and inside:
                ordered = sorted({*ordered, max(inside, key=lambda g: (g[1], -abs(g[0] - (start + end) / 2)))[0]})
                changed = True
                break
    return _merge_short(ordered, limits.min_s)


def _merge_short(cuts: list[float], min_s: float) -> list[float]:
    cuts = list(cuts)
    while len(cuts) > 2:
        lengths = [b - a for a, b in itertools.pairwise(cuts)]
        shortest = min(range(len(lengths)), key=lengths.__getitem__)
        if lengths[shortest] >= min_s:
            break
        # drop the inner boundary on the side of the shorter neighbour
        if shortest == 0:
            del cuts[1]
        elif shortest == len(lengths) - 1:
            del cuts[-2]
        else:
            del cuts[shortest if lengths[shortest - 1] <= lengths[shortest + 1] else shortest + 1]
    return cuts


def _covering(findings: Sequence[Finding], aspect: str, start: float, end: float, cid: str | None) -> list[Finding]:
    """Findings about `aspect` whose window overlaps the shot the most, best first (priority, then overlap)."""
    chosen = []
    for finding in findings:
        if finding.aspect != aspect or (cid and finding.character_id not in (None, cid)):
            continue
        f0 = finding.start_s if finding.start_s is not None else 0.0
        f1 = finding.end_s if finding.end_s is not None else float("inf")
        overlap = min(end, f1) - max(start, f0)
        # a request is staged on a shot it covers for at least half of the shorter of the two
        if overlap > 0 and overlap >= 0.5 * min(end - start, f1 - f0):
            timed = finding.start_s is not None  # a timed request is more specific than a global one
            chosen.append(((_RANK[finding.expert], not timed, -overlap, -finding.round), finding))
    return [f for _, f in sorted(chosen, key=lambda item: item[0])]


def _words_in(report: AudioReport, start: float, end: float) -> list[Word]:
    return [w for w in report.words if start <= (w.start_s + w.end_s) / 2 < end]


def _camera(findings: Sequence[Finding], start: float, end: float) -> tuple[Camera, Finding | None]:
    for finding in _covering(findings, "camera", start, end, None):
        try:
            movement = CameraMovement(finding.value)
        except ValueError:
            continue
        detail = finding.statement.lower()
        direction = None
        if movement in (CameraMovement.PAN, CameraMovement.TRUCK, CameraMovement.ARC):
            direction = Direction.LEFT if "left" in detail else Direction.RIGHT
        elif movement in (CameraMovement.TILT, CameraMovement.PEDESTAL):
            direction = Direction.DOWN if "down" in detail else Direction.UP
        speed = MotionSpeed.FAST if "fast" in detail else MotionSpeed.SLOW
        return Camera(movement=movement, direction=direction, speed=speed), finding
    return Camera(), None


def _emotion(findings: Sequence[Finding], start: float, end: float, cid: str | None) -> tuple[EmotionCue, list[str]]:
    candidates = [f for f in _covering(findings, "emotion", start, end, cid) if f.value in set(Emotion)]
    if not candidates:
        return EmotionCue(label=Emotion.NEUTRAL, intensity=1), []
    best = candidates[0]
    intensity = 2
    for finding in _covering(findings, "intensity", start, end, cid):
        if finding.value.isdigit():
            intensity = int(finding.value)
            break
    if "(intensity 3)" in best.statement or "(3)" in best.statement or "emotional" in best.statement:
        intensity = 3
    return EmotionCue(label=Emotion(best.value), intensity=min(max(intensity, 1), 3)), [best.id]


def write_storyline(
    job: Job,
    audio: Sequence[AudioReport],
    visual: VisualReport,
    findings: Sequence[Finding],
    record: CoReasoningRecord,
    *,
    anchors_s: Sequence[float] = (),
    limits: ShotLimits = ShotLimits(),
    prompts_dir: Path | None = None,
) -> Storyline:
    """Write the storyline from the prevailing findings. Negative prompts are left to the negative director."""
    shot_template = load_prompt("text_expert/shot_prompt", prompts_dir)
    global_template = load_prompt("text_expert/global_prompt", prompts_dir)
    duration_s = max(report.duration_s for report in audio)
    cuts = cut_points(audio, duration_s, anchors_s, limits)
    names = {c.id: c.display_name for c in job.characters}
    appearance = {c.character_id: c for c in visual.characters}
    reports = {r.character_id: r for r in audio}
    style_findings = [f for f in findings if f.aspect == "style" and f.value in set(VisualStyle)]
    style = VisualStyle(min(style_findings, key=lambda f: _RANK[f.expert]).value) if style_findings else visual.style
    shots = [
        _shot(start, end, job, reports, appearance, names, findings, style, shot_template, visual)
        for start, end in itertools.pairwise(cuts)
    ]
    arc = " → ".join(dict.fromkeys(s.emotion.label.value for s in shots))
    characters_text = _join([f"{names[c.id]} ({appearance[c.id].appearance})" for c in job.characters])
    global_prompt = global_template.render(
        characters=characters_text,
        style=style.value.replace("_", " "),
        scene=visual.scene,
        lighting=visual.lighting.description,
        mood=shots[0].emotion.label.value,
        arc=arc if "→" in arc else "",
    )
    return Storyline(
        duration_s=duration_s,
        fps=job.output.fps,
        characters=[
            StoryCharacter(id=c.id, name=c.display_name, audio=c.audio, appearance=appearance[c.id].appearance)
            for c in job.characters
        ],
        style=GlobalStyle(
            visual_style=style,
            scene=visual.scene,
            lighting=visual.lighting.description,
            mood=shots[0].emotion.label.value,
        ),
        global_prompt=global_prompt,
        shots=shots,
        reasoning=record,
        prompt_refs=[shot_template.ref, global_template.ref],
    )


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _shot(
    start: float,
    end: float,
    job: Job,
    reports: dict[str, AudioReport],
    appearance: dict,
    names: dict[str, str],
    findings: Sequence[Finding],
    style: VisualStyle,
    template: PromptTemplate,
    visual: VisualReport,
) -> Shot:
    spoken = {cid: _words_in(report, start, end) for cid, report in reports.items()}
    speakers = [c.id for c in job.characters if spoken.get(c.id)]
    focus = speakers[0] if len(speakers) == 1 else None
    in_frame = [c.id for c in job.characters]
    emotion, emotion_ids = _emotion(findings, start, end, focus)
    camera, camera_finding = _camera(findings, start, end)
    framing = [f for f in _covering(findings, "framing", start, end, focus) if f.value in set(ShotSize)]
    text_framing = [f for f in framing if f.expert is Modality.TEXT]
    if text_framing:
        shot_size = ShotSize(text_framing[0].value)
    elif len(in_frame) > 1:
        # dialogue: a single on the one who speaks, the two-shot when both or neither do (a classic coverage)
        shot_size = ShotSize.MEDIUM_CLOSE_UP if focus else ShotSize.WIDE
    else:
        shot_size = ShotSize(framing[0].value) if framing else ShotSize.MEDIUM_CLOSE_UP
    actions: list[str] = []
    for cid in in_frame:
        for finding in _covering(findings, "action", start, end, cid):
            listening = finding.value in _LISTENING
            if len(in_frame) > 1 and listening == (cid in speakers):
                continue  # in a dialogue, whoever speaks does not "listen", and listeners do nothing else
            if focus and cid != focus and not listening:
                continue
            if finding.value in ("walks across the frame", "dances") and shot_size in (
                ShotSize.CLOSE_UP,
                ShotSize.EXTREME_CLOSE_UP,
                ShotSize.MEDIUM_CLOSE_UP,
            ):
                shot_size = ShotSize.FULL  # the framing conflict was settled for the text: widen
            phrase = finding.value if len(in_frame) == 1 else f"{names[cid]} {finding.value}"
            if phrase not in actions:
                actions.append(phrase)
    listeners = [c for c in in_frame if c not in speakers] if speakers else []
    gaze = Gaze()
    gaze_findings = [f for f in findings if f.value.startswith("gaze:")]
    wants_each_other = any(f.value == "gaze:character" for f in gaze_findings)
    if wants_each_other and len(in_frame) > 1:
        looker = focus or in_frame[0]  # the one who speaks looks at the other; listeners look back
        gaze = Gaze(target=GazeTarget.CHARACTER, character_id=next(c for c in in_frame if c != looker))
    delivery = Delivery.SINGING if any(reports[s].delivery is Delivery.SINGING for s in speakers) else Delivery.SPEECH
    transcript = " ".join(w.text.strip() for cid in speakers for w in spoken[cid])
    camera_text = camera.movement.value.replace("_", " ")
    if camera.direction is not None:
        camera_text += f" {camera.direction.value}"
    camera_text = f"{camera.speed.value} {camera_text}" if camera.movement is not CameraMovement.STATIC else "static"
    gaze_text = {
        GazeTarget.CAMERA: "into the camera",
        GazeTarget.CHARACTER: f"at {names.get(gaze.character_id or '', '')}",
    }.get(gaze.target, gaze.target.value.replace("_", " "))
    wide = shot_size in (ShotSize.WIDE, ShotSize.FULL, ShotSize.MEDIUM_FULL)
    shown = [focus] if focus and not wide else in_frame
    prompt = template.render(
        characters=_join([f"{names[c]} ({appearance[c].appearance})" for c in shown]),
        speakers=_join([names[s] for s in speakers]) if speakers else "",
        listeners=_join([names[c] for c in listeners]) if listeners else "",
        shot_size=shot_size.value,
        camera=camera_text,
        emotion=emotion.label.value,
        intensity=emotion.intensity,
        actions=actions,
        gaze=gaze_text,
        scene=visual.scene,
        lighting=visual.lighting.description,
        style=style.value.replace("_", " "),
        transcript=transcript,
        delivery=delivery.value,
    )
    used = emotion_ids + ([camera_finding.id] if camera_finding else []) + [f.id for f in text_framing[:1]]
    cut_reason = "speaker change or pause" if start > 0 else "opening"
    return Shot(
        start_s=start,
        end_s=end,
        speakers=speakers,
        transcript=transcript,
        shot_size=shot_size,
        camera=camera,
        emotion=emotion,
        actions=actions,
        gaze=gaze,
        background=visual.scene,
        lighting=visual.lighting.description,
        prompt=prompt,
        rationale=f"Cut at a {cut_reason}; staged from findings {', '.join(used) or 'defaults'}.",
    )
