"""Packaged model assets: locating installed files and assembling split models."""

from __future__ import annotations

from pathlib import Path

import pytest

from codirector import assets
from codirector.assets import PackagedAsset, assemble_parts, locate


def make_parts(folder: Path) -> tuple[Path, list[Path]]:
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    parts = [folder / "model.bin.part1", folder / "model.bin.part2"]
    parts[0].write_bytes(b"abc" * 1000)
    parts[1].write_bytes(b"xyz" * 500)
    return folder, parts


def test_assemble_concatenates_parts_in_order(tmp_path: Path) -> None:
    source, parts = make_parts(tmp_path / "src")
    target = assemble_parts(source, parts, tmp_path / "home" / "models" / "m", "model.bin")
    assert (target / "model.bin").read_bytes() == b"abc" * 1000 + b"xyz" * 500
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.bin"]
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_assembled_model_is_reused(tmp_path: Path) -> None:
    source, parts = make_parts(tmp_path / "src")
    target = assemble_parts(source, parts, tmp_path / "m", "model.bin")
    stamp = (target / "model.bin").stat().st_mtime_ns
    parts[0].write_bytes(b"changed")
    assemble_parts(source, parts, tmp_path / "m", "model.bin")
    assert (target / "model.bin").stat().st_mtime_ns == stamp


def test_missing_part_fails_cleanly(tmp_path: Path) -> None:
    source, parts = make_parts(tmp_path / "src")
    parts[1].unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.bin\.part2"):
        assemble_parts(source, parts, tmp_path / "m", "model.bin")
    assert not (tmp_path / "m").exists()


def test_locate_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = PackagedAsset("nothing", "test", "pip install nothing", ("no_such_package_xyz", "model"))
    monkeypatch.setitem(assets.PACKAGED_ASSETS, "nothing", fake)
    assert locate("nothing") is None


def test_locate_finds_files_inside_an_installed_package(monkeypatch: pytest.MonkeyPatch) -> None:
    # jsonschema is always installed; its package data stands in for a model folder.
    real = PackagedAsset("schemas", "test", "", ("jsonschema_specifications", "schemas"))
    monkeypatch.setitem(assets.PACKAGED_ASSETS, "schemas", real)
    found = locate("schemas")
    assert found is not None
    assert found.is_dir()
