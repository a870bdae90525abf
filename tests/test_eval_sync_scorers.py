"""SyncNet-style lip-sync scorers: known lags found by analytic nets, input shapes seen by probes, and loading.

The analytic test nets stand in for SyncNet's two halves: the video net reads how dark the middle of each mouth
crop is (the drawn mouth), the audio net how loud each video frame's MFCC frames are (coefficient 0 is the log
power), and both z-score their window, so the Euclidean distance between the two is smallest where they line up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from helpers import EXAMPLES, require_modules
from talking_faces import FPS, Box, one_character, speech_envelope, with_mouth, write_video, write_voice
from talking_faces import portrait as portrait_at

from codirector.cli import run as cli_run
from codirector.errors import ConfigError, InputFileError, UserError
from codirector.evals.extractors import Extractors
from codirector.evals.render_metrics import RenderSubject, measure_render
from codirector.evals.sync_scorers import (
    LipSyncScorer,
    SyncScore,
    TorchScriptSyncNet,
    load_sync_scorer,
    mouth_crop,
    syncnet_mfcc,
)
from codirector.media import load_audio

CROP = 48  # a small crop side keeps the tests fast; the nets do not care

# torch 2.9+ calls torch.jit.script and save deprecated; SyncNet-style files are TorchScript all the same
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.*deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def portrait() -> tuple[np.ndarray, Box]:
    return portrait_at()


def _save(module: Any, path: Path) -> str:
    import torch

    torch.jit.save(torch.jit.script(module), str(path))
    return str(path)


@pytest.fixture(scope="module")
def analytic_models(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The spec of the analytic pair (window 5, crops of CROP pixels)."""
    require_modules("torch")
    import torch

    class DarknessVideoTestNet(torch.nn.Module):
        """Per crop of the window: 1 - mean grey of the crop's middle, where the drawn mouth is; z-scored."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            side = x.shape[-1]
            dark = 1.0 - x[:, :, int(0.4 * side) : int(0.8 * side), int(0.3 * side) : int(0.7 * side)].mean(dim=(2, 3))
            centred = dark - dark.mean(dim=1, keepdim=True)
            return centred / (centred.pow(2).mean(dim=1, keepdim=True).sqrt() + 1e-6)

    class LoudnessAudioTestNet(torch.nn.Module):
        """Per video frame of the window: the mean of exp(c0 / 2) over its MFCC frames, an RMS; z-scored."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            loud = torch.exp(x[:, 0, 0, :] / 2.0).reshape(x.shape[0], 5, -1).mean(dim=2)
            centred = loud - loud.mean(dim=1, keepdim=True)
            return centred / (centred.pow(2).mean(dim=1, keepdim=True).sqrt() + 1e-6)

    folder = tmp_path_factory.mktemp("analytic")
    video = _save(DarknessVideoTestNet(), folder / "v.pt")
    audio = _save(LoudnessAudioTestNet(), folder / "a.pt")
    return f"syncnet-torchscript:{video},{audio}?size={CROP}"


@pytest.mark.parametrize("lag", [3, 0, -2])
def test_a_mouth_k_frames_after_the_sound_scores_best_at_lag_k(
    portrait: tuple[np.ndarray, Box], analytic_models: str, tmp_path: Path, lag: int
) -> None:
    image, box = portrait
    envelope = speech_envelope(200, seed=1)
    voice = write_voice(tmp_path / "voice.wav", envelope, seed=2)
    shifted = [envelope[min(len(envelope) - 1, max(0, i - lag))] for i in range(len(envelope))]
    frames = [with_mouth(image, box, opening) for opening in shifted]

    # the scorer alone, on crops of the known face box
    scorer = load_sync_scorer(analytic_models)
    assert isinstance(scorer, TorchScriptSyncNet)
    assert isinstance(scorer, LipSyncScorer)
    crops = np.stack([mouth_crop(frame, box, CROP) for frame in frames])  # type: ignore[misc]
    signal = load_audio(voice, 16_000)
    score = scorer.score(crops, np.ones(len(crops), bool), signal.samples, 16_000, FPS, 8)
    assert score is not None
    assert score.best_lag == lag, score.distance_by_lag
    assert score.confidence is not None
    assert score.confidence > 1.0  # measured 2.1-2.2: the right pairing stands out

    # the whole measurement, from the MP4 and the WAV
    video = write_video(tmp_path / "talk.mp4", frames)
    result = measure_render(RenderSubject(video, one_character(voice)), Extractors.from_specs(sync=analytic_models))
    metrics = result.metrics
    assert metrics["render.sync_offset_frames"] == lag
    assert metrics["render.sync_offset_abs_frames"] == abs(lag)
    # measured 0.90-0.93 from the MP4 against 0.78-0.79 on exact crops: the codec, and the tracked box
    assert metrics["render.sync_distance"] == pytest.approx(score.min_distance, rel=0.3)
    assert metrics["render.sync_confidence"] > 1.0  # measured 2.1
    assert metrics["render.lip_sync_offset_frames"] == lag  # the mouth-opening measure is still there, and agrees
    curve = result.details["render.sync"]["host"]
    assert curve["lags"] == list(range(-8, 9))
    assert curve["best_lag"] == lag
    assert result.details["render.extractors"]["sync"] == "syncnet-torchscript:v.pt,a.pt"


