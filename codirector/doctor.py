"""`codirector doctor`: what is installed and usable here, each with how to get what is missing.

Checks import nothing heavy except torch (to ask it about devices) and run ffmpeg once; they never fail the
command: a missing optional part is a row that says how to install it.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path
from typing import Literal

from codirector.assets import PACKAGED_ASSETS, locate
from codirector.config import Config

__all__ = ["Check", "find_ffmpeg", "run_checks"]

Status = Literal["ok", "missing", "warn"]


@dataclass(frozen=True)
class Check:
    group: str
    name: str
    status: Status
    detail: str
    hint: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _version(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def find_ffmpeg(config: Config) -> Path | None:
    """The ffmpeg binary to use: the configured one, else imageio-ffmpeg's bundled build, else PATH's."""
    if config.ffmpeg is not None:
        return config.ffmpeg if config.ffmpeg.exists() else None
    if find_spec("imageio_ffmpeg") is not None:
        import imageio_ffmpeg

        try:
            return Path(imageio_ffmpeg.get_ffmpeg_exe())
        except RuntimeError:  # the wheel for this platform ships no binary
            pass
    found = shutil.which("ffmpeg")
    return Path(found) if found else None


def _check_ffmpeg(config: Config) -> list[Check]:
    binary = find_ffmpeg(config)
    if binary is None:
        return [Check("video", "ffmpeg", "missing", "no ffmpeg found", "pip install imageio-ffmpeg")]
    try:
        banner = subprocess.run([binary, "-hide_banner", "-version"], capture_output=True, text=True, timeout=30)
        encoders = subprocess.run([binary, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return [Check("video", "ffmpeg", "missing", f"{binary} does not run ({error})", "pip install imageio-ffmpeg")]
    words = banner.stdout.split()
    release = words[2] if len(words) > 2 and words[1] == "version" else "unknown version"
    wanted = [codec for codec in ("libx264", "aac") if re.search(rf"\s{codec}\s", encoders.stdout)]
    missing = sorted({"libx264", "aac"} - set(wanted))
    status: Status = "ok" if not missing else "warn"
    detail = f"{release} at {binary}; encoders: {', '.join(wanted) or 'none'}"
    hint = f"this ffmpeg lacks {', '.join(missing)}: use imageio-ffmpeg's build" if missing else ""
    return [Check("video", "ffmpeg", status, detail, hint)]


def _check_torch() -> list[Check]:
    if find_spec("torch") is None:
        hint = "CPU: pip install torch --index-url https://download.pytorch.org/whl/cpu; GPU: see README"
        return [
            Check("compute", "torch", "missing", "not installed (only the dit backend needs it)", hint),
            Check("compute", "gpu", "missing", "unknown without torch", ""),
        ]
    import torch

    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only build"
    checks = [Check("compute", "torch", "ok", f"{torch.__version__} ({build}), {torch.get_num_threads()} CPU threads")]
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]
        checks.append(Check("compute", "gpu", "ok", f"{len(names)} CUDA device(s): {', '.join(names)}"))
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        checks.append(Check("compute", "gpu", "ok", "Apple MPS"))
    else:
        nvidia = shutil.which("nvidia-smi")
        hint = "a GPU is present but this torch cannot use it: install a CUDA build" if nvidia else ""
        checks.append(Check("compute", "gpu", "warn" if nvidia else "missing", "none usable: CPU only", hint))
    return checks


def _check_assets() -> list[Check]:
    checks = []
    for asset in PACKAGED_ASSETS.values():
        path = locate(asset.name)
        if path is None:
            checks.append(Check("models", asset.name, "missing", asset.purpose, asset.install))
        else:
            note = " (parts assembled on first use)" if asset.parts else ""
            checks.append(Check("models", asset.name, "ok", f"{asset.purpose}: {path}{note}"))
    return checks


# (group, distribution, import name, what needs it, install hint)
_LIBRARIES = [
    ("core", "pydantic", "pydantic", "schemas", "pip install codirector"),
    ("core", "jsonschema", "jsonschema", "schema validation", "pip install codirector"),
    ("core", "av", "av", "audio and video IO", "pip install codirector"),
    ("director", "langgraph", "langgraph", "the director's graph", "pip install langgraph"),
    ("director", "openai", "openai", "the openai provider", "pip install openai"),
    ("director", "faster-whisper", "faster_whisper", "offline transcription", "pip install faster-whisper"),
    ("director", "librosa", "librosa", "offline prosody analysis", "pip install librosa"),
    (
        "director",
        "opencv-python-headless",
        "cv2",
        "offline face and person detection",
        "pip install 'opencv-python-headless<5'",
    ),
    ("director", "mediapipe", "mediapipe", "face landmarks (optional)", "pip install mediapipe"),
    (
        "director",
        "transformers",
        "transformers",
        "the transformers provider",
        "pip install 'codirector[dit]'",
    ),
    (
        "director",
        "llama-cpp-python",
        "llama_cpp",
        "a local OpenAI-compatible server",
        "pip install 'codirector[llm]'",
    ),
    ("generator", "diffusers", "diffusers", "the dit backend", "pip install 'codirector[dit]'"),
    ("generator", "ray", "ray", "the ray executor", "pip install 'codirector[ray]'"),
]


def _check_libraries() -> list[Check]:
    checks = []
    for group, distribution, import_name, purpose, hint in _LIBRARIES:
        found = find_spec(import_name) is not None
        installed = _version(distribution) if found else None
        if found:
            checks.append(Check(group, distribution, "ok", f"{installed or 'installed'}: {purpose}"))
        else:
            checks.append(Check(group, distribution, "missing", purpose, hint))
    return checks


def _check_python() -> list[Check]:
    ok = sys.version_info >= (3, 11)
    detail = f"{platform.python_version()} ({sys.executable}), codirector {_version('codirector') or 'source tree'}"
    return [Check("core", "python", "ok" if ok else "missing", detail, "" if ok else "use Python 3.11 or newer")]


def run_checks(config: Config | None = None) -> list[Check]:
    """Every check, in display order."""
    config = config or Config()
    sections: list[Callable[[], list[Check]]] = [
        _check_python,
        _check_libraries,
        lambda: _check_ffmpeg(config),
        _check_torch,
        _check_assets,
    ]
    return [check for section in sections for check in section()]
