"""Deterministic repairs of a model's storyline draft, applied before the model is asked again."""

from __future__ import annotations

from samples import audio_report

from codirector.agents.repair import clamp_vocabulary, fit_timeline, fix_gaze
from codirector.schemas import AudioReport
from codirector.schemas.plan import Repair


def test_vocabulary_is_clamped_through_synonyms_and_spelling() -> None:
    repairs: list[Repair] = []
    data = {
        "shots": [
            {
                "shot_size": "close-up",
                "emotion": {"label": "joyful", "intensity": 9},
                "camera": {"movement": "dolly in", "direction": "left", "speed": "slowly"},
            },
            {"shot_size": "medum", "emotion": {"label": "xyzzy"}, "camera": {"movement": "pan"}},
        ]
    }
    fixed = clamp_vocabulary(data, repairs)
    first, second = fixed["shots"]
    assert first["shot_size"] == "close_up"
    assert first["emotion"] == {"label": "happy", "intensity": 3}
    assert first["camera"] == {"movement": "push_in", "speed": "slow"}  # a push-in takes no direction
    assert second["shot_size"] == "medium"
    assert second["emotion"]["label"] == "neutral"
    assert second["camera"] == {"movement": "pan", "direction": "right"}
    assert {r.action for r in repairs} == {"clamp_vocabulary"}
    assert len(repairs) == 6


def test_gaze_at_a_missing_character_is_pointed_somewhere_real() -> None:
    repairs: list[Repair] = []
    two = fix_gaze({"shots": [{"speakers": ["host"], "gaze": {"target": "character"}}]}, ["host", "guest"], repairs)
    assert two["shots"][0]["gaze"] == {"target": "character", "character_id": "guest"}
    one = fix_gaze({"shots": [{"gaze": {"target": "character", "character_id": "ghost"}}]}, ["host"], repairs)
    assert one["shots"][0]["gaze"] == {"target": "camera"}
    assert len(repairs) == 2


def test_drafted_spans_are_fitted_to_the_word_gaps() -> None:
    audio = AudioReport.model_validate(audio_report())  # words 0.2-0.6, 0.65-1.0, 2.0-2.5 over 4 s
    repairs: list[Repair] = []
    spans = fit_timeline([(1.8, 4.0), (0.1, 1.7), (3.9, 4.0)], [audio], 4.0, 0.5, repairs)
    assert spans == [(0.0, 1.5, 1), (1.5, 4.0, 0)]  # sorted, cut snapped into the pause, the tiny last one merged
    assert {r.action for r in repairs} >= {"snap_to_word", "merge_short_shot", "stretch_to_timeline"}
