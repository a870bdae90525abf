"""Plan metrics on a hand-made plan whose right answers are worked out in the comments."""

from __future__ import annotations

from typing import Any

import pytest
from samples import sample

from codirector.evals.plan_metrics import measure_plan
from codirector.prompts.templates import load_prompt_data
from codirector.schemas import Expectations, Plan
from codirector.schemas.documents import validate_data

# The sample plan (tests/samples.py), 4.0 s at 25 fps, characters host "Ada" (voiced), guest "Bo", cat "Cat":
#   shot 0: 0.0-1.5 speakers [host]        pan left  happy  actions [nods]
#   shot 1: 1.5-2.5 speakers []            static    happy  actions [nods]
#   shot 2: 2.5-4.0 speakers [host, guest] push_in   happy  actions [nods]
# host's words: Hello 0.2-0.6, there 0.65-1.0, friends 2.0-2.5; one conflict (emotion, audio vs text, text won);
# every negative prompt is "sad face, frantic motion".


def _plan(mutate: Any = None) -> Plan:
    data = sample("plan")
    if mutate is not None:
        mutate(data)
    plan = validate_data(data, "plan")
    assert isinstance(plan, Plan)
    return plan


def _measure(plan: Plan, **expect: Any) -> tuple[dict[str, float | None], dict[str, Any]]:
    opposites, _ = load_prompt_data("negative_director/opposites")
    measured = measure_plan(plan, Expectations.model_validate(expect), opposites=opposites)
    return measured.metrics, measured.details


def test_a_valid_plan_tiles_its_timeline() -> None:
    metrics, _ = _measure(_plan())
    assert metrics["plan.schema_valid"] == 1.0
    assert metrics["plan.coverage"] == 1.0
    assert metrics["plan.gaps_s"] == 0.0
    assert metrics["plan.overlaps_s"] == 0.0
    assert metrics["plan.repairs"] == 1.0  # the sample's one snap_to_word
    assert metrics["plan.model_calls"] == 1.0


def test_gaps_and_overlaps_are_measured_in_seconds() -> None:
    plan = _plan()
    shots = plan.storyline.shots
    # skip validation on purpose: a broken timeline is what the metric exists to catch
    broken = [shots[0].model_copy(update={"end_s": 1.2}), shots[1].model_copy(update={"end_s": 2.9}), shots[2]]
    story = plan.storyline.model_copy(update={"shots": broken})
    metrics, _ = _measure(plan.model_copy(update={"storyline": story}))
    assert metrics["plan.gaps_s"] == pytest.approx(0.3)  # 1.2 -> 1.5
    assert metrics["plan.overlaps_s"] == pytest.approx(0.4)  # 2.5 -> 2.9 twice
    assert metrics["plan.coverage"] == pytest.approx((4.0 - 0.3) / 4.0)


def test_cuts_inside_words_are_found() -> None:
    metrics, details = _measure(_plan())
    assert metrics["plan.word_boundary_cuts"] == 1.0  # 1.5 is in a pause, 2.5 is where "friends" ends

    def move_cut(data: dict[str, Any]) -> None:
        shots = data["storyline"]["shots"]
        shots[1]["end_s"] = shots[2]["start_s"] = 2.2  # inside "friends" (2.0-2.5)

    metrics, details = _measure(_plan(move_cut))
    assert metrics["plan.word_boundary_cuts"] == 0.5
    assert details["plan.cuts_inside_words_s"] == [2.2]


