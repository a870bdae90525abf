"""Cross-field rules: each broken rule is rejected and located at the field that breaks it."""

from __future__ import annotations

from typing import Any

import pytest
from samples import sample

from codirector.errors import SchemaValidationError
from codirector.schemas import OutputSettings, validate_data


def issues_of(kind: str, data: dict[str, Any]) -> list[str]:
    with pytest.raises(SchemaValidationError) as caught:
        validate_data(data, kind)
    return [str(issue) for issue in caught.value.issues]


# --- storyline timeline -------------------------------------------------------------------------------------


def test_gap_between_shots_is_rejected_at_the_later_shot() -> None:
    data = sample("storyline")
    data["shots"][1]["start_s"] = 1.6  # previous shot ends at 1.5; 0.1 s > one frame (0.04 s)
    assert issues_of("storyline", data) == [
        "$.shots[1].start_s: gap of 0.100 s after shots[0] (allowed: one frame, 0.040 s)"
    ]


def test_overlap_between_shots_is_rejected() -> None:
    data = sample("storyline")
    data["shots"][2]["start_s"] = 2.3  # previous ends at 2.5
    (issue,) = issues_of("storyline", data)
    assert issue.startswith("$.shots[2].start_s: overlaps shots[1] by 0.200 s")


def test_gap_within_one_frame_is_accepted() -> None:
    data = sample("storyline")
    data["shots"][1]["start_s"] = 1.53  # 0.03 s < 1/25 s
    validate_data(data, "storyline")


def test_timeline_must_start_at_zero_and_reach_the_end() -> None:
    data = sample("storyline")
    data["shots"][0]["start_s"] = 0.5
    data["shots"][-1]["end_s"] = 3.5
    issues = issues_of("storyline", data)
    assert any(i.startswith("$.shots[0].start_s: starts at 0.500 s") for i in issues)
    assert any(i.startswith("$.shots[2].end_s: ends at 3.500 s, short of the audio") for i in issues)


def test_shot_past_the_audio_is_rejected() -> None:
    data = sample("storyline")
    data["shots"][-1]["end_s"] = 5.0
    assert "$.shots[2].end_s: ends at 5.000 s, past the audio's 4.000 s" in issues_of("storyline", data)


def test_empty_shot_is_rejected() -> None:
    data = sample("storyline")
    data["shots"][1]["end_s"] = 1.5  # starts at 1.5 too
    assert any("not after its start" in i for i in issues_of("storyline", data))


def test_unknown_speaker_is_rejected() -> None:
    data = sample("storyline")
    data["shots"][2]["speakers"] = ["host", "ghost"]
    assert issues_of("storyline", data) == ["$.shots[2].speakers[1]: unknown character 'ghost'"]


def test_speaker_without_audio_is_rejected() -> None:
    data = sample("storyline")
    data["shots"][0]["speakers"] = ["cat"]
    assert issues_of("storyline", data) == [
        "$.shots[0].speakers[0]: character 'cat' has no audio track, so cannot speak"
    ]


def test_gaze_at_unknown_character_is_rejected() -> None:
    data = sample("storyline")
    data["shots"][0]["gaze"] = {"target": "character", "character_id": "nobody"}
    assert issues_of("storyline", data) == ["$.shots[0].gaze.character_id: unknown character 'nobody'"]


@pytest.mark.parametrize(
    ("camera", "message"),
    [
        ({"movement": "pan"}, "pan needs direction 'left' or 'right'"),
        ({"movement": "tilt", "direction": "left"}, "tilt needs direction 'up' or 'down'"),
        ({"movement": "push_in", "direction": "up"}, "push_in takes no direction"),
    ],
)
def test_camera_direction_must_fit_the_movement(camera: dict[str, str], message: str) -> None:
    data = sample("storyline")
    data["shots"][0]["camera"] = camera
    assert issues_of("storyline", data) == [f"$.shots[0].camera.direction: {message}"]


def test_camera_movement_outside_the_vocabulary_is_rejected() -> None:
    data = sample("storyline")
    data["shots"][0]["camera"] = {"movement": "dolly_zoom"}
    (issue,) = issues_of("storyline", data)
    assert issue.startswith("$.shots[0].camera.movement: 'dolly_zoom' is not one of")


def test_emotion_intensity_is_one_to_three() -> None:
    data = sample("storyline")
    data["shots"][0]["emotion"]["intensity"] = 4
    assert issues_of("storyline", data) == ["$.shots[0].emotion.intensity: 4 is greater than the maximum of 3"]


