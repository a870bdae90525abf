"""Closed vocabularies shared by the director and the generator (docs/vocabulary.md explains each term).

A fixed vocabulary is what lets the negative director pick opposites, the preview backend animate a camera
move, and the evals check that a requested move appeared. Free text goes into prompts, never into these.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "CameraAngle",
    "CameraMovement",
    "Delivery",
    "Direction",
    "Emotion",
    "GazeTarget",
    "Modality",
    "MotionSpeed",
    "ShotSize",
    "SpeakingIntent",
    "Subject",
    "VisualStyle",
]


class Emotion(StrEnum):
    """The emotion taxonomy: Kling-Avatar's benchmark categories (calm, excitement, confusion, sadness,
    surprise, anger; sec. 2.3) completed with Ekman's basic emotions and two states a talking avatar
    needs (neutral, tender). Intensity (1-3) is carried beside the label."""

    NEUTRAL = "neutral"
    CALM = "calm"
    HAPPY = "happy"
    EXCITED = "excited"
    TENDER = "tender"
    SAD = "sad"
    ANGRY = "angry"
    FEARFUL = "fearful"
    SURPRISED = "surprised"
    DISGUSTED = "disgusted"
    CONFUSED = "confused"


class ShotSize(StrEnum):
    """How much of the character the frame holds, tightest first."""

    EXTREME_CLOSE_UP = "extreme_close_up"
    CLOSE_UP = "close_up"
    MEDIUM_CLOSE_UP = "medium_close_up"
    MEDIUM = "medium"
    MEDIUM_FULL = "medium_full"
    FULL = "full"
    WIDE = "wide"


class CameraAngle(StrEnum):
    EYE_LEVEL = "eye_level"
    HIGH = "high"
    LOW = "low"
    OVERHEAD = "overhead"
    DUTCH = "dutch"


class CameraMovement(StrEnum):
    """Camera moves. pan, tilt, truck, pedestal and arc also need a `Direction`; the others carry their own."""

    STATIC = "static"
    PUSH_IN = "push_in"
    PULL_OUT = "pull_out"
    PAN = "pan"
    TILT = "tilt"
    TRUCK = "truck"
    PEDESTAL = "pedestal"
    ARC = "arc"
    ZOOM_IN = "zoom_in"
    ZOOM_OUT = "zoom_out"
    HANDHELD = "handheld"


class Direction(StrEnum):
    LEFT = "left"
    RIGHT = "right"
    UP = "up"
    DOWN = "down"


class MotionSpeed(StrEnum):
    """Speed of a camera move or of a character's motion; the negative director opposes slow with fast."""

    SLOW = "slow"
    MEDIUM = "medium"
    FAST = "fast"


class GazeTarget(StrEnum):
    CAMERA = "camera"
    OFF_CAMERA_LEFT = "off_camera_left"
    OFF_CAMERA_RIGHT = "off_camera_right"
    UP = "up"
    DOWN = "down"
    CHARACTER = "character"


class Delivery(StrEnum):
    """How a track is voiced."""

    SPEECH = "speech"
    SINGING = "singing"
    MIXED = "mixed"


class SpeakingIntent(StrEnum):
    """What the speaker is doing with their words (KlingAvatar 2.0 sec. 3.2: 'speaking intent')."""

    INFORM = "inform"
    NARRATE = "narrate"
    PERSUADE = "persuade"
    INSTRUCT = "instruct"
    ASK = "ask"
    GREET = "greet"
    JOKE = "joke"
    COMPLAIN = "complain"
    COMFORT = "comfort"
    PERFORM = "perform"


class VisualStyle(StrEnum):
    PHOTO = "photo"
    ANIME = "anime"
    CARTOON = "cartoon"
    ILLUSTRATION = "illustration"
    PAINTING = "painting"
    RENDER_3D = "render_3d"


class Subject(StrEnum):
    """What kind of being a character is; kept apart from the visual style (a cartoon animal is both)."""

    HUMAN = "human"
    ANIMAL = "animal"
    OTHER = "other"


class Modality(StrEnum):
    """The director's three experts, by the modality each one reads. Priority on conflict: text > audio > visual
    (Kling-Avatar sec. 2.1: 'prioritized by user knowledge, audio, and image references')."""

    TEXT = "text"
    AUDIO = "audio"
    VISUAL = "visual"
