"""The shipped examples: the categories the papers evaluate, real media, and a script that rebuilds them."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import EXAMPLES, require_tools

from codirector.api import validate_file
from codirector.media import load_audio

EXPECTED = {"english_portrait", "mandarin_portrait", "singing", "dialogue", "cat", "long_talk"}


def test_the_six_examples_exist() -> None:
    assert {p.parent.name for p in EXAMPLES.glob("*/job.yaml")} == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_validates_with_its_media(name: str) -> None:
    report = validate_file(EXAMPLES / name / "job.yaml")
    assert report.media is not None
    assert report.media.duration_s > 5.0


def test_long_example_has_a_minute_of_audio() -> None:
    assert validate_file(EXAMPLES / "long_talk" / "job.yaml").media.duration_s >= 60.0


def test_mandarin_example_is_tagged_zh() -> None:
    assert validate_file(EXAMPLES / "mandarin_portrait" / "job.yaml").document.language == "zh"


def test_examples_stay_small() -> None:
    total = sum(p.stat().st_size for p in EXAMPLES.rglob("*") if p.is_file())
    assert total < 5_000_000


def rms_db(samples: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(samples**2)) + 1e-9))


def test_dialogue_turns_match_the_audio() -> None:
    """turns.json was measured from the tracks: each speaker is loud inside their turns and silent outside."""
    job = validate_file(EXAMPLES / "dialogue" / "job.yaml").document
    tracks = {c.id: load_audio(c.audio, 16_000) for c in job.characters}
    assert len({round(t.duration_s, 3) for t in tracks.values()}) == 1, "both tracks must be equally long"
    turns = json.loads((EXAMPLES / "dialogue" / "turns.json").read_text())["turns"]
    assert len(turns) >= 4
    for turn in turns:
        signal = tracks[turn["speaker"]]
        start, end = int(turn["start_s"] * 16_000), int(turn["end_s"] * 16_000)
        assert rms_db(signal.samples[start:end]) > -35, turn
    for speaker, signal in tracks.items():
        mine = np.zeros(len(signal.samples), bool)
        for turn in (t for t in turns if t["speaker"] == speaker):
            mine[int(turn["start_s"] * 16_000) : int(turn["end_s"] * 16_000)] = True
        assert rms_db(signal.samples[~mine]) < -50, f"{speaker} speaks outside their turns"
    overlaps = [
        (a, b) for a, b in itertools.pairwise(turns) if a["speaker"] != b["speaker"] and b["start_s"] < a["end_s"]
    ]
    assert len(overlaps) == 1, "the dialogue overlaps exactly once"


@pytest.mark.tools
def test_script_rebuilds_an_example(tmp_path: Path) -> None:
    require_tools("espeak-ng", "sox")
    script = EXAMPLES / "make_examples.py"
    subprocess.run([sys.executable, str(script), "--out", str(tmp_path), "--only", "cat"], check=True)
    rebuilt = validate_file(tmp_path / "cat" / "job.yaml")
    shipped = validate_file(EXAMPLES / "cat" / "job.yaml")
    assert rebuilt.media.duration_s == pytest.approx(shipped.media.duration_s, abs=0.5)
