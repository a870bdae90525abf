"""Shared fixtures: tiny real media files written on the fly."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write_image, write_wav


@pytest.fixture
def media(tmp_path: Path) -> dict[str, Path]:
    """A folder with a valid face image and a 2 s voice track."""
    return {
        "image": write_image(tmp_path / "face.png"),
        "audio": write_wav(tmp_path / "voice.wav", 2.0),
    }
