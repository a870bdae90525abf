"""Render metrics on videos whose right answer is known, and on a real preview render of the dialogue example.

The constructed videos are the portrait of examples/english_portrait with a dark mouth drawn to a known audio
envelope (shifted by a known number of frames), tinted, blurred, cut or flickering on purpose; the WAV files are
noise shaped by the same envelopes.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import EXAMPLES
from PIL import Image
from talking_faces import (
    FPS,
    REFERENCE,
    SIDE,
    Box,
    one_character,
    speech_envelope,
    with_mouth,
    write_video,
    write_voice,
)
from talking_faces import portrait as portrait_at

from codirector.cli import run as cli_run
from codirector.errors import MediaError
from codirector.evals.extractors import Extractors, HogEmbedder
from codirector.evals.render_metrics import CharacterTrack, RenderSubject, measure_render
from codirector.evals.signals import (
    best_lag,
    frame_envelope,
    lagged_correlation,
    pearson,
    slope_per_minute,
    smooth,
)
from codirector.media import load_image


@pytest.fixture(scope="module")
def portrait() -> tuple[np.ndarray, Box]:
    """The reference portrait at SIDE x SIDE and its face box."""
    return portrait_at()


# ------------------------------------------------------------------------------------------------ signals


def test_frame_envelope_is_the_rms_of_each_frames_samples() -> None:
    rate = 1000
    # 40 samples a frame at 25 fps, each frame centred on its time: frame 0 reads [0, 20), frame 1 [20, 60), ...
    samples = np.concatenate([np.full(20, 0.5), np.zeros(40), -np.full(40, 0.2)])
    np.testing.assert_allclose(frame_envelope(samples, rate, 25, 4), [0.5, 0.0, 0.2, 0.0], atol=1e-12)
    # a sound that starts half a frame before frame 2's time is frame 2's, not frame 1's
    onset = np.concatenate([np.zeros(60), np.ones(40)])
    np.testing.assert_allclose(frame_envelope(onset, rate, 25, 3), [0.0, 0.0, 1.0], atol=1e-12)
    # 44.1 kHz over 24000/1001 fps does not divide: frames still tile the samples exactly, without drift
    steady = frame_envelope(np.ones(44_100 * 2), 44_100, 24000 / 1001, 47)
    np.testing.assert_allclose(steady, 1.0)


def test_lagged_correlation_finds_a_known_lag_and_its_sign() -> None:
    leader = smooth(np.random.default_rng(0).uniform(size=300))
    follower = np.roll(leader, 4)  # follower[t] = leader[t - 4]: it comes 4 samples later
    follower[:4] = np.nan  # and the frames it has no value for do not count
    lags, values = lagged_correlation(follower, leader, 8)
    assert best_lag(lags, values) == (4, pytest.approx(1.0))
    assert best_lag(*lagged_correlation(leader, follower, 8)) == (-4, pytest.approx(1.0))
    assert pearson(np.ones(50), leader[:50]) is None
    assert pearson(leader[:5], leader[:5]) is None  # too few pairs


def test_slope_per_minute() -> None:
    assert slope_per_minute([0, 30, 60], [1.0, 1.5, 2.0]) == pytest.approx(1.0)
    assert slope_per_minute([10], [3.0]) is None


# ------------------------------------------------------------------------------------------------ lip sync


@pytest.mark.parametrize("lag", [3, 0, -2])
def test_a_mouth_that_follows_the_audio_k_frames_late_reports_lag_k(
    portrait: tuple[np.ndarray, Box], tmp_path: Path, lag: int
) -> None:
    image, box = portrait
    envelope = speech_envelope(200, seed=1)
    voice = write_voice(tmp_path / "voice.wav", envelope, seed=2)
    shifted = [envelope[min(len(envelope) - 1, max(0, i - lag))] for i in range(len(envelope))]
    video = write_video(tmp_path / "talk.mp4", (with_mouth(image, box, opening) for opening in shifted))
    result = measure_render(RenderSubject(video, one_character(voice)))
    assert result.metrics["render.lip_sync_offset_frames"] == lag
    assert result.metrics["render.lip_sync_corr"] > 0.9  # measured 0.97
    assert result.metrics["render.right_mouth"] is None  # one character: nobody else's mouth to mix up
    per_character = result.details["render.lip_sync"]["host"]
    assert per_character["best_lag"] == lag
    assert result.details["render.lip_sync"]["lags"][int(np.argmax(per_character["corr_by_lag"]))] == lag


def test_a_mouth_that_ignores_the_audio_has_a_low_correlation(portrait: tuple[np.ndarray, Box], tmp_path: Path) -> None:
    image, box = portrait
    voice = write_voice(tmp_path / "voice.wav", speech_envelope(200, seed=1), seed=2)
    unrelated = speech_envelope(200, seed=7)
    video = write_video(tmp_path / "talk.mp4", (with_mouth(image, box, opening) for opening in unrelated))
    result = measure_render(RenderSubject(video, one_character(voice)))
    assert abs(result.metrics["render.lip_sync_corr"]) < 0.35  # measured 0.15, the best of 17 lags of noise


# ------------------------------------------------------------------------------------------------ drift


def _drift(
    portrait: tuple[np.ndarray, Box], tmp_path: Path, name: str, change: Callable[[np.ndarray, float], np.ndarray]
) -> dict:  # type: ignore[type-arg]
    """Measure a 6 s video of the portrait changed by `change(image, share of the way through)`."""
    image, _ = portrait
    count = 6 * FPS
    video = write_video(tmp_path / f"{name}.mp4", (change(image, i / (count - 1)) for i in range(count)))
    result = measure_render(RenderSubject(video, one_character()))
    return {**result.metrics, **result.details}


def test_a_colour_ramp_shows_a_rising_delta_e_curve(portrait: tuple[np.ndarray, Box], tmp_path: Path) -> None:
    orange = np.array([255, 140, 0], np.float32)
    ramp = _drift(portrait, tmp_path, "ramp", lambda image, share: (image * (1 - 0.35 * share) + orange * 0.35 * share)
                  .astype(np.uint8))  # fmt: skip
    steady = _drift(portrait, tmp_path, "steady", lambda image, share: image)
    curve = ramp["render.color_curve"]["delta_e"]
    assert len(curve) == 6  # one point a second
    assert all(later > earlier for earlier, later in itertools.pairwise(curve)), curve
    assert ramp["render.color_drift_de"] > 15  # measured 24.6 (L*a*b* units)
    assert steady["render.color_drift_de"] < 2  # measured 0.5: the codec and the resize only
    assert ramp["render.color_drift_per_min"] > 100 * max(1.0, abs(steady["render.color_drift_per_min"]))
    # a tint is not a different face
    assert ramp["render.identity_similarity"] > 0.9
    assert abs(ramp["render.identity_drift_per_min"]) < 0.5


def test_a_face_that_warps_and_blurs_drifts_away_from_its_identity(
    portrait: tuple[np.ndarray, Box], tmp_path: Path
) -> None:
    rows, columns = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)

    def degrade(image: np.ndarray, share: float) -> np.ndarray:
        warped = cv2.remap(
            image, columns + 8 * share * np.sin(rows / 6), rows + 8 * share * np.cos(columns / 7),
            cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT,
        )  # fmt: skip
        return cv2.GaussianBlur(warped, (0, 0), 0.1 + 2.5 * share)

    drifting = _drift(portrait, tmp_path, "drifting", degrade)
    steady = _drift(portrait, tmp_path, "steady", lambda image, share: image)
    curve = drifting["render.identity_curve"]["similarity"]
    assert curve == sorted(curve, reverse=True), curve  # measured 0.92 falling to 0.04
    assert curve[0] - curve[-1] > 0.5
    assert drifting["render.identity_drift_per_min"] > 5  # measured 11 per minute
    assert abs(steady["render.identity_drift_per_min"]) < 0.3  # measured -0.03
    assert steady["render.identity_similarity"] > 0.9  # measured 0.98


# ------------------------------------------------------------------------------------------------ seams, flicker


def _panning(count: int, jump_at: int | None = None) -> list[np.ndarray]:
    """A camera panning 1 px a frame across the portrait; from `jump_at` on, 24 px further along."""
    wide = cv2.resize(load_image(REFERENCE), (400, 360), interpolation=cv2.INTER_AREA)
    offsets = [i + (24 if jump_at is not None and i >= jump_at else 0) for i in range(count)]
    return [np.ascontiguousarray(wide[20:340, x : x + SIDE]) for x in offsets]


def test_a_visible_jump_at_a_seam_stands_out_and_a_smooth_seam_readsone_character(tmp_path: Path) -> None:
    smooth_video = write_video(tmp_path / "smooth.mp4", _panning(40))
    jump_video = write_video(tmp_path / "jump.mp4", _panning(40, jump_at=20))
    smooth_seam = measure_render(RenderSubject(smooth_video, one_character(), seam_frames=(20,)))
    jump = measure_render(
        RenderSubject(jump_video, one_character(), seam_frames=(20, 400))
    )  # 400: past the end, ignored
    assert jump.details["render.seams"] == [{"frame": 20, "jump": pytest.approx(jump.metrics["render.seam_jump"])}]
    assert jump.metrics["render.seam_jump"] > 5  # measured 11.9
    assert 0.7 < smooth_seam.metrics["render.seam_jump"] < 1.4  # measured 1.0
    assert smooth_seam.metrics["render.seam_jump_mean"] == smooth_seam.metrics["render.seam_jump"]
    assert measure_render(RenderSubject(smooth_video, one_character())).metrics["render.seam_jump"] is None


def test_alternating_brightness_flickers_and_a_steady_pan_does_not(
    portrait: tuple[np.ndarray, Box], tmp_path: Path
) -> None:
    image, _ = portrait
    delta = 6
    alternating = (np.clip(image.astype(np.int16) + (delta if i % 2 else -delta), 0, 255).astype(np.uint8)
                   for i in range(40))  # fmt: skip
    flickering = measure_render(RenderSubject(write_video(tmp_path / "flicker.mp4", alternating), one_character()))
    panning = measure_render(RenderSubject(write_video(tmp_path / "pan.mp4", _panning(40)), one_character()))
    still = measure_render(RenderSubject(write_video(tmp_path / "still.mp4", [image] * 40), one_character()))
    # ±delta every other frame gives a second difference of 4 delta (24 grey levels) wherever it is not clipped
    assert flickering.metrics["render.flicker"] == pytest.approx(4 * delta, rel=0.15)  # measured 22
    assert panning.metrics["render.flicker"] < 2  # measured 1.4
    assert still.metrics["render.flicker"] < 0.2  # measured 0.02
    assert flickering.metrics["render.flicker"] > 10 * panning.metrics["render.flicker"]


# ------------------------------------------------------------------------------------------------ right mouth


@pytest.fixture(scope="module")
def twins(portrait: tuple[np.ndarray, Box], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two copies of the portrait side by side (the scene), each mouth following its own voice."""
    image, box = portrait
    folder = tmp_path_factory.mktemp("twins")
    scene = np.concatenate([image, image], axis=1)
    Image.fromarray(scene).save(folder / "scene.png")
    left, right = speech_envelope(200, seed=11), speech_envelope(200, seed=12)
    right_box = (box[0] + SIDE, box[1], box[2] + SIDE, box[3])
    frames = (with_mouth(with_mouth(scene, box, a), right_box, b) for a, b in zip(left, right, strict=True))
    return {
        "scene": folder / "scene.png",
        "video": write_video(folder / "twins.mp4", frames),
        "left": write_voice(folder / "left.wav", left, seed=3),
        "right": write_voice(folder / "right.wav", right, seed=4),
    }


