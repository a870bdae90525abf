"""What the director's experts observe: one AudioReport per track, one VisualReport per job.

KlingAvatar 2.0 sec. 3.2: the audio expert does "transcription and paralinguistic analysis (emotion, prosody,
speaking intent)"; the visual expert "summarizes appearance, layout, and scene context from reference images".
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from codirector.schemas.base import (
    BoxNorm,
    CharacterId,
    Confidence,
    Contract,
    Document,
    Intensity,
    Loc,
    RuleViolation,
    Seconds,
    check_unique,
)
from codirector.schemas.timeline import check_inside, check_ordered
from codirector.schemas.vocab import Delivery, Emotion, ShotSize, SpeakingIntent, Subject, VisualStyle

InstructionAspect = Literal["emotion", "intensity", "action", "camera", "framing", "gaze", "style", "delivery", "scene"]
TimingAnchor = Literal["throughout", "start", "middle", "end", "window", "word"]

__all__ = [
    "AudioReport",
    "CharacterAppearance",
    "EmotionEstimate",
    "Instruction",
    "Lighting",
    "Pause",
    "Prosody",
    "TextReport",
    "Utterance",
    "VisualReport",
    "Word",
]


class Word(Contract):
    """One transcribed word with its time on the track."""

    text: str = Field(min_length=1)
    start_s: Seconds
    end_s: Seconds
    probability: Confidence | None = None


class EmotionEstimate(Contract):
    label: Emotion
    intensity: Intensity
    confidence: Confidence


class Utterance(Contract):
    """A phrase between pauses: the unit shots are cut at. Words are `words[first_word:last_word + 1]`."""

    text: str
    start_s: Seconds
    end_s: Seconds
    first_word: int = Field(ge=0)
    last_word: int = Field(ge=0)
    emotion: EmotionEstimate | None = Field(None, description="This phrase's own emotion, when it differs.")


class Pause(Contract):
    start_s: Seconds
    end_s: Seconds


class Prosody(Contract):
    """Measured voice statistics (librosa's pyin for pitch, RMS for energy)."""

    pitch_median_hz: float | None = Field(None, gt=0, description="Median F0 of voiced frames; None if unvoiced.")
    pitch_range_semitones: float | None = Field(None, ge=0, description="Spread of F0, 10th to 90th percentile.")
    energy_mean_dbfs: float = Field(le=0, description="Mean RMS level of voiced frames, dB full scale.")
    energy_range_db: float = Field(ge=0, description="Loud to quiet spread of RMS, 10th to 90th percentile.")
    speech_rate_wps: float | None = Field(None, ge=0, description="Words per second while speaking.")
    voiced_ratio: Confidence = Field(description="Share of frames with a pitch.")
    tempo_bpm: float | None = Field(None, gt=0, description="Beat tempo, for singing.")
    pauses: list[Pause] = Field(default_factory=list)


class AudioReport(Document):
    """The audio expert's analysis of one character's track."""

    KIND: ClassVar[str] = "audio_report"
    kind: Literal["audio_report"] = "audio_report"
    character_id: CharacterId
    audio_path: Path
    duration_s: float = Field(gt=0)
    sample_rate_hz: int = Field(gt=0)
    language: str | None = Field(None, description="Detected language, BCP-47 tag.")
    language_probability: Confidence | None = None
    delivery: Delivery
    delivery_confidence: Confidence
    words: list[Word] = Field(default_factory=list)
    utterances: list[Utterance] = Field(default_factory=list)
    emotion: EmotionEstimate
    prosody: Prosody
    speaking_intent: SpeakingIntent
    intent_summary: str = Field("", description="One sentence on what the speaker is doing.")

    @model_validator(mode="after")
    def _check_times(self) -> AudioReport:
        words = [(w.start_s, w.end_s) for w in self.words]
        utterances = [(u.start_s, u.end_s) for u in self.utterances]
        issues = check_inside(words, self.duration_s, "words")
        issues += check_ordered(words, "words")
        issues += check_inside(utterances, self.duration_s, "utterances")
        issues += check_ordered(utterances, "utterances")
        issues += check_inside([(p.start_s, p.end_s) for p in self.prosody.pauses], self.duration_s, "pauses")
        for index, utterance in enumerate(self.utterances):
            loc: Loc = ("utterances", index)
            if utterance.last_word < utterance.first_word:
                issues.append(((*loc, "last_word"), "last_word comes before first_word"))
            elif utterance.last_word >= len(self.words):
                issues.append(((*loc, "last_word"), f"word {utterance.last_word} does not exist"))
        RuleViolation.raise_if_any(issues)
        return self


class CharacterAppearance(Contract):
    """Where a character is in their source image and what they look like."""

    character_id: CharacterId
    source_image: Path = Field(description="The reference or scene image the boxes refer to.")
    bbox_xyxy_norm: BoxNorm = Field(description="The character's body, normalized to the source image.")
    face_bbox_xyxy_norm: BoxNorm | None = Field(None, description="The face, when one was found.")
    framing: ShotSize = Field(description="How the source image frames the character.")
    subject: Subject
    appearance: str = Field(description="Hair, clothes, age, fur...: what a prompt should keep.")


class Lighting(Contract):
    key_direction: Literal["front", "left", "right", "top", "back", "even"]
    brightness: Confidence = Field(description="Mean luminance, 0 black to 1 white.")
    contrast: Confidence = Field(description="Luminance spread, 0 flat to 1 harsh.")
    warmth: float = Field(ge=-1, le=1, description="-1 cool (blue) to 1 warm (amber).")
    description: str


class VisualReport(Document):
    """The visual expert's analysis of the job's images."""

    KIND: ClassVar[str] = "visual_report"
    kind: Literal["visual_report"] = "visual_report"
    characters: list[CharacterAppearance] = Field(min_length=1)
    scene: str = Field(description="The setting and background.")
    lighting: Lighting
    style: VisualStyle

    @model_validator(mode="after")
    def _check_ids(self) -> VisualReport:
        RuleViolation.raise_if_any(check_unique((c.character_id for c in self.characters), "characters", "id"))
        return self


class Instruction(Contract):
    """One thing the user asked for, read from their text: what, for whom, and when.

    `timing` says how the request is placed on the audio timeline: "throughout", the "start", "middle" or
    "end" of the video, an explicit "window" in seconds, or a "word" the request is tied to ("when she says
    'launch'"), whose time the director looks up in the transcript.
    """

    aspect: InstructionAspect
    value: str = Field(min_length=1, description="In the aspect's vocabulary where it has one ('happy', 'push_in').")
    detail: str = Field("", description="Refinement, e.g. 'left' for a pan, or the action's own words.")
    character_id: CharacterId | None = None
    timing: TimingAnchor = "throughout"
    start_s: Seconds | None = None
    end_s: Seconds | None = None
    cue_word: str | None = Field(None, description="The spoken word a 'word' timing is tied to.")
    source_text: str = Field(description="The words of the prompt this was read from.")


class TextReport(Contract):
    """The text expert's reading of the user's prompt (KlingAvatar 2.0 sec. 3.2: it 'interprets user
    instructions')."""

    prompt: str
    instructions: list[Instruction] = Field(default_factory=list)
    unparsed: list[str] = Field(default_factory=list, description="Clauses no instruction was read from.")
