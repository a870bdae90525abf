"""Constructed talking-face media for the render-metric tests: the example portrait with a mouth drawn to a known
audio envelope, and WAV files of noise shaped by the same envelope."""

from __future__ import annotations

import wave
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
from helpers import EXAMPLES

from codirector.evals.render_metrics import CharacterTrack
from codirector.evals.signals import smooth
from codirector.faces import detect_face
from codirector.generator.videoio import VideoWriter
from codirector.media import load_image

FPS = 25
SIDE = 320  # the constructed videos are SIDE x SIDE (twice as wide for two characters)
REFERENCE = EXAMPLES / "english_portrait" / "reference.jpg"
Box = tuple[float, float, float, float]


def portrait(side: int | None = SIDE) -> tuple[np.ndarray, Box]:
    """The reference portrait (resized to side x side, or as it is for None) and its face box."""
    image = load_image(REFERENCE)
    if side is not None:
        image = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
    found = detect_face(image)
    assert found is not None
    return image, found.box


def with_mouth(image: np.ndarray, box: Box, opening: float) -> np.ndarray:
    """The image with a dark, open mouth in the face `box`, `opening` (0-1) of its tallest."""
    x0, y0, x1, y1 = box
    width, height = x1 - x0, y1 - y0
    out = image.copy()
    if opening > 0:
        center = (round((x0 + x1) / 2), round(y0 + 0.8 * height))
        axes = (round(0.16 * width), max(1, round(opening * 0.09 * height)))
        cv2.ellipse(out, center, axes, 0, 0, 360, (45, 15, 20), -1, cv2.LINE_AA)
    return out


def speech_envelope(num_frames: int, seed: int) -> np.ndarray:
    """A speech-like loudness per frame: random levels, silent in about a third of 8-frame stretches."""
    rng = np.random.default_rng(seed)
    voiced = np.repeat(rng.uniform(0, 1, num_frames // 8 + 1) > 0.3, 8)[:num_frames]
    return smooth(rng.uniform(0, 1, num_frames) * voiced)


def write_voice(path: Path, loudness: np.ndarray, seed: int, sample_rate: int = 16_000) -> Path:
    """A 16-bit WAV of noise whose loudness around each video frame's time follows `loudness` (the sample at t
    belongs to the frame nearest t, as a frame shows the instant i / fps)."""
    rng = np.random.default_rng(seed)
    hop = sample_rate // FPS
    frame_of_sample = np.minimum(np.round(np.arange(len(loudness) * hop) / hop).astype(int), len(loudness) - 1)
    samples = np.clip(0.3 * rng.standard_normal(len(loudness) * hop) * loudness[frame_of_sample], -1, 1)
    with wave.open(str(path), "wb") as stream:
        stream.setnchannels(1)
        stream.setsampwidth(2)
        stream.setframerate(sample_rate)
        stream.writeframes((samples * 32767).astype("<i2").tobytes())
    return path


def write_video(path: Path, frames: Iterable[np.ndarray]) -> Path:
    """An H.264 MP4 at 25 fps, as renders are."""
    writer: VideoWriter | None = None
    for frame in frames:
        if writer is None:
            writer = VideoWriter(path, width=frame.shape[1], height=frame.shape[0], fps=FPS, codec="h264")
        writer.write(frame)
    assert writer is not None
    writer.close()
    return path


def one_character(audio: Path | None = None) -> tuple[CharacterTrack, ...]:
    """The portrait's character, voiced by `audio`."""
    return (CharacterTrack("host", audio, REFERENCE, None),)
