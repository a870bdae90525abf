"""The job a user writes: who is in the video, what they say, what the video should be (docs/job-spec.md).

Relative paths in a job file resolve against the job file's folder: `Job.model_validate(data,
context={"base_dir": folder})` does it, and `codirector.load_job` passes the folder for you.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import Field, JsonValue, StringConstraints, ValidationInfo, field_validator, model_validator

from codirector.schemas.base import BoxNorm, CharacterId, Contract, Document, Loc, RuleViolation, check_unique

__all__ = [
    "ASPECT_RATIOS",
    "RESOLUTION_SHORT_SIDE",
    "Aspect",
    "CharacterSpec",
    "DirectorOptions",
    "ExpertName",
    "Job",
    "OutputSettings",
    "ProviderRef",
    "RenderOptions",
    "Resolution",
]

Resolution = Literal["480p", "720p", "1080p"]
Aspect = Literal["auto", "16:9", "9:16", "1:1", "4:3", "3:4"]
ExpertName = Literal["audio", "visual", "text", "negative"]

RESOLUTION_SHORT_SIDE: dict[str, int] = {"480p": 480, "720p": 720, "1080p": 1080}
ASPECT_RATIOS: dict[str, float] = {"16:9": 16 / 9, "9:16": 9 / 16, "1:1": 1.0, "4:3": 4 / 3, "3:4": 3 / 4}

ProviderRef = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_-]*(:\S.*)?$"),
    Field(description="An LLM provider as 'provider' or 'provider:model', e.g. 'offline', 'openai:gpt-4o-mini'."),
]
BackendName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.-]*$")]


def _resolve(path: Path | None, info: ValidationInfo) -> Path | None:
    """Anchor a relative path at the job file's folder, when the caller says where that is."""
    if path is None or path.is_absolute():
        return path
    base_dir = (info.context or {}).get("base_dir")
    return Path(base_dir) / path if base_dir is not None else path


