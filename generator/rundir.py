"""The run directory: where a render's artifacts land, and the manifest that records them.

Layout (every file written atomically, every name keyed by the content hash of what made it):

    manifest.json                   RenderManifest: stages, artifacts with sha256, seeds, settings, timings
    blueprint/<key>.mkv             the low-resolution blueprint video
    keyframes/<key>.png, .json      the chosen low-resolution keyframe per anchor, with every candidate's scores
    anchors/<key>.png               the anchor keyframes at high resolution
    subclips/<key>.mkv              one first-last-frame sub-clip per segment (low resolution)
    transitions/<key>.mkv           audio-aware transition frames per seam that needs them
    super_resolve/<key>.mp4         each segment at the output resolution (H.264)
    compose/<key>.mp4               the finished video with its audio
    <stage>/output.json             what the stage produced, for reuse on rerun

A task's file name is the hash of its inputs, so a rerun finds what is already done, whichever stage was
interrupted: a killed render resumes where it stopped and produces the same bytes.
"""

from __future__ import annotations

import json
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from codirector.generator.videoio import atomic_path
from codirector.media import file_sha256
from codirector.schemas.manifest import Artifact, RenderManifest

__all__ = ["ItemResult", "RunDir"]

_MEDIA_TYPES = {".mkv": "video/x-matroska", ".mp4": "video/mp4", ".png": "image/png", ".json": "application/json"}


@dataclass(frozen=True)
class ItemResult:
    """One task's file: where it is (relative to the run directory), its hash and size, and whether it was reused."""

    path: str
    sha256: str
    size_bytes: int
    reused: bool

    def artifact(self) -> Artifact:
        suffix = Path(self.path).suffix
        media_type = _MEDIA_TYPES.get(suffix) or mimetypes.guess_type(self.path)[0] or "application/octet-stream"
        return Artifact(path=self.path, sha256=self.sha256, size_bytes=self.size_bytes, media_type=media_type)


@dataclass(frozen=True)
class RunDir:
    """A render's folder. Paths given to it are relative POSIX paths inside it."""

    root: Path

    def path(self, relative: str) -> Path:
        return self.root / relative

    def item(self, relative: str, *, reused: bool) -> ItemResult:
        path = self.path(relative)
        return ItemResult(relative, file_sha256(path), path.stat().st_size, reused)

    def existing(self, relative: str) -> ItemResult | None:
        """The finished file at `relative`, if a previous run made it (atomic writes: present means complete)."""
        return self.item(relative, reused=True) if self.path(relative).is_file() else None

    def write_json(self, relative: str, data: object, stage: str) -> None:
        with atomic_path(self.path(relative), stage) as temporary:
            temporary.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")

    def read_json(self, relative: str) -> object | None:
        path = self.path(relative)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # a damaged leftover is redone, not trusted

    def load_manifest(self) -> RenderManifest | None:
        data = self.read_json("manifest.json")
        if data is None:
            return None
        try:
            return RenderManifest.model_validate(data)
        except ValueError:
            return None

    def save_manifest(self, manifest: RenderManifest) -> None:
        self.write_json("manifest.json", manifest.model_dump(mode="json"), "manifest")
