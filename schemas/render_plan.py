"""What the generator consumes: the storyline turned into cascade parameters (KlingAvatar 2.0 sec. 3.1-3.2).

"The director further refines the global storyline into segment-level plans aligned with the audio timeline,
which directly parameterize the keyframe cascade and clip-level refinement modules." Segments lie between anchor
keyframes; each becomes one first-last-frame sub-clip with its own local prompt, negative prompt and audio slice.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from codirector.schemas.base import (
    BoxNorm,
    CharacterId,
    Contract,
    Document,
    Loc,
    PromptRef,
    RuleViolation,
    Seconds,
    Sha256,
    check_speakers,
    check_unique,
)
from codirector.schemas.storyline import Camera, EmotionCue
from codirector.schemas.timeline import check_tiling
from codirector.schemas.vocab import ShotSize

__all__ = ["CharacterBinding", "DiffusionSettings", "FrameSize", "RenderPlan", "Segment", "StageSettings"]


class FrameSize(Contract):
    width: int = Field(ge=16, multiple_of=2)
    height: int = Field(ge=16, multiple_of=2)


class DiffusionSettings(Contract):
    """Sampler settings for one cascade stage; argument names follow diffusers."""

    num_inference_steps: int = Field(ge=1)
    guidance_scale: float = Field(ge=0, description="Text classifier-free guidance.")
    audio_guidance_scale: float = Field(0.0, ge=0, description="Audio branch guidance.")
    negative_frame_guidance_scale: float = Field(
        0.0, ge=0, description="Guidance away from a degraded reference (Kling-Avatar sec. 2.4)."
    )
    seed: int = Field(ge=0, lt=2**32)


class StageSettings(Contract):
    """Resolutions and sampler settings of the cascade's stages."""

    low_res: FrameSize = Field(description="Blueprint and sub-clip resolution.")
    high_res: FrameSize = Field(description="Keyframe and final resolution.")
    blueprint_fps: int = Field(ge=1, le=48, description="Frame rate of the low-resolution blueprint.")
    blueprint: DiffusionSettings
    keyframes: DiffusionSettings
    subclips: DiffusionSettings
    transitions: DiffusionSettings
    super_resolution: DiffusionSettings

    @model_validator(mode="after")
    def _check_sizes(self) -> StageSettings:
        low, high = self.low_res, self.high_res
        if low.width > high.width or low.height > high.height:
            raise RuleViolation([(("low_res",), "the low resolution must not exceed the high resolution")])
        return self


class CharacterBinding(Contract):
    """A character as the generator sees it: identity image, and the audio track that drives them."""

    id: CharacterId
    name: str
    reference_image: Path | None = None
    scene_box_xyxy_norm: BoxNorm | None = None
    audio: Path | None = Field(None, description="Drives this character's mouth; None keeps them listening.")


class Segment(Contract):
    """One sub-clip between two anchor keyframes, inside one shot."""

    start_s: Seconds
    end_s: Seconds
    shot_index: int = Field(ge=0, description="The storyline shot this segment belongs to.")
    speakers: list[CharacterId] = Field(default_factory=list)
    prompt: str = Field(min_length=1, description="Local prompt for this sub-clip.")
    negative_prompt: str = ""
    shot_size: ShotSize
    camera: Camera = Field(default_factory=Camera)
    emotion: EmotionCue


class RenderPlan(Document):
    """Everything a backend needs to render the video, independent of how the plan was made."""

    KIND: ClassVar[str] = "render_plan"
    kind: Literal["render_plan"] = "render_plan"
    duration_s: float = Field(gt=0)
    fps: int = Field(ge=1, le=48)
    output: FrameSize
    scene_image: Path | None = None
    characters: list[CharacterBinding] = Field(min_length=1)
    global_prompt: str = Field(min_length=1)
    global_negative_prompt: str = ""
    anchors_s: list[Seconds] = Field(min_length=2, description="Anchor keyframe times, first 0, last the end.")
    segments: list[Segment] = Field(min_length=1)
    stages: StageSettings
    storyline_sha256: Sha256 | None = Field(None, description="Hash of the storyline this plan was made from.")
    prompt_refs: list[PromptRef] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_plan(self) -> RenderPlan:
        frame_s = 1.0 / self.fps
        issues: list[tuple[Loc, str]] = check_unique((c.id for c in self.characters), "characters", "character id")
        issues += check_tiling([(s.start_s, s.end_s) for s in self.segments], self.duration_s, frame_s, "segments")
        issues += check_speakers(
            [segment.speakers for segment in self.segments],
            known={c.id for c in self.characters},
            voiced={c.id for c in self.characters if c.audio is not None},
            field="segments",
        )
        anchors = self.anchors_s
        for index in range(1, len(anchors)):
            if anchors[index] <= anchors[index - 1]:
                issues.append((("anchors_s", index), "anchor times must be strictly increasing"))
        if anchors[0] > frame_s:
            issues.append((("anchors_s", 0), "the first anchor must be at 0 s"))
        if abs(anchors[-1] - self.duration_s) > frame_s:
            issues.append((("anchors_s", len(anchors) - 1), f"the last anchor must be at the end, {self.duration_s} s"))
        for index, segment in enumerate(self.segments):
            for field, time_s in (("start_s", segment.start_s), ("end_s", segment.end_s)):
                if min(abs(time_s - anchor) for anchor in anchors) > frame_s:
                    issues.append((("segments", index, field), f"{time_s:.3f} s is not an anchor time"))
            if index and segment.shot_index < self.segments[index - 1].shot_index:
                issues.append((("segments", index, "shot_index"), "segments must follow the shots' order"))
        for index, character in enumerate(self.characters):
            if character.scene_box_xyxy_norm is not None and self.scene_image is None:
                issues.append((("characters", index, "scene_box_xyxy_norm"), "a scene box needs a scene_image"))
        RuleViolation.raise_if_any(issues)
        return self