@pytest.mark.parametrize(
    ("expect", "metric", "value"),
    [
        ({"emotions": [{"label": "happy"}]}, "plan.emotion_adherence", 1.0),
        ({"emotions": [{"label": "sad"}]}, "plan.emotion_adherence", 0.0),
        # shot 0 pans left over 1.0-1.5 of the 1.0-2.0 window
        ({"camera": [{"movement": "pan", "direction": "left", "at": "window", "start_s": 1.0, "end_s": 2.0}]},
         "plan.camera_adherence", 0.5),
        ({"camera": [{"movement": "pan", "direction": "right", "at": "start"}]}, "plan.camera_adherence", 0.0),
        ({"camera": [{"movement": "push_in", "at": "end"}, {"movement": "push_in", "at": "start"}]},
         "plan.camera_adherence", 0.5),
        # "pan" covers 1.5 s of 4.0 throughout
        ({"camera": [{"movement": "pan", "direction": "left"}]}, "plan.camera_adherence", 1.5 / 4.0),
        ({"actions": [{"text": "nod", "at": "start", "character_id": "host"}]}, "plan.action_adherence", 1.0),
        ({"actions": [{"text": "waves", "at": "middle"}]}, "plan.action_adherence", 0.0),
        ({"speakers": [{"character_id": "host", "at": "start", "alone": True}]}, "plan.speaker_expectations", 1.0),
        ({"speakers": [{"character_id": "host", "at": "end", "alone": True}]}, "plan.speaker_expectations", 0.0),
        ({"speakers": [{"character_id": "guest", "at": "end"}]}, "plan.speaker_expectations", 1.0),
        ({"conflicts": [{"aspect": "emotion", "modalities": ["audio", "text"], "decided_by": "text"}]},
         "plan.conflict_resolution", 1.0),
        ({"conflicts": [{"aspect": "emotion", "decided_by": "audio"}]}, "plan.conflict_resolution", 0.5),
        ({"conflicts": [{"aspect": "camera"}]}, "plan.conflict_resolution", 0.0),
        ({"no_conflicts": True}, "plan.conflict_resolution", 0.0),
        ({"delivery": "singing", "language": "en"}, "plan.audio_analysis", 0.5),
        ({"num_shots": [4, 9]}, "plan.shot_count_ok", 0.0),
    ],
)  # fmt: skip
def test_each_expectation_scores_what_the_plan_does(expect: dict[str, Any], metric: str, value: float) -> None:
    metrics, details = _measure(_plan(), **expect)
    assert metrics[metric] == pytest.approx(value)
    if metric != "plan.shot_count_ok" and metric != "plan.audio_analysis":
        assert [outcome["score"] for outcome in details["plan.expectations"]] != []


def test_instruction_adherence_averages_every_scored_request() -> None:
    metrics, details = _measure(
        _plan(),
        emotions=[{"label": "happy"}],  # 1
        camera=[{"movement": "push_in", "at": "start"}],  # 0
        actions=[{"text": "nod"}],  # 1
        speakers=[{"character_id": "host", "at": "end", "alone": True}],  # 0
    )
    assert metrics["plan.instruction_adherence"] == 0.5
    assert [o["kind"] for o in details["plan.expectations"] if o["score"] == 0] == ["camera", "speaker"]


def test_speaker_binding_checks_shots_against_who_is_heard() -> None:
    # shot 0 hears host and lists host (1.5 s right); shot 1 hears "friends" but lists nobody (1.0 s wrong);
    # shot 2 hears nobody (1.5 s right)
    metrics, details = _measure(_plan())
    assert metrics["plan.speaker_binding"] == pytest.approx(3.0 / 4.0)
    assert details["plan.speaker_mismatches"] == [{"shot": 1, "speakers": [], "heard": ["host"]}]


def test_negative_prompts_must_oppose_their_shot_and_never_ask_against_it() -> None:
    metrics, _ = _measure(_plan())
    assert metrics["plan.negative_opposition"] == 1.0  # "sad face" opposes happy in the shipped table
    assert metrics["plan.negative_violations"] == 0.0

    def against_itself(data: dict[str, Any]) -> None:
        data["storyline"]["shots"][0]["negative_prompt"] = "frown, nods"  # shot 0 asks for nods
        data["storyline"]["shots"][1]["negative_prompt"] = "blurry"  # opposes nothing

    metrics, details = _measure(_plan(against_itself), negative_must_not_contain=["frantic"])
    assert metrics["plan.negative_opposition"] == 0.0  # shot 0 contradicts itself, 1 opposes nothing, 2 is banned
    assert metrics["plan.negative_violations"] == 2.0
    assert details["plan.negative_violations"] == [
        {"shot": 0, "against_own": ["nods"], "banned": []},
        {"shot": 2, "against_own": [], "banned": ["frantic"]},
    ]


def test_text_relevance_is_whatever_the_scorer_says_and_none_without_one() -> None:
    opposites, _ = load_prompt_data("negative_director/opposites")
    plan = _plan()
    assert measure_plan(plan, Expectations(), opposites=opposites).metrics["plan.text_relevance"] is None
    scored = measure_plan(plan, Expectations(), opposites=opposites, text_relevance=lambda p: len(p.storyline.shots))
    assert scored.metrics["plan.text_relevance"] == 3
