"""The director's output: a storyline of shots on the audio timeline (KlingAvatar 2.0 sec. 3.2).

"The director outputs a structured storyline that decomposes the video into a sequence of shots", each with a
positive prompt and, from the negative director, a negative prompt of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from codirector.schemas.base import (
    CharacterId,
    Contract,
    Document,
    Intensity,
    Loc,
    PromptRef,
    RuleViolation,
    Seconds,
    check_speakers,
    check_unique,
)
from codirector.schemas.reasoning import CoReasoningRecord
from codirector.schemas.timeline import check_tiling
from codirector.schemas.vocab import (
    CameraAngle,
    CameraMovement,
    Direction,
    Emotion,
    GazeTarget,
    MotionSpeed,
    ShotSize,
    VisualStyle,
)

__all__ = [
    "Camera",
    "EmotionCue",
    "Gaze",
    "GlobalStyle",
    "Shot",
    "StoryCharacter",
    "Storyline",
]

_HORIZONTAL = {CameraMovement.PAN, CameraMovement.TRUCK, CameraMovement.ARC}
_VERTICAL = {CameraMovement.TILT, CameraMovement.PEDESTAL}


class Camera(Contract):
    """Camera language for one shot. pan, truck and arc go left or right; tilt and pedestal go up or down."""

    angle: CameraAngle = CameraAngle.EYE_LEVEL
    movement: CameraMovement = CameraMovement.STATIC
    direction: Direction | None = None
    speed: MotionSpeed = MotionSpeed.SLOW

    @model_validator(mode="after")
    def _check_direction(self) -> Camera:
        move = self.movement
        if move in _HORIZONTAL and self.direction not in (Direction.LEFT, Direction.RIGHT):
            raise RuleViolation([(("direction",), f"{move.value} needs direction 'left' or 'right'")])
        if move in _VERTICAL and self.direction not in (Direction.UP, Direction.DOWN):
            raise RuleViolation([(("direction",), f"{move.value} needs direction 'up' or 'down'")])
        if move not in _HORIZONTAL | _VERTICAL and self.direction is not None:
            raise RuleViolation([(("direction",), f"{move.value} takes no direction")])
        return self


class EmotionCue(Contract):
    label: Emotion
    intensity: Intensity = 2


class Gaze(Contract):
    """Where the characters look; `character_id` names whom, when the target is another character."""

    target: GazeTarget = GazeTarget.CAMERA
    character_id: CharacterId | None = None

    @model_validator(mode="after")
    def _check_character(self) -> Gaze:
        if (self.target is GazeTarget.CHARACTER) != (self.character_id is not None):
            raise RuleViolation([(("character_id",), "give a character_id exactly when the target is 'character'")])
        return self


class Shot(Contract):
    """One shot: a span of the audio timeline with everything the generator needs to stage it."""

    start_s: Seconds
    end_s: Seconds
    speakers: list[CharacterId] = Field(
        default_factory=list, description="Who speaks or sings in this shot; empty for a pause."
    )
    transcript: str = Field("", description="The words spoken in this shot.")
    shot_size: ShotSize
    camera: Camera = Field(default_factory=Camera)
    emotion: EmotionCue
    actions: list[str] = Field(default_factory=list, description="Gestures and movements, e.g. 'raises a hand'.")
    gaze: Gaze = Field(default_factory=Gaze)
    background: str = ""
    lighting: str = ""
    prompt: str = Field(min_length=1, description="Positive prompt for this shot.")
    negative_prompt: str = Field("", description="Shot-specific negative prompt from the negative director.")
    rationale: str = Field("", description="Why the director staged the shot this way.")

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


class StoryCharacter(Contract):
    id: CharacterId
    name: str
    audio: Path | None = Field(None, description="The character's voice track; None for a silent character.")
    appearance: str = ""


class GlobalStyle(Contract):
    """What holds for the whole video (the blueprint's global prompt, KlingAvatar 2.0 sec. 3.1)."""

    visual_style: VisualStyle
    scene: str
    lighting: str
    mood: str = ""


class Storyline(Document):
    """Shots that tile the audio timeline, with the reasoning that produced them."""

    KIND: ClassVar[str] = "storyline"
    kind: Literal["storyline"] = "storyline"
    duration_s: float = Field(gt=0, description="Length of the audio timeline (the longest track).")
    fps: int = Field(ge=1, le=48, description="Frame rate; one frame is the tolerance for tiling.")
    characters: list[StoryCharacter] = Field(min_length=1)
    style: GlobalStyle
    global_prompt: str = Field(min_length=1)
    global_negative_prompt: str = ""
    shots: list[Shot] = Field(min_length=1)
    reasoning: CoReasoningRecord | None = None
    prompt_refs: list[PromptRef] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_timeline_and_speakers(self) -> Storyline:
        issues: list[tuple[Loc, str]] = check_unique((c.id for c in self.characters), "characters", "character id")
        spans = [(shot.start_s, shot.end_s) for shot in self.shots]
        issues += check_tiling(spans, self.duration_s, 1.0 / self.fps, "shots")
        known = {c.id for c in self.characters}
        voiced = {c.id for c in self.characters if c.audio is not None}
        issues += check_speakers([shot.speakers for shot in self.shots], known, voiced, field="shots")
        for index, shot in enumerate(self.shots):
            if shot.gaze.character_id is not None and shot.gaze.character_id not in known:
                issues.append(
                    (
                        ("shots", index, "gaze", "character_id"),
                        f"unknown character {shot.gaze.character_id!r}",
                    )
                )
        RuleViolation.raise_if_any(issues)
        return self
