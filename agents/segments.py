"""Segment-level plans: the storyline refined into sub-clips between anchor keyframes (the RenderPlan).

KlingAvatar 2.0 sec. 3.2: "the director further refines the global storyline into segment-level plans aligned
with the audio timeline, which directly parameterize the keyframe cascade and clip-level refinement modules".
Kling-Avatar sec. 2.2 cuts the video into segments whose boundaries carry anchor keyframes and renders each
segment first-last-frame; here a segment never crosses a shot, is at most `max_segment_s` long (about one
81-frame clip of a Wan-class model at 16 fps) and is cut in a pause between words where it can be.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from pathlib import Path

from codirector.media import probe_image
from codirector.prompts.templates import load_prompt
from codirector.schemas.base import PromptRef
from codirector.schemas.documents import document_sha256
from codirector.schemas.job import Job
from codirector.schemas.render_plan import (
    CharacterBinding,
    DiffusionSettings,
    FrameSize,
    RenderPlan,
    Segment,
    StageSettings,
)
from codirector.schemas.reports import AudioReport
from codirector.schemas.storyline import Storyline

__all__ = ["default_stage_settings", "plan_segments", "segment_bounds"]


def segment_bounds(start: float, end: float, pauses: Sequence[float], max_segment_s: float) -> list[float]:
    """Split [start, end] into equal-ish parts no longer than `max_segment_s`, moving each cut to the nearest
    pause within a quarter segment of it (Kling-Avatar cuts evenly; a pause keeps the cut off a syllable)."""
    count = max(1, -(-(end - start) // max_segment_s).__int__())
    step = (end - start) / count
    bounds = [start]
    for index in range(1, count):
        even = start + index * step
        near = [p for p in pauses if abs(p - even) <= step / 4 and bounds[-1] + 0.5 < p < end - 0.5]
        bounds.append(min(near, key=lambda p: abs(p - even)) if near else even)
    bounds.append(end)
    return bounds


def _even(value: float) -> int:
    return max(16, 2 * round(value / 2))


def default_stage_settings(output: FrameSize, seed: int, fps: int) -> StageSettings:
    """Cascade defaults: the blueprint and sub-clips at half the output's size, few-step sampling as distilled
    models use (KlingAvatar 2.0 sec. 3.4), one seed per stage derived from the job's seed. A backend may
    override them at render time."""
    low = FrameSize(width=_even(output.width / 2), height=_even(output.height / 2))

    def settings(stage: int, steps: int, cfg: float, audio: float = 0.0, negative: float = 0.0) -> DiffusionSettings:
        digest = hashlib.sha256(f"{seed}:{stage}".encode()).digest()
        return DiffusionSettings(
            num_inference_steps=steps,
            guidance_scale=cfg,
            audio_guidance_scale=audio,
            negative_frame_guidance_scale=negative,
            seed=int.from_bytes(digest[:4], "big"),
        )

    return StageSettings(
        low_res=low,
        high_res=output,
        blueprint_fps=min(fps, 16),
        blueprint=settings(1, 8, 5.0, 3.0, 1.5),
        keyframes=settings(2, 8, 4.0),
        subclips=settings(3, 8, 5.0, 3.0, 1.5),
        transitions=settings(4, 4, 3.0, 3.0),
        super_resolution=settings(5, 4, 2.0),
    )


def plan_segments(
    storyline: Storyline,
    job: Job,
    audio: Sequence[AudioReport],
    *,
    max_segment_s: float = 5.0,
    prompts_dir: Path | None = None,
) -> tuple[RenderPlan, list[PromptRef]]:
    """Turn the storyline into a RenderPlan: anchors, one local prompt per segment, stage settings."""
    template = load_prompt("text_expert/segment_prompt", prompts_dir)
    words = sorted((w for r in audio for w in r.words), key=lambda w: w.start_s)
    pauses = [(a.end_s + b.start_s) / 2 for a, b in itertools.pairwise(words) if b.start_s - a.end_s > 0.1]
    names = {c.id: c.name for c in storyline.characters}
    segments: list[Segment] = []
    anchors: list[float] = [0.0]
    for shot_index, shot in enumerate(storyline.shots):
        bounds = segment_bounds(shot.start_s, shot.end_s, pauses, max_segment_s)
        for part, (start, end) in enumerate(itertools.pairwise(bounds)):
            local_words = [w.text.strip() for w in words if start <= (w.start_s + w.end_s) / 2 < end]
            position = "" if len(bounds) == 2 else f"part {part + 1} of {len(bounds) - 1}"
            speakers = [
                s
                for s in shot.speakers
                if any(start <= (w.start_s + w.end_s) / 2 < end for r in audio if r.character_id == s for w in r.words)
            ]
            prompt = template.render(
                shot_prompt=shot.prompt,
                position=position,
                transcript=" ".join(local_words),
                actions=shot.actions,
                emotion=f"{shot.emotion.label.value} (intensity {shot.emotion.intensity})",
                speakers=" and ".join(names[s] for s in speakers) or "Someone",
            )
            segments.append(
                Segment(
                    start_s=start,
                    end_s=end,
                    shot_index=shot_index,
                    speakers=speakers,
                    prompt=prompt,
                    negative_prompt=shot.negative_prompt,
                    shot_size=shot.shot_size,
                    camera=shot.camera,
                    emotion=shot.emotion,
                )
            )
            anchors.append(end)
    image = job.scene_image or next(c.reference_image for c in job.characters if c.reference_image is not None)
    width, height = job.output.frame_size(probe_image(image).aspect)
    output = FrameSize(width=width, height=height)
    plan = RenderPlan(
        duration_s=storyline.duration_s,
        fps=storyline.fps,
        output=output,
        scene_image=job.scene_image,
        characters=[
            CharacterBinding(
                id=c.id,
                name=c.display_name,
                reference_image=c.reference_image,
                scene_box_xyxy_norm=c.scene_box_xyxy_norm,
                audio=c.audio,
            )
            for c in job.characters
        ],
        global_prompt=storyline.global_prompt,
        global_negative_prompt=storyline.global_negative_prompt,
        anchors_s=anchors,
        segments=segments,
        stages=default_stage_settings(output, job.output.seed, storyline.fps),
        storyline_sha256=document_sha256(storyline),
        prompt_refs=[*storyline.prompt_refs, template.ref],
    )
    return plan, [template.ref]
