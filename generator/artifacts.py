"""What each cascade stage hands to the next: files in the run directory, with hashes and the facts about them.

These are JSON models, not tensors: a stage's output is saved as `<stage>/output.json` and loaded back when a
rerun reuses the stage. Frames stay in the files and are streamed from there.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from codirector.generator.rundir import ItemResult

__all__ = [
    "Anchors",
    "BlueprintVideo",
    "ComposedVideo",
    "FileRef",
    "FinalClips",
    "KeyframeCandidate",
    "KeyframeChoice",
    "Keyframes",
    "Seam",
    "StageOutput",
    "SubClips",
    "Transitions",
]


class FileRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    sha256: str
    size_bytes: int

    @classmethod
    def of(cls, item: ItemResult) -> FileRef:
        return cls(path=item.path, sha256=item.sha256, size_bytes=item.size_bytes)


class StageOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def files(self) -> list[FileRef]:
        """Every file the stage wrote or reused, for the manifest."""
        found: list[FileRef] = []
        for value in self.__dict__.values():
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, FileRef):
                    found.append(item)
                elif isinstance(item, BaseModel):
                    found += [v for v in item.__dict__.values() if isinstance(v, FileRef)]
        return found


class BlueprintVideo(StageOutput):
    """The whole video at low resolution and the blueprint frame rate (KlingAvatar 2.0 sec. 3.1)."""

    video: FileRef
    fps: int
    width: int
    height: int
    num_frames: int


class KeyframeCandidate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    frame: int = Field(description="Index in the blueprint.")
    time_s: float
    scores: dict[str, float]


class KeyframeChoice(BaseModel):
    """The frame chosen near one anchor time, and why (Kling-Avatar sec. 2.2)."""

    model_config = ConfigDict(extra="forbid")

    anchor_index: int
    anchor_s: float = Field(description="Where the anchor sits on the timeline (a segment boundary).")
    source_s: float = Field(description="Blueprint time of the chosen frame; differs from anchor_s by the search.")
    frame: int
    image: FileRef
    candidates: list[KeyframeCandidate]


class Keyframes(StageOutput):
    choices: list[KeyframeChoice]


class Anchors(StageOutput):
    """The anchor keyframes at high resolution, one per plan anchor."""

    images: list[FileRef]
    width: int
    height: int


class SubClips(StageOutput):
    """One low-resolution clip per segment: frames `start_frame` to `end_frame` inclusive (both anchors)."""

    clips: list[FileRef]
    start_frames: list[int]
    end_frames: list[int]


class Seam(BaseModel):
    """A boundary between two sub-clips and whether transition frames were made for it."""

    model_config = ConfigDict(extra="forbid")

    anchor_index: int
    frame: int = Field(description="Global frame index of the anchor.")
    offset_s: float = Field(description="Chosen keyframe's blueprint time minus the anchor time.")
    mouth_gap: float = Field(description="Audio envelope at the seam minus at the keyframe's source time (0-1).")
    needed: bool
    reason: str
    start_frame: int | None = None
    num_frames: int = 0
    clip: FileRef | None = None


class Transitions(StageOutput):
    seams: list[Seam]


class FinalClips(StageOutput):
    """Each segment at the output resolution, without its closing anchor frame (the next segment starts with it)."""

    clips: list[FileRef]
    num_frames: int


class ComposedVideo(StageOutput):
    video: FileRef
    num_frames: int
    duration_s: float
    audio_streams: list[str]