def test_unknown_field_is_rejected() -> None:
    data = sample("storyline")
    data["shots"][0]["mood"] = "sunny"
    (issue,) = issues_of("storyline", data)
    assert issue.startswith("$.shots[0]: Additional properties are not allowed ('mood' was unexpected)")


# --- render plan ---------------------------------------------------------------------------------------------


def test_anchor_times_must_increase() -> None:
    data = sample("render_plan")
    data["anchors_s"] = [0.0, 2.5, 1.5, 4.0]
    issues = issues_of("render_plan", data)
    assert "$.anchors_s[2]: anchor times must be strictly increasing" in issues


def test_segment_boundaries_must_be_anchor_times() -> None:
    data = sample("render_plan")
    data["anchors_s"] = [0.0, 1.5, 4.0]
    assert issues_of("render_plan", data) == [
        "$.segments[1].end_s: 2.500 s is not an anchor time",
        "$.segments[2].start_s: 2.500 s is not an anchor time",
    ]


def test_anchors_span_the_whole_video() -> None:
    data = sample("render_plan")
    data["anchors_s"] = [0.5, 1.5, 2.5, 3.0]
    data["segments"][0]["start_s"], data["segments"][2]["end_s"] = 0.0, 4.0
    issues = issues_of("render_plan", data)
    assert "$.anchors_s[0]: the first anchor must be at 0 s" in issues
    assert "$.anchors_s[3]: the last anchor must be at the end, 4.0 s" in issues


def test_segment_speaker_needs_bound_audio() -> None:
    data = sample("render_plan")
    data["segments"][1]["speakers"] = ["cat"]
    assert issues_of("render_plan", data) == [
        "$.segments[1].speakers[0]: character 'cat' has no audio track, so cannot speak"
    ]


def test_low_resolution_cannot_exceed_high() -> None:
    data = sample("render_plan")
    data["stages"]["low_res"] = {"width": 1280, "height": 720}
    assert issues_of("render_plan", data) == [
        "$.stages.low_res: the low resolution must not exceed the high resolution"
    ]


def test_odd_frame_size_is_rejected() -> None:
    data = sample("render_plan")
    data["output"]["width"] = 853
    (issue,) = issues_of("render_plan", data)
    assert issue.startswith("$.output.width: 853 is not a multiple of 2")


# --- job -----------------------------------------------------------------------------------------------------


def test_duplicate_character_ids_are_rejected() -> None:
    data = sample("job")
    data["characters"][1]["id"] = "host"
    assert issues_of("job", data) == ["$.characters[1]: character id 'host' appears more than once"]


def test_scene_box_needs_a_scene_image() -> None:
    data = sample("job")
    del data["scene_image"]
    assert issues_of("job", data) == [
        "$.characters[0].scene_box_xyxy_norm: a scene box needs a scene_image at the top of the job"
    ]


def test_character_needs_a_picture() -> None:
    data = sample("job")
    del data["characters"][1]["reference_image"]
    assert issues_of("job", data) == [
        "$.characters[1]: character 'guest' needs a reference_image or a scene_box_xyxy_norm"
    ]


def test_job_needs_some_audio() -> None:
    data = sample("job")
    for character in data["characters"]:
        character.pop("audio", None)
    assert issues_of("job", data) == ["$.characters: at least one character needs an audio track: the video follows it"]


def test_box_must_be_ordered_and_normalized() -> None:
    data = sample("job")
    data["characters"][0]["scene_box_xyxy_norm"] = [0.6, 0.1, 0.5, 1.2]
    (issue,) = issues_of("job", data)
    assert issue.startswith("$.characters[0].scene_box_xyxy_norm: box [0.6, 0.1, 0.5, 1.2] must satisfy")


@pytest.mark.parametrize(("fps", "ok"), [(48, True), (49, False), (0, False)])
def test_fps_is_capped_at_48(fps: int, ok: bool) -> None:
    data = sample("job")
    data["output"]["fps"] = fps
    if ok:
        validate_data(data, "job")
    else:
        assert issues_of("job", data)[0].startswith("$.output.fps:")


def test_provider_references_are_checked() -> None:
    data = sample("job")
    data["director"]["providers"] = {"audio": "OpenAI GPT"}
    (issue,) = issues_of("job", data)
    assert issue.startswith("$.director.providers.audio:")


