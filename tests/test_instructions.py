"""The offline text expert's reading of prompts: aspects, values, characters and timing."""

from __future__ import annotations

import pytest

from codirector.agents.instructions import load_lexicon, read_instructions, timing_window
from codirector.schemas.job import CharacterSpec

HOST = CharacterSpec(id="host", name="Eileen", reference_image="a.jpg", audio="a.wav")
GUEST = CharacterSpec(id="guest", name="Sam", reference_image="b.jpg", audio="b.wav")


def _read(prompt: str, characters=(HOST,), duration_s: float = 20.0):
    return read_instructions(prompt, list(characters), duration_s, load_lexicon()).instructions


def test_emotion_action_and_timed_camera() -> None:
    found = {(i.aspect, i.value, i.timing) for i in _read("She smiles warmly, with a slow push-in at the end.")}
    assert ("emotion", "happy", "throughout") in found
    assert ("camera", "push_in", "end") in found
    camera = next(i for i in _read("She smiles, with a slow push-in at the end.") if i.aspect == "camera")
    assert (camera.start_s, camera.end_s) == (15.0, 20.0)
    assert "slow" in camera.detail


def test_lead_in_timing_applies_to_the_rest_of_the_sentence() -> None:
    items = _read("Halfway through, her mood turns sad and the camera pulls back.")
    assert {(i.aspect, i.value) for i in items} >= {("emotion", "sad"), ("camera", "pull_out")}
    assert all(i.start_s == 10.0 and i.end_s == 20.0 for i in items)


def test_word_cue_and_until_the_end() -> None:
    items = _read("When she reaches launch day, she gets excited and the camera pushes in until the end.")
    cued = [i for i in items if i.timing == "word"]
    assert cued
    assert all(i.cue_word == "launch day" for i in cued)
    camera = next(i for i in items if i.aspect == "camera")
    assert camera.end_s == 20.0


@pytest.mark.parametrize(
    ("prompt", "window"),
    [
        ("From 3 to 6 seconds she waves.", (3.0, 6.0)),
        ("After 12 seconds she laughs.", (12.0, 20.0)),
        ("In the last 4 seconds she nods.", (16.0, 20.0)),
    ],
)
def test_explicit_windows(prompt: str, window: tuple[float, float]) -> None:
    action = next(i for i in _read(prompt) if i.aspect == "action")
    assert (action.timing, action.start_s, action.end_s) == ("window", *window)


def test_camera_directions_and_simultaneous_clauses() -> None:
    items = _read("She blinks at the end while the camera pans left.")
    camera = next(i for i in items if i.aspect == "camera")
    assert (camera.value, camera.timing) == ("pan", "end")
    assert camera.detail.startswith("left")


def test_characters_by_name_and_everyone() -> None:
    items = _read("Sam laughs. Both smile at each other.", characters=(HOST, GUEST))
    laugh = next(i for i in items if i.value == "laughs")
    assert laugh.character_id == "guest"
    smile = next(i for i in items if i.aspect == "emotion")
    assert smile.character_id is None


def test_chinese_keywords_and_unparsed_clauses() -> None:
    report = read_instructions("她很开心，最后镜头推近。Something unrelated here.", [HOST], 10.0, load_lexicon())
    assert {(i.aspect, i.value) for i in report.instructions} >= {("emotion", "happy"), ("camera", "push_in")}
    assert report.unparsed == ["Something unrelated here."]


def test_timing_windows_are_bounded() -> None:
    assert timing_window("end", 60.0) == (55.0, 60.0)
    assert timing_window("start", 8.0) == (0.0, 2.0)
