"""Reading the media a job names: images through Pillow, audio through PyAV (any format ffmpeg decodes).

Every failure is a `MediaError` that names the file and what to do. This is a leaf module (it imports only
`codirector.errors` and the schemas), so the director and the generator can both use it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codirector.errors import MediaError, ValidationIssue
from codirector.schemas.base import Loc
from codirector.schemas.documents import document_sha256, json_path
from codirector.schemas.job import Job

__all__ = [
    "AudioInfo",
    "AudioSignal",
    "ImageInfo",
    "JobMedia",
    "JobMediaError",
    "file_sha256",
    "job_sha256",
    "load_audio",
    "load_image",
    "probe_audio",
    "probe_image",
    "probe_job_media",
]

_AUDIO_FIX = "Give a readable audio file (WAV, FLAC, MP3, M4A, OGG) with at least one audio stream."
_IMAGE_FIX = "Give a readable image file (PNG, JPEG, WebP)."


@dataclass(frozen=True)
class ImageInfo:
    path: Path
    width: int
    height: int

    @property
    def aspect(self) -> float:
        return self.width / self.height


@dataclass(frozen=True)
class AudioSignal:
    """Decoded audio: `samples` is float32 of shape (num_samples,) for mono or (num_channels, num_samples)."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return self.samples.shape[-1] / self.sample_rate


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    duration_s: float
    sample_rate: int
    num_channels: int
    codec: str


def _require_file(path: Path, fix: str) -> None:
    if not path.exists():
        raise MediaError(path, "no such file", "Check the path (relative paths start at the job file's folder).")
    if path.is_dir():
        raise MediaError(path, "is a folder, not a file", fix)
    if path.stat().st_size == 0:
        raise MediaError(path, "is empty", fix)


def load_image(path: str | Path) -> np.ndarray:
    """Decode an image to RGB uint8 of shape (height, width, 3)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    _require_file(path, _IMAGE_FIX)
    try:
        with Image.open(path) as image:
            image.load()
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise MediaError(path, f"cannot be decoded as an image ({error})", _IMAGE_FIX) from None


def probe_image(path: str | Path) -> ImageInfo:
    """Check that an image decodes completely and report its size."""
    pixels = load_image(path)
    height, width = pixels.shape[:2]
    return ImageInfo(Path(path), width, height)


def _decode_audio(path: Path, sample_rate: int | None, mono: bool) -> tuple[np.ndarray, int, str]:
    """Decode the first audio stream to float32 (num_channels, num_samples); returns samples, rate, codec."""
    import av

    _require_file(path, _AUDIO_FIX)
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise MediaError(path, "has no audio stream", _AUDIO_FIX)
            stream = container.streams.audio[0]
            codec = stream.codec_context.name
            rate = sample_rate or stream.codec_context.sample_rate
            resampler = av.AudioResampler(format="fltp", layout="mono" if mono else stream.layout.name, rate=rate)
            chunks = []
            for frame in container.decode(stream):
                chunks += [resampled.to_ndarray() for resampled in resampler.resample(frame)]
            chunks += [resampled.to_ndarray() for resampled in resampler.resample(None)]
    except av.error.FFmpegError as error:
        raise MediaError(path, f"cannot be decoded as audio ({error})", _AUDIO_FIX) from None
    samples = np.concatenate(chunks, axis=1).astype(np.float32) if chunks else np.zeros((1, 0), np.float32)
    if samples.shape[1] == 0:
        raise MediaError(path, "contains no audio samples", _AUDIO_FIX)
    return samples, rate, codec


def load_audio(path: str | Path, sample_rate: int | None = 16_000, mono: bool = True) -> AudioSignal:
    """Decode an audio file to float32 samples, resampled to `sample_rate` (None keeps the file's rate).

    Args:
        path: any file with an audio stream that ffmpeg can decode.
        sample_rate: target rate in Hz; 16 kHz suits Whisper and the prosody analysis.
        mono: mix all channels down to one.
    """
    samples, rate, _ = _decode_audio(Path(path), sample_rate, mono)
    return AudioSignal(samples[0] if mono else samples, rate)


def probe_audio(path: str | Path) -> AudioInfo:
    """Decode a whole audio file (so truncated files are caught) and report its exact duration."""
    path = Path(path)
    samples, rate, codec = _decode_audio(path, None, mono=False)
    return AudioInfo(path, samples.shape[1] / rate, rate, samples.shape[0], codec)


class JobMediaError(MediaError):
    """One or more media files of a job cannot be used; `issues` locates each in the job."""

    def __init__(self, source: str | Path, issues: list[ValidationIssue]) -> None:
        self.issues = issues
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        super().__init__(source, f"{issues[0]}{more}", "Fix the paths or the files named above.")


@dataclass(frozen=True)
class JobMedia:
    """What a job's media turned out to be: image sizes and audio durations, by the job field they come from."""

    images: dict[Loc, ImageInfo]
    audio: dict[Loc, AudioInfo]

    @property
    def duration_s(self) -> float:
        """The video's length: the longest audio track."""
        return max(info.duration_s for info in self.audio.values())


def probe_job_media(job: Job, source: str | Path = "job") -> JobMedia:
    """Open every image and audio file a `Job` names; raises `JobMediaError` listing every bad one."""
    images: dict[Loc, ImageInfo] = {}
    audio: dict[Loc, AudioInfo] = {}
    issues: list[ValidationIssue] = []
    for loc, path, kind in job.media_paths():
        try:
            if kind == "image":
                images[loc] = probe_image(path)
            else:
                audio[loc] = probe_audio(path)
        except MediaError as error:
            issues.append(ValidationIssue(json_path(loc), f"{error.source}: {error.problem}"))
    if issues:
        raise JobMediaError(source, issues)
    return JobMedia(images, audio)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def job_sha256(job: Job) -> str:
    """Hash of the job and the bytes of every media file it names: a plan records it, a render checks it."""
    digest = hashlib.sha256(document_sha256(job).encode())
    for _loc, path, _kind in job.media_paths():
        with open(path, "rb") as stream:
            for block in iter(lambda s=stream: s.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
