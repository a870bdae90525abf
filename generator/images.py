"""Still images in the run directory: PNG, written atomically (a keyframe or an anchor per file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from codirector.generator.videoio import atomic_path

__all__ = ["read_png", "write_png"]


def write_png(path: Path, image: np.ndarray, stage: str) -> None:
    """Write an RGB uint8 image as PNG (fast compression: these are intermediates)."""
    from PIL import Image

    with atomic_path(path, stage) as temporary:
        Image.fromarray(image).save(temporary, format="PNG", compress_level=1)


def read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))