@pytest.mark.parametrize(("swapped", "expected"), [(False, 1.0), (True, 0.0)])
def test_each_mouth_is_matched_to_its_own_voice(twins: dict[str, Path], swapped: bool, expected: float) -> None:
    voices = (twins["right"], twins["left"]) if swapped else (twins["left"], twins["right"])
    characters = (
        CharacterTrack("left", voices[0], twins["scene"], (0.0, 0.0, 0.5, 1.0)),
        CharacterTrack("right", voices[1], twins["scene"], (0.5, 0.0, 1.0, 1.0)),
    )
    result = measure_render(RenderSubject(twins["video"], characters))
    assert result.metrics["render.right_mouth"] == expected
    margin = result.metrics["render.right_mouth_margin"]
    assert margin > 0.5 if not swapped else margin < -0.5  # measured ±0.90
    cross = result.details["render.right_mouth"]
    assert set(cross) == {"left", "right"}
    assert set(cross["left"]) == {"left", "right"}
    if not swapped:
        assert result.metrics["render.lip_sync_corr"] > 0.9  # measured 0.97
        assert result.metrics["render.lip_sync_offset_frames"] == 0


# ------------------------------------------------------------------------------------------------ the whole


def test_the_measurement_is_json_and_honours_max_frames(portrait: tuple[np.ndarray, Box], tmp_path: Path) -> None:
    image, box = portrait
    envelope = speech_envelope(100, seed=1)
    voice = write_voice(tmp_path / "voice.wav", envelope, seed=2)
    video = write_video(tmp_path / "talk.mp4", (with_mouth(image, box, opening) for opening in envelope))
    result = measure_render(RenderSubject(video, one_character(voice), seam_frames=(50,)), max_frames=60)
    assert result.metrics["render.num_frames_measured"] == 60
    assert result.metrics["render.duration_s"] == pytest.approx(60 / FPS)
    json.dumps(result.details, allow_nan=False)  # plain floats, lists and dicts only
    assert all(value is None or isinstance(value, float) for value in result.metrics.values())
    assert result.details["render.extractors"] == {"mouth": "mouth-darkness", "identity": "hog"}
    custom = Extractors(mouth=Extractors.default().mouth, identity=HogEmbedder())
    assert (
        measure_render(RenderSubject(video, one_character(voice)), custom, max_frames=30).metrics[
            "render.num_frames_measured"
        ]
        == 30
    )


