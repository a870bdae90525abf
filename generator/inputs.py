"""What every cascade task needs from the render plan, in a form that hashes, pickles and travels to workers.

Media travel as (path, sha256) references and are decoded once per worker process (`load_reference`,
`load_track`): a task is a few kilobytes of JSON whatever the video's length, its content hash is its resume key,
and a changed audio or reference file changes every key that depends on it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from codirector.generator.backend import Backend, CharacterCondition, ShotDirection
from codirector.generator.rundir import ItemResult, RunDir
from codirector.media import file_sha256, load_audio, load_image
from codirector.schemas.render_plan import DiffusionSettings, RenderPlan, Segment

__all__ = [
    "SAMPLE_RATE",
    "BackendRef",
    "CharacterInput",
    "MediaRef",
    "RenderInputs",
    "SegmentDirection",
    "StageTask",
    "TaskModel",
    "derive_seed",
    "frame_index",
    "load_reference",
    "load_track",
    "nearest_anchor",
]

SAMPLE_RATE = 16_000  # audio conditioning rate: Whisper's, and enough for a mouth envelope


class TaskModel(BaseModel):
    """A frozen, JSON-serialisable model whose content hash is its resume key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def key(self) -> str:
        """SHA-256 of the content; where the run folder is (`run_root`) is not content."""
        text = json.dumps(self.model_dump(mode="json", exclude={"run_root"}), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


class MediaRef(TaskModel):
    path: str
    sha256: str

    @classmethod
    def of(cls, path: Path) -> MediaRef:
        return cls(path=str(path), sha256=file_sha256(path))


class BackendRef(TaskModel):
    """A backend by registered name, class path, version and options: enough for a worker to build its own copy.

    The class path lets a fresh worker process (spawned, or on a Ray node) load a backend that was registered
    at run time in the parent, which its own registry has never seen.
    """

    name: str
    path: str  # "module:QualifiedName"
    version: str
    options: dict[str, object] = {}

    @classmethod
    def of(cls, name: str, backend: Backend) -> BackendRef:
        kind = type(backend)
        return cls(name=name, path=f"{kind.__module__}:{kind.__qualname__}", version=kind.version,
                   options=backend.config())  # fmt: skip

    def load(self) -> Backend:
        """This process's copy of the backend (built once per process and options)."""
        from codirector.generator.registry import known_backends, load_backend, register_backend

        if self.name not in known_backends():
            register_backend(self.name, self.path)
        return load_backend(self.name, **self.options)


class CharacterInput(TaskModel):
    id: str
    reference: MediaRef | None = None
    region_xyxy_norm: tuple[float, float, float, float] | None = None
    audio: MediaRef | None = None


class SegmentDirection(TaskModel):
    """A render-plan segment with the span of the shot it belongs to."""

    start_s: float
    end_s: float
    shot_index: int
    shot_start_s: float
    shot_end_s: float
    segment: Segment

    def to_direction(self) -> ShotDirection:
        s = self.segment
        return ShotDirection(
            start_s=self.start_s, end_s=self.end_s, shot_index=self.shot_index, shot_start_s=self.shot_start_s,
            shot_end_s=self.shot_end_s, shot_size=s.shot_size, camera=s.camera, emotion=s.emotion,
            speakers=tuple(s.speakers), prompt=s.prompt, negative_prompt=s.negative_prompt,
        )  # fmt: skip


class RenderInputs(TaskModel):
    """The plan's media and timeline, shared by every task of a render."""

    characters: tuple[CharacterInput, ...]
    scene: MediaRef | None = None
    duration_s: float
    fps: int
    global_prompt: str
    global_negative_prompt: str = ""
    directions: tuple[SegmentDirection, ...]  # one per render-plan segment

    @classmethod
    def from_plan(cls, plan: RenderPlan) -> RenderInputs:
        characters = tuple(
            CharacterInput(
                id=c.id,
                reference=MediaRef.of(c.reference_image) if c.reference_image is not None else None,
                region_xyxy_norm=c.scene_box_xyxy_norm,
                audio=MediaRef.of(c.audio) if c.audio is not None else None,
            )
            for c in plan.characters
        )
        return cls(
            characters=characters,
            scene=MediaRef.of(plan.scene_image) if plan.scene_image is not None else None,
            duration_s=plan.duration_s,
            fps=plan.fps,
            global_prompt=plan.global_prompt,
            global_negative_prompt=plan.global_negative_prompt,
            directions=tuple(_direction(segment, plan.segments) for segment in plan.segments),
        )

    @property
    def num_frames(self) -> int:
        """Frames in the finished video: one every 1/fps from 0 up to (not including) the end."""
        return frame_index(self.duration_s, self.fps)

    def shot_directions(self) -> tuple[ShotDirection, ...]:
        return tuple(d.to_direction() for d in self.directions)

    def direction_at(self, time_s: float) -> ShotDirection:
        directions = self.shot_directions()
        return next((d for d in reversed(directions) if d.start_s <= time_s + 1e-9), directions[0])

    def conditions(
        self, start_s: float, num_frames: int, fps: float, *, audio: bool = True
    ) -> tuple[CharacterCondition, ...]:
        """Each character's reference and region, and their audio from `start_s` over `num_frames` frames."""
        length = round(num_frames / fps * SAMPLE_RATE)
        offset = round(start_s * SAMPLE_RATE)
        found = []
        for character in self.characters:
            samples = None
            if audio and character.audio is not None:
                track = load_track(character.audio.path, character.audio.sha256)
                samples = np.zeros(length, np.float32)
                part = track[max(0, offset) : max(0, offset + length)]
                samples[max(0, -offset) : max(0, -offset) + len(part)] = part[: length - max(0, -offset)]
            found.append(
                CharacterCondition(
                    id=character.id,
                    reference=None if character.reference is None else load_reference(*_ref(character.reference)),
                    region_xyxy_norm=character.region_xyxy_norm,
                    audio=samples,
                )
            )
        return tuple(found)

    def scene_image(self) -> np.ndarray | None:
        return None if self.scene is None else load_reference(*_ref(self.scene))


class StageTask(TaskModel):
    """One task of a parallel stage: the run folder, the backend, the render's inputs, the size and the sampler.

    Its output file is named by its own content hash under the stage's folder, so `finished()` finds the work of
    an earlier, interrupted run; subclasses set `STAGE` and `SUFFIX` and add their own fields.
    """

    STAGE: ClassVar[str]
    SUFFIX: ClassVar[str]

    run_root: str
    backend: BackendRef
    inputs: RenderInputs
    width: int
    height: int
    sampler: DiffusionSettings

    def output(self) -> str:
        return f"{self.STAGE}/{self.key()[:20]}{self.SUFFIX}"

    @property
    def run_dir(self) -> RunDir:
        return RunDir(Path(self.run_root))

    def finished(self) -> ItemResult | None:
        """The output of an earlier run of this very task, if there is one."""
        return self.run_dir.existing(self.output())

    def written(self) -> ItemResult:
        """The output this task has just written."""
        return self.run_dir.item(self.output(), reused=False)


def _ref(media: MediaRef) -> tuple[str, str]:
    return media.path, media.sha256


def _direction(segment: Segment, segments: Sequence[Segment]) -> SegmentDirection:
    """A segment with the span of its whole shot (camera moves run over the shot, not the segment)."""
    same_shot = [s for s in segments if s.shot_index == segment.shot_index]
    return SegmentDirection(
        start_s=segment.start_s, end_s=segment.end_s, shot_index=segment.shot_index,
        shot_start_s=min(s.start_s for s in same_shot), shot_end_s=max(s.end_s for s in same_shot), segment=segment,
    )  # fmt: skip


def frame_index(time_s: float, fps: float) -> int:
    """The frame shown at `time_s` (frames sit at i / fps; a time rounds to the nearest one)."""
    return round(time_s * fps + 1e-9)


def nearest_anchor(anchors_s: Sequence[float], time_s: float) -> int:
    """Index of the anchor at `time_s` (the render plan's validator guarantees one within a frame)."""
    return min(range(len(anchors_s)), key=lambda index: abs(anchors_s[index] - time_s))


def derive_seed(settings: DiffusionSettings, *parts: object) -> DiffusionSettings:
    """The stage's sampler settings with a seed of its own for one task (a segment, an anchor, a seam)."""
    digest = hashlib.sha256(f"{settings.seed}:{':'.join(map(str, parts))}".encode()).digest()
    return settings.model_copy(update={"seed": int.from_bytes(digest[:4], "big")})


@functools.lru_cache(maxsize=16)
def load_reference(path: str, sha256: str) -> np.ndarray:
    """An image as RGB uint8, decoded once per process (the hash keys the cache, so an edited file reloads)."""
    image = load_image(path)
    image.setflags(write=False)
    return image


@functools.lru_cache(maxsize=8)
def load_track(path: str, sha256: str) -> np.ndarray:
    """A whole audio track as mono float32 at `SAMPLE_RATE`, decoded once per process."""
    samples = load_audio(path, SAMPLE_RATE).samples
    samples.setflags(write=False)
    return samples
