"""Helpers shared by tests: repository paths, tiny real media files, and tool requirements."""

from __future__ import annotations

import os
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


def write_wav(path: Path, duration_s: float, sample_rate: int = 16_000, frequency_hz: float = 220.0) -> Path:
    """A real 16-bit mono WAV of a sine tone."""
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    samples = (0.3 * np.sin(2 * np.pi * frequency_hz * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as stream:
        stream.setnchannels(1)
        stream.setsampwidth(2)
        stream.setframerate(sample_rate)
        stream.writeframes(samples.tobytes())
    return path


def write_image(path: Path, width: int = 64, height: int = 48) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def require_tools(*names: str) -> None:
    """Skip when a Debian tool is missing on a developer machine, but fail under CI, which installs them."""
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        message = f"needs {', '.join(missing)} (apt-get install espeak-ng sox)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