class CharacterSpec(Contract):
    """One character: a stable id, how they look, and what they say (or nothing, for a listener)."""

    id: CharacterId
    name: str | None = Field(None, min_length=1, description="Display name; defaults to the id.")
    description: str = Field("", description="Optional hint for the visual expert, e.g. 'the interviewer'.")
    reference_image: Path | None = Field(None, description="A picture of this character.")
    scene_box_xyxy_norm: BoxNorm | None = Field(
        None, description="Where the character stands in the job's scene_image, when there is no own picture."
    )
    audio: Path | None = Field(None, description="This character's voice track; none for a silent listener.")

    @field_validator("reference_image", "audio", mode="after")
    @classmethod
    def _anchor_paths(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        return _resolve(path, info)

    @property
    def display_name(self) -> str:
        return self.name or self.id


class OutputSettings(Contract):
    """The video to make. Its duration is not set here: it follows the audio."""

    resolution: Resolution = Field("720p", description="Preset for the short side: 480, 720 or 1080 pixels.")
    aspect: Aspect = Field("auto", description="Frame aspect; 'auto' follows the reference or scene image.")
    fps: int = Field(25, ge=1, le=48, description="Frames per second, up to 48 (Kling-Avatar sec. 1).")
    seed: int = Field(0, ge=0, lt=2**32, description="Base seed; every stage derives its own from it.")

    def frame_size(self, source_aspect: float | None = None) -> tuple[int, int]:
        """Output (width, height) in pixels, both even (as H.264 with 4:2:0 chroma requires).

        Args:
            source_aspect: width/height of the reference or scene image, used when `aspect` is "auto"; the
                nearest preset ratio wins. None with "auto" means 16:9.
        """
        if self.aspect != "auto":
            ratio = ASPECT_RATIOS[self.aspect]
        elif source_aspect is None:
            ratio = ASPECT_RATIOS["16:9"]
        else:
            ratio = min(ASPECT_RATIOS.values(), key=lambda r: abs(math.log(r / source_aspect)))
        short = RESOLUTION_SHORT_SIDE[self.resolution]
        long = 2 * round(short * max(ratio, 1 / ratio) / 2)
        return (long, short) if ratio >= 1 else (short, long)


class DirectorOptions(Contract):
    """How the co-reasoning director runs (KlingAvatar 2.0 sec. 3.2)."""

    max_rounds: int = Field(3, ge=1, le=10, description="Most co-reasoning rounds before the storyline is written.")
    provider: ProviderRef = Field("offline", description="LLM provider for every expert unless overridden.")
    providers: dict[ExpertName, ProviderRef] = Field(
        default_factory=dict, description="Per-expert overrides, e.g. {visual: 'openai:gpt-4o'}."
    )

    def provider_for(self, expert: ExpertName) -> str:
        return self.providers.get(expert, self.provider)


class RenderOptions(Contract):
    """Which backend renders the cascade and how its work is spread."""

    backend: BackendName = Field("preview", description="Registered backend name: 'preview' (CPU), 'dit' (GPU).")
    executor: Literal["local", "process", "ray"] = Field("local", description="Where sub-clips run.")
    num_workers: int | None = Field(None, ge=1, description="Parallel workers; default: one per CPU core or GPU.")
    backend_options: dict[str, JsonValue] = Field(
        default_factory=dict, description="Backend-specific options, e.g. the dit backend's weights folder."
    )

    @model_validator(mode="after")
    def _check_workers(self) -> RenderOptions:
        if self.executor == "local" and self.num_workers not in (None, 1):
            raise RuleViolation(
                [(("num_workers",), "the local executor runs one task at a time; use executor 'process' or 'ray'")]
            )
        return self


class Job(Document):
    """A video to make from reference image(s), audio track(s) and the user's words.

    Example:
        >>> from codirector.schemas import Job
        >>> job = Job.model_validate({
        ...     "characters": [{"id": "host", "reference_image": "face.jpg", "audio": "voice.wav"}],
        ...     "prompt": "She smiles, slow push-in at the end.",
        ... }, context={"base_dir": "/data/jobs"})
        >>> str(job.characters[0].audio)
        '/data/jobs/voice.wav'
    """

    KIND: ClassVar[str] = "job"
    kind: Literal["job"] = "job"
    prompt: str = Field("", description="The user's instructions in their own words.")
    language: str | None = Field(
        None,
        pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$",
        description="Language hint as a BCP-47 tag such as 'en' or 'zh'; detected from the audio when absent.",
    )
    characters: list[CharacterSpec] = Field(min_length=1)
    scene_image: Path | None = Field(None, description="A shared scene in which characters are located by box.")
    output: OutputSettings = Field(default_factory=OutputSettings)
    director: DirectorOptions = Field(default_factory=DirectorOptions)
    render: RenderOptions = Field(default_factory=RenderOptions)

    @field_validator("scene_image", mode="after")
    @classmethod
    def _anchor_scene(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        return _resolve(path, info)

    @model_validator(mode="after")
    def _check_characters(self) -> Job:
        issues: list[tuple[Loc, str]] = check_unique((c.id for c in self.characters), "characters", "character id")
        for index, character in enumerate(self.characters):
            loc: Loc = ("characters", index)
            if character.scene_box_xyxy_norm is not None and self.scene_image is None:
                issues.append(((*loc, "scene_box_xyxy_norm"), "a scene box needs a scene_image at the top of the job"))
            if character.reference_image is None and character.scene_box_xyxy_norm is None:
                issues.append((loc, f"character {character.id!r} needs a reference_image or a scene_box_xyxy_norm"))
        if all(character.audio is None for character in self.characters):
            issues.append((("characters",), "at least one character needs an audio track: the video follows it"))
        RuleViolation.raise_if_any(issues)
        return self

    def media_paths(self) -> list[tuple[Loc, Path, Literal["image", "audio"]]]:
        """Every media file the job names, with the field it comes from."""
        found: list[tuple[Loc, Path, Literal["image", "audio"]]] = []
        if self.scene_image is not None:
            found.append((("scene_image",), self.scene_image, "image"))
        for index, character in enumerate(self.characters):
            if character.reference_image is not None:
                found.append((("characters", index, "reference_image"), character.reference_image, "image"))
            if character.audio is not None:
                found.append((("characters", index, "audio"), character.audio, "audio"))
        return found
