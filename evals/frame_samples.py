"""Decoding the video once, streaming, and the per-frame samples the render metrics are computed from.

Each frame gives its difference to the previous frame (seams), the second temporal difference of its 8x8-block
mean luminance (flicker), its mean colour, and for each character's tracked face the mouth opening, the mean colour
of the face's upper half and, once per curve window, the similarity to the reference face. With a SyncNet-style
scorer, each voiced character's mouth crop is kept too (only then: the crops cost memory and time).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from codirector.errors import MediaError
from codirector.evals.extractors import Extractors, crop_face
from codirector.evals.face_references import Reference, mean_lab, region_lab, upper_face
from codirector.evals.face_tracks import FaceTracker
from codirector.evals.sync_scorers import mouth_crop

__all__ = ["VIDEO_FIX", "FrameSamples", "VideoStream", "open_video", "scan"]

VIDEO_FIX = "Give a readable video file (MP4, MKV) with a video stream."
_SEARCH_SIDE = 256  # about the long side of the grey copy faces are searched and tracked on, pixels


# ------------------------------------------------------------------------------------------------ decoding


@dataclass
class VideoStream:
    """An open video: its frames (decoded as they are read), frame rate, frame count if known, and container."""

    frames: Iterator[np.ndarray]
    fps: float
    expected_frames: int | None
    container: Any


def open_video(path: Path) -> VideoStream:
    """Open `path` for decoding its first video stream; the caller closes `container`."""
    import av

    if not path.is_file():
        raise MediaError(path, "no such video file", VIDEO_FIX)
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as error:
        raise MediaError(path, f"cannot be opened as video ({error})", VIDEO_FIX) from None
    if not container.streams.video:
        container.close()
        raise MediaError(path, "has no video stream", VIDEO_FIX)
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    rate = stream.average_rate or stream.guessed_rate or Fraction(25)
    fps = float(rate)
    expected = int(stream.frames) if stream.frames else None
    if expected is None and stream.duration is not None and stream.time_base is not None:
        expected = round(float(stream.duration * stream.time_base) * fps)
    return VideoStream(_rgb_frames(container, stream), fps, expected, container)


def _rgb_frames(container: Any, stream: Any) -> Iterator[np.ndarray]:
    """Decoded frames as RGB uint8; 4:2:0 frames are converted by OpenCV, twice as fast as swscale here."""
    import cv2

    for frame in container.decode(stream):
        if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
            yield cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2RGB_I420)
        else:
            yield frame.to_ndarray(format="rgb24")


# ------------------------------------------------------------------------------------------------ per frame


@dataclass
class FrameSamples:
    """Everything gathered per frame while decoding, by character where it is about a face."""

    mouth: list[list[float]]
    lab: list[list[np.ndarray | None]]
    frame_lab: list[np.ndarray] = field(default_factory=list)
    identity: list[list[tuple[int, float]]] = field(default_factory=list)  # (frame, similarity) per character
    diffs: list[float] = field(default_factory=list)  # mean |grey difference| to the previous frame
    flicker: list[float] = field(default_factory=list)  # per frame from the third: mean |2nd difference|
    # per character with a voice, with a lip-sync scorer only: the mouth crop of each frame, None where unseen
    crops: list[list[np.ndarray | None]] | None = None


def scan(
    stream: VideoStream, references: Sequence[Reference], extractors: Extractors, seams: set[int],
    window_frames: int, max_frames: int | None,
) -> tuple[FrameSamples, FaceTracker, int]:  # fmt: skip
    """Decode the frames (at most `max_frames`), tracking the faces; the samples, the tracker and the frame count."""
    import cv2

    tracker = FaceTracker(references, extractors.identity, stream.fps)
    series = FrameSamples(mouth=[[] for _ in references], lab=[[] for _ in references])
    series.identity = [[] for _ in references]
    crop_size = extractors.sync.crop_size if extractors.sync is not None else 0
    crops: list[list[np.ndarray | None]] | None = [[] for _ in references] if crop_size else None
    series.crops = crops
    # crops of silent characters would never be scored
    voiced = [reference.character.audio is not None for reference in references]
    previous_small: np.ndarray | None = None
    blocks: list[np.ndarray] = []
    recent: list[float] = []
    count = 0
    for frame in stream.frames:
        if max_frames is not None and count >= max_frames:
            break
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        height, width = gray.shape
        # whole-number shrink factors: OpenCV's area resampling is several times faster for them
        shrink = max(1, round(max(height, width) / _SEARCH_SIDE))
        scale = 1.0 / shrink
        small = cv2.resize(gray, (width // shrink, height // shrink), interpolation=cv2.INTER_AREA)
        cut = False
        if previous_small is not None:
            diff = float(cv2.absdiff(small, previous_small).mean())
            series.diffs.append(diff)
            # a jump several times the recent motion is a cut: the faces must be searched again
            baseline = float(np.median(recent)) if recent else 0.0
            cut = len(recent) >= 3 and diff > max(8.0, 4.0 * baseline)
            recent = [*recent[-24:], diff]
        previous_small = small
        # 8x8-block means of the full-size luminance (area resampling by exactly 1/8 is the block mean)
        columns, rows = max(1, width // 8), max(1, height // 8)
        block = cv2.resize(gray[: rows * 8, : columns * 8], (columns, rows), interpolation=cv2.INTER_AREA)
        blocks = [*blocks[-2:], block.astype(np.float32)]
        if len(blocks) == 3:
            series.flicker.append(float(np.abs(blocks[2] - 2 * blocks[1] + blocks[0]).mean()))
        series.frame_lab.append(mean_lab(frame))  # type: ignore[arg-type]
        boxes = tracker.update(count, frame, small, scale, cut=cut or count in seams)
        sample_identity = count % window_frames == window_frames // 2
        for number, box in enumerate(boxes):
            opening = extractors.mouth.measure(frame, box) if box is not None else None
            series.mouth[number].append(math.nan if opening is None else float(opening))
            series.lab[number].append(region_lab(frame, upper_face(box)) if box is not None else None)
            if crops is not None and voiced[number]:
                crops[number].append(mouth_crop(frame, box, crop_size) if box is not None else None)
            if sample_identity and box is not None and references[number].embedding is not None:
                crop = crop_face(frame, box)
                if crop is not None:
                    similarity = float(extractors.identity.embed(crop) @ references[number].embedding)
                    series.identity[number].append((count, similarity))
        count += 1
    return series, tracker, count