def test_a_missing_video_is_a_media_error(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"no\.mp4"):
        measure_render(RenderSubject(tmp_path / "no.mp4", one_character()))


def test_the_dialogue_preview_moves_each_mouth_with_its_own_voice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODIRECTOR_HOME", str(tmp_path / "home"))
    assert cli_run(["run", str(EXAMPLES / "dialogue" / "job.yaml"), "-o", str(tmp_path / "dialogue.mp4")]) == 0
    plan = json.loads((tmp_path / "dialogue.plan.json").read_text())["render_plan"]
    characters = tuple(
        CharacterTrack(c["id"], Path(c["audio"]), Path(plan["scene_image"]), tuple(c["scene_box_xyxy_norm"]))
        for c in plan["characters"]
    )
    seams = tuple(round(anchor * plan["fps"]) for anchor in plan["anchors_s"][1:-1])
    started = time.perf_counter()
    result = measure_render(RenderSubject(tmp_path / "dialogue.mp4", characters, seams))
    took = time.perf_counter() - started
    metrics, lip = result.metrics, result.details["render.lip_sync"]
    # measured: host r 0.85 and guest (a profile) 0.58, both with the mouth 1 frame after the sound; each mouth
    # against the other's voice -0.14 and -0.27
    assert metrics["render.right_mouth"] == 1.0, result.details["render.right_mouth"]
    assert metrics["render.right_mouth_margin"] > 0.5
    assert metrics["render.lip_sync_corr"] > 0.55
    assert lip["host"]["r"] > 0.7
    assert lip["guest"]["r"] > 0.4
    assert all(abs(lip[c.id]["best_lag"]) <= 2 for c in characters)
    assert metrics["render.identity_similarity"] > 0.6  # measured 0.75
    assert [row["frame"] for row in result.details["render.seams"]] == list(seams)
    assert not math.isnan(metrics["render.flicker"])
    assert took < 30  # 3-5 s here for 16.5 s of 854x480