def test_a_mouth_that_ignores_the_sound_has_no_confidence(
    portrait: tuple[np.ndarray, Box], analytic_models: str
) -> None:
    image, box = portrait
    unrelated = speech_envelope(200, seed=7)
    crops = np.stack([mouth_crop(with_mouth(image, box, opening), box, CROP) for opening in unrelated])  # type: ignore[misc]
    loud = np.repeat(speech_envelope(200, seed=1), 16_000 // FPS).astype(np.float32) * 0.3
    noise = np.random.default_rng(2).standard_normal(len(loud)).astype(np.float32)
    score = load_sync_scorer(analytic_models).score(crops, np.ones(200, bool), loud * noise, 16_000, FPS, 8)
    assert score is not None
    assert score.confidence < 0.5  # measured 0.24, against 2.1 for the same mouth in sync
    assert score.min_distance > 2.0  # measured 2.6, against 0.8


def test_without_a_scorer_there_are_no_sync_metrics(portrait: tuple[np.ndarray, Box], tmp_path: Path) -> None:
    image, box = portrait
    voice = write_voice(tmp_path / "voice.wav", speech_envelope(40, seed=1), seed=2)
    video = write_video(tmp_path / "talk.mp4", [with_mouth(image, box, 0.5)] * 40)
    result = measure_render(RenderSubject(video, one_character(voice)))
    assert not [key for key in result.metrics if key.startswith("render.sync")]
    assert "render.sync" not in result.details
    assert Extractors.default().sync is None
    assert Extractors.from_specs().sync is None


@pytest.fixture(scope="module")
def probes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Nets that report their input (max value, channels or rows, side or columns) and nets that give zeros."""
    require_modules("torch")
    import torch

    class VideoProbe(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            size = torch.tensor([[float(x.shape[1]), float(x.shape[-1])]]).expand(x.shape[0], 2)
            return torch.cat([x.amax(dim=(1, 2, 3)).unsqueeze(1), size], dim=1)

    class AudioProbe(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tensor([[float(x.shape[1]), float(x.shape[2]), float(x.shape[3])]]).expand(x.shape[0], 3)

    class Zeros(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(x.shape[0], 3)

    torch.manual_seed(0)
    tiny_random_video_net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(5 * 16 * 16, 8))
    tiny_random_audio_net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(13 * 20, 8))
    folder = tmp_path_factory.mktemp("probes")
    return {
        name: _save(module, folder / f"{name}.pt")
        for name, module in [
            ("video_probe", VideoProbe()), ("audio_probe", AudioProbe()), ("zeros", Zeros()),
            ("tiny_random_video_net", tiny_random_video_net), ("tiny_random_audio_net", tiny_random_audio_net),
        ]
    }  # fmt: skip


def test_the_nets_get_syncnet_shaped_input(probes: dict[str, str]) -> None:
    white = np.full((60, 16, 16, 3), 255, np.uint8)
    seen = np.ones(60, bool)
    quiet = np.zeros(16_000 * 3, np.float32)
    # video: (N, window, S, S) scaled to 0..1 (a white crop's max is 1); distances are raw, not normalised
    video = TorchScriptSyncNet(probes["video_probe"], probes["zeros"], crop_size=16)
    score = video.score(white, seen, quiet, 16_000, 25.0, 4)
    assert score is not None
    assert score.distance_by_lag == pytest.approx([np.sqrt(1 + 5**2 + 16**2)] * 9)
    assert score.confidence == pytest.approx(0.0)
    # audio: (N, 1, 13, 4 x window) at 25 fps, round(100 / 30) = 3 MFCC frames a video frame at 30 fps; any rate
    audio = TorchScriptSyncNet(probes["zeros"], probes["audio_probe"], crop_size=16, window=3)
    for fps, rate, columns in [(25.0, 16_000, 12), (30.0, 44_100, 9)]:
        score = audio.score(white, seen, np.zeros(rate * 3, np.float32), rate, fps, 2)
        assert score is not None
        assert score.distance_by_lag == pytest.approx([np.sqrt(1 + 13**2 + columns**2)] * 5)


def test_a_tiny_random_pair_gives_a_distance_per_lag_and_none_when_the_face_is_missing(
    probes: dict[str, str],
) -> None:
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, (80, 16, 16, 3), dtype=np.uint8)
    audio = rng.standard_normal(16_000 * 4).astype(np.float32) * 0.1
    scorer = load_sync_scorer(f"syncnet-torchscript:{probes['tiny_random_video_net']},"
                              f"{probes['tiny_random_audio_net']}?size=16")  # fmt: skip
    assert scorer.crop_size == 16
    assert scorer.name == "syncnet-torchscript:tiny_random_video_net.pt,tiny_random_audio_net.pt"
    score = scorer.score(crops, np.ones(80, bool), audio, 16_000, 25.0, 6)
    assert score is not None
    assert score.lags == list(range(-6, 7))
    assert len(score.distance_by_lag) == 13
    assert all(d is not None and d > 0 for d in score.distance_by_lag)
    assert score.best_lag in score.lags
    again = scorer.score(crops, np.ones(80, bool), audio, 16_000, 25.0, 6)
    assert again == score
    seen = np.zeros(80, bool)
    seen[20:34] = True  # 14 frames: 10 windows of 5, under the 12 a curve needs
    assert scorer.score(crops, seen, audio, 16_000, 25.0, 6) is None
    seen[34:40] = True  # 20 frames: 16 windows
    assert scorer.score(crops, seen, audio, 16_000, 25.0, 6) is not None
    assert scorer.score(crops[:20], np.ones(20, bool), audio, 16_000, 25.0, 8) is None  # shorter than the lags


def test_sync_score_summary() -> None:
    score = SyncScore([-2, -1, 0, 1, 2], [3.0, 1.0, None, 1.0, 2.0])
    assert score.best_lag == -1  # ties go to the smallest |lag|, then the earlier
    assert score.min_distance == 1.0
    assert score.confidence == pytest.approx(1.5 - 1.0)  # median of 3, 1, 1, 2
    assert SyncScore([0, 1, 2], [2.0, 1.0, 1.0]).best_lag == 1
    empty = SyncScore([0], [None])
    assert (empty.best_lag, empty.min_distance, empty.confidence) == (None, None, None)


def test_syncnet_mfcc_frames_and_log_energy() -> None:
    t = np.arange(16_000) / 16_000
    tone = 1000 * np.sin(2 * np.pi * 440 * t)
    quiet, loud = syncnet_mfcc(tone), syncnet_mfcc(2 * tone)
    assert quiet.shape == (1 + int(np.ceil((16_000 - 400) / 160)), 13)  # 25 ms windows every 10 ms
    np.testing.assert_allclose(loud[:, 0] - quiet[:, 0], np.log(4.0), atol=1e-9)  # coefficient 0: log power
    np.testing.assert_allclose(loud[:, 1:], quiet[:, 1:], atol=1e-9)  # the rest is the spectrum's shape
    assert syncnet_mfcc(np.zeros(100), num_mfcc=5).shape == (1, 5)


class RecordingScorer:
    """A scorer that keeps what it was given and calls lag 1 the best."""

    name = "recording"
    crop_size = 32
    calls: list[dict[str, Any]] = []  # noqa: RUF012

    def score(self, mouth_crops, visible, audio, sample_rate, fps, max_lag):  # type: ignore[no-untyped-def]
        self.calls.append({"crops": mouth_crops, "visible": visible, "audio": audio, "rate": sample_rate,
                           "fps": fps, "max_lag": max_lag})  # fmt: skip
        lags = list(range(-max_lag, max_lag + 1))
        return SyncScore(lags, [abs(lag - 1) + 2.0 for lag in lags])


class NoCropSize:
    name = "no-crop-size"

    def score(self, *args: object) -> None:
        return None


def test_a_scorer_class_by_module_path_gets_the_mouth_crops(portrait: tuple[np.ndarray, Box], tmp_path: Path) -> None:
    image, box = portrait
    voice = write_voice(tmp_path / "voice.wav", speech_envelope(40, seed=1), seed=2)
    video = write_video(tmp_path / "talk.mp4", [with_mouth(image, box, 0.5)] * 40)
    RecordingScorer.calls.clear()
    extractors = Extractors.from_specs(sync=f"{__name__}:RecordingScorer")
    result = measure_render(RenderSubject(video, one_character(voice)), extractors, max_lag=3)
    (call,) = RecordingScorer.calls
    assert call["crops"].shape == (40, 32, 32, 3)
    assert call["crops"].dtype == np.uint8
    assert call["visible"].all()
    assert (call["rate"], call["fps"], call["max_lag"]) == (16_000, 25.0, 3)
    assert call["audio"].dtype == np.float32
    assert len(call["audio"]) == pytest.approx(40 / FPS * 16_000, abs=400)
    assert result.metrics["render.sync_offset_frames"] == 1
    assert result.metrics["render.sync_distance"] == 2.0
    assert result.metrics["render.sync_confidence"] == 2.0  # the median of 6, 5, 4, 3, 2, 3, 4 minus 2


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("bogus", "syncnet-torchscript:VIDEO.pt,AUDIO.pt"),
        ("syncnet-torchscript:video.pt", "syncnet-torchscript:/path/video.pt,/path/audio.pt"),
        ("syncnet-torchscript:v.pt,a.pt?size=big", "?size=112&window=5"),
        ("syncnet-torchscript:v.pt,a.pt?windows=5", "?size=112&window=5"),
        ("syncnet-torchscript:v.pt,a.pt?mfcc=40", "1 to 26 MFCCs"),
        ("no_such_module_xyz:Scorer", "cannot import no_such_module_xyz"),
        (f"{__name__}:NoCropSize", "crop_size"),
        ("codirector.evals.extractors:HogEmbedder", "score()"),
    ],
)
def test_a_bad_spec_is_a_config_error_that_names_it_and_the_forms(spec: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_sync_scorer(spec)
    assert spec in str(caught.value)
    assert says in str(caught.value)
    assert isinstance(caught.value, UserError)


def test_a_missing_weights_file_names_it_and_the_cli_option_reaches_the_scorer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(InputFileError, match=r"missing_video\.pt"):
        load_sync_scorer(f"syncnet-torchscript:{tmp_path / 'missing_video.pt'},{tmp_path / 'a.pt'}")
    monkeypatch.setenv("CODIRECTOR_HOME", str(tmp_path / "home"))
    suite = tmp_path / "suite.yaml"
    case = {"id": "greeting", "category": "english_speech", "job": str(EXAMPLES / "english_portrait" / "job.yaml")}
    suite.write_text(yaml.safe_dump({"kind": "eval_suite", "name": "mini", "render": True, "cases": [case]}))
    out = str(tmp_path / "run")
    assert cli_run(["eval", "run", str(suite), "--sync-scorer", "bogus", "-o", out]) == 2
    assert "syncnet-torchscript:" in capsys.readouterr().err  # checked before any case is planned
    missing = f"syncnet-torchscript:{tmp_path / 'gone.pt'},{tmp_path / 'a.pt'}"
    assert cli_run(["eval", "run", str(suite), "--sync-scorer", missing, "-o", out]) == 2
    assert "gone.pt" in capsys.readouterr().err
    assert not (tmp_path / "run" / "results.jsonl").exists()