def test_provider_for_falls_back_to_the_default() -> None:
    job = validate_data(sample("job"), "job")
    assert job.director.provider_for("visual") == "openai:gpt-4o-mini"
    assert job.director.provider_for("audio") == "offline"


@pytest.mark.parametrize(
    ("resolution", "aspect", "source", "size"),
    [
        ("480p", "16:9", None, (854, 480)),
        ("720p", "16:9", None, (1280, 720)),
        ("1080p", "9:16", None, (1080, 1920)),
        ("480p", "1:1", None, (480, 480)),
        ("720p", "4:3", None, (960, 720)),
        ("480p", "auto", 512 / 512, (480, 480)),
        ("480p", "auto", 1024 / 512, (854, 480)),  # 2:1 snaps to 16:9
        ("720p", "auto", 320 / 384, (720, 960)),  # 0.83 snaps to 3:4
        ("720p", "auto", None, (1280, 720)),
    ],
)
def test_frame_size_presets(resolution: str, aspect: str, source: float | None, size: tuple[int, int]) -> None:
    assert OutputSettings(resolution=resolution, aspect=aspect).frame_size(source) == size


# --- reports and reasoning -----------------------------------------------------------------------------------


def test_words_past_the_audio_are_rejected() -> None:
    data = sample("audio_report")
    data["words"][2]["end_s"] = 4.5
    assert issues_of("audio_report", data) == ["$.words[2].end_s: ends at 4.500 s, past the audio's 4.000 s"]


def test_utterance_word_indices_must_exist() -> None:
    data = sample("audio_report")
    data["utterances"][1]["last_word"] = 7
    assert issues_of("audio_report", data) == ["$.utterances[1].last_word: word 7 does not exist"]


def test_words_must_be_in_time_order() -> None:
    data = sample("audio_report")
    data["words"][1]["start_s"], data["words"][1]["end_s"] = 0.1, 0.15
    assert issues_of("audio_report", data) == [
        "$.words[1].start_s: starts at 0.100 s, before the previous one (0.200 s)"
    ]


def test_resolution_must_name_an_existing_conflict() -> None:
    data = sample("co_reasoning")
    data["resolutions"][0]["conflict_id"] = "c9"
    assert issues_of("co_reasoning", data) == ["$.resolutions[0].conflict_id: no conflict has id 'c9'"]


def test_resolution_is_decided_by_a_party_to_the_conflict() -> None:
    data = sample("co_reasoning")
    data["resolutions"][0]["decided_by"] = "visual"
    assert issues_of("co_reasoning", data) == ["$.resolutions[0].decided_by: visual is not a party to conflict 'c1'"]


def test_conflict_must_cite_existing_findings() -> None:
    data = sample("co_reasoning")
    data["conflicts"][0]["finding_ids"] = ["a1", "zz"]
    assert issues_of("co_reasoning", data) == ["$.conflicts[0].finding_ids[1]: no finding has id 'zz'"]


def test_open_conflicts_are_those_without_resolution() -> None:
    data = sample("co_reasoning")
    data["resolutions"] = []
    record = validate_data(data, "co_reasoning")
    assert [c.id for c in record.open_conflicts] == ["c1"]


# --- manifest ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/abs/out.mp4", "../escape.mp4", "a\\b.mp4"])
def test_artifact_paths_stay_inside_the_run_directory(path: str) -> None:
    data = sample("render_manifest")
    data["stages"][0]["artifacts"][0]["path"] = path
    (issue,) = issues_of("render_manifest", data)
    assert issue.startswith("$.stages[0].artifacts[0].path:")


def test_artifact_hash_must_be_sha256() -> None:
    data = sample("render_manifest")
    data["output"]["sha256"] = "abc"
    (issue,) = issues_of("render_manifest", data)
    assert issue.startswith("$.output.sha256: 'abc' does not match")


def test_stage_cannot_finish_before_it_starts() -> None:
    data = sample("render_manifest")
    data["stages"][0]["finished_at"] = "2026-11-22T09:59:59Z"
    assert issues_of("render_manifest", data) == ["$.stages[0].finished_at: a stage cannot finish before it starts"]


def test_parallel_workers_need_a_parallel_executor() -> None:
    data = sample("job")
    data["render"] = {"executor": "local", "num_workers": 4}
    (issue,) = issues_of("job", data)
    assert issue.startswith("$.render.num_workers: the local executor runs one task at a time")
    data["render"] = {"executor": "process", "num_workers": 4}
    validate_data(data, "job")
