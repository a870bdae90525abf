"""The `dit` backend's support modules: audio encoders, the negative frame, few-step schedules and guidance.

Whisper and wav2vec 2.0 are tiny random models saved to a temporary folder and loaded back through the encoders,
so the real transformers loading path runs offline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import require_modules

require_modules("torch", "transformers", "diffusers")

import cv2  # noqa: E402
import torch  # noqa: E402

from codirector.errors import ConfigError  # noqa: E402
from codirector.generator.backends.dit.audio_features import (  # noqa: E402
    AudioEncoder,
    LogMelEncoder,
    Wav2Vec2Encoder,
    WhisperEncoder,
    make_audio_encoder,
)
from codirector.generator.backends.dit.degrade import (  # noqa: E402
    degrade_reference,
    negative_frame_tensor,
    sample_degradation,
)
from codirector.generator.backends.dit.schedule import (  # noqa: E402
    combine_guidance,
    make_scheduler,
    required_branches,
    sigma_schedule,
)

SAMPLE_RATE = 16_000


def _noise(duration_s: float, seed: int = 0, level: float = 0.1, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(round(duration_s * sample_rate)) * level).astype(np.float32)


@pytest.fixture(scope="module")
def whisper_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    torch.manual_seed(0)
    config = WhisperConfig(
        d_model=16, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=32, decoder_layers=1,
        decoder_attention_heads=2, decoder_ffn_dim=32, num_mel_bins=80, max_source_positions=1500,
        max_target_positions=32, vocab_size=100, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        decoder_start_token_id=1,
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("whisper")
    WhisperModel(config).save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def wav2vec2_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(0)
    config = Wav2Vec2Config(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, conv_dim=(16,) * 7,
        vocab_size=32,
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("wav2vec2")
    Wav2Vec2Model(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor().save_pretrained(folder)
    return folder


# --- audio features ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fps", "duration_s", "num_frames"), [(25.0, 2.0, 50), (30.0, 1.0, 30), (24.0, 0.5, 40)])
def test_logmel_has_one_row_per_video_frame(fps: float, duration_s: float, num_frames: int) -> None:
    encoder = LogMelEncoder(n_mels=64)
    features = encoder.encode(_noise(duration_s), SAMPLE_RATE, fps, num_frames)
    assert isinstance(encoder, AudioEncoder)
    assert features.shape == (num_frames, 64) == (num_frames, encoder.feature_dim)
    assert features.dtype == torch.float32
    assert torch.isfinite(features).all()


def test_logmel_rows_follow_a_loud_burst_in_time() -> None:
    samples = _noise(4.0, level=0.001)
    burst_start_s = 2.0
    burst = slice(round(burst_start_s * SAMPLE_RATE), round((burst_start_s + 0.2) * SAMPLE_RATE))
    samples[burst] += _noise(0.2, seed=1, level=0.5)
    fps = 25.0
    energy = make_audio_encoder("logmel").encode(samples, SAMPLE_RATE, fps, 100).mean(dim=1)
    in_burst = [round(burst_start_s * fps) + k for k in (1, 2, 3)]  # frames at 2.04, 2.08, 2.12 s
    far = list(range(10, 40)) + list(range(70, 100))
    assert energy[in_burst].min() > energy[far].max() + 5.0  # log-energy, i.e. far more than e^5 louder


def test_logmel_spec_sets_the_number_of_bands_and_resamples_other_rates() -> None:
    encoder = make_audio_encoder("logmel:24")
    assert encoder.feature_dim == 24
    assert encoder.encode(_noise(1.0, sample_rate=44_100), 44_100, 25.0, 25).shape == (25, 24)


def test_whisper_from_a_local_folder_gives_frame_aligned_hidden_states(whisper_folder: Path) -> None:
    encoder = make_audio_encoder(f"whisper:{whisper_folder}")
    assert isinstance(encoder, WhisperEncoder)
    features = encoder.encode(_noise(2.0), SAMPLE_RATE, 25.0, 50)
    assert features.shape == (50, 16)
    assert torch.isfinite(features).all()
    # Different audio, different features: the encoder really ran on the waveform.
    assert not torch.allclose(features, encoder.encode(_noise(2.0, seed=5), SAMPLE_RATE, 25.0, 50))


def test_whisper_chunks_long_audio_into_30_s_windows(whisper_folder: Path) -> None:
    encoder = WhisperEncoder(whisper_folder)
    samples = _noise(65.0)
    fps = 25.0
    features = encoder.encode(samples, SAMPLE_RATE, fps, 65 * 25)
    assert features.shape == (65 * 25, 16)
    # The second 30 s window, encoded alone, gives the same rows as frames 30 s to 60 s of the long encoding.
    second = encoder.encode(samples[30 * SAMPLE_RATE : 60 * SAMPLE_RATE], SAMPLE_RATE, fps, 30 * 25)
    torch.testing.assert_close(features[30 * 25 : 60 * 25], second, rtol=1e-4, atol=1e-5)
    # The first window is encoded without the rest: its rows match a 30 s clip's.
    first = encoder.encode(samples[: 30 * SAMPLE_RATE], SAMPLE_RATE, fps, 30 * 25)
    torch.testing.assert_close(features[: 30 * 25], first, rtol=1e-4, atol=1e-5)


def test_whisper_layers_concatenate_or_average(whisper_folder: Path) -> None:
    concat = WhisperEncoder(whisper_folder, layers=(0, 1, 2), layer_reduce="concat")
    mean = WhisperEncoder(whisper_folder, layers=(1, 2))
    assert concat.feature_dim == 48
    assert concat.encode(_noise(1.0), SAMPLE_RATE, 25.0, 25).shape == (25, 48)
    assert mean.encode(_noise(1.0), SAMPLE_RATE, 25.0, 25).shape == (25, 16)
    with pytest.raises(ConfigError, match="layers"):
        WhisperEncoder(whisper_folder, layers=(7,))


def test_wav2vec2_from_a_local_folder_gives_frame_aligned_hidden_states(wav2vec2_folder: Path) -> None:
    encoder = make_audio_encoder(f"wav2vec2:{wav2vec2_folder}")
    assert isinstance(encoder, Wav2Vec2Encoder)
    assert encoder.frames_per_s == pytest.approx(50.0)
    features = encoder.encode(_noise(3.0), SAMPLE_RATE, 30.0, 90)
    assert features.shape == (90, 16)
    assert torch.isfinite(features).all()


def test_missing_or_wrong_model_folders_are_config_errors(tmp_path: Path, wav2vec2_folder: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match="nowhere"):
        WhisperEncoder(missing)
    with pytest.raises(ConfigError, match=r"config\.json"):
        make_audio_encoder(f"wav2vec2:{tmp_path}")
    with pytest.raises(ConfigError, match="'wav2vec2' model, not a 'whisper'"):
        make_audio_encoder(f"whisper:{wav2vec2_folder}")
    with pytest.raises(ConfigError, match="unknown audio encoder"):
        make_audio_encoder("hubert:/x")
    with pytest.raises(ConfigError, match="needs a local model folder"):
        make_audio_encoder("whisper:")


def test_encoders_reject_bad_audio_arguments() -> None:
    encoder = LogMelEncoder()
    with pytest.raises(ValueError, match="mono"):
        encoder.encode(np.zeros((2, 100), np.float32), SAMPLE_RATE, 25.0, 4)
    with pytest.raises(ValueError, match="fps"):
        encoder.encode(np.zeros(100, np.float32), SAMPLE_RATE, 0.0, 4)
    with pytest.raises(ValueError, match="num_frames"):
        encoder.encode(np.zeros(100, np.float32), SAMPLE_RATE, 25.0, 0)


# --- negative frame ---------------------------------------------------------------------------------------------


def _portrait(height: int = 128, width: int = 112) -> np.ndarray:
    """Smooth colour regions plus fine grey texture: blur must remove the texture, saturation must grow."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([150 + 60 * np.sin(x / 19), 110 + 40 * np.cos(y / 23), 90 + 30 * np.sin((x + y) / 31)], axis=-1)
    texture = np.random.default_rng(0).uniform(-25, 25, (height, width, 1))
    return np.clip(image + texture, 0, 255).astype(np.uint8)


def _laplacian_variance(image: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def _saturation(image: np.ndarray) -> float:
    return float(cv2.cvtColor(image, cv2.COLOR_RGB2HSV)[..., 1].mean())


def test_degradation_is_deterministic_per_seed_and_differs_across_seeds() -> None:
    image = _portrait()
    first = degrade_reference(image, seed=3)
    assert first.shape == image.shape
    assert first.dtype == np.uint8
    np.testing.assert_array_equal(first, degrade_reference(image, seed=3))
    assert np.abs(first.astype(int) - degrade_reference(image, seed=4).astype(int)).mean() > 2.0
    np.testing.assert_array_equal(degrade_reference(image, seed=3, strength=0.0), image)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_degradation_blurs_and_raises_saturation(seed: int) -> None:
    image = _portrait()
    degraded = degrade_reference(image, seed)
    assert _laplacian_variance(degraded) < 0.5 * _laplacian_variance(image)
    assert _saturation(degraded) > _saturation(image) + 5.0


@pytest.mark.parametrize("seed", [0, 5])
def test_degradation_shifts_colour_along_the_drawn_offset(seed: int) -> None:
    grey = np.repeat(_portrait()[..., :1], 3, axis=2)  # no colour of its own
    degraded = degrade_reference(grey, seed).reshape(-1, 3).astype(np.float64)
    cast = degraded.mean(axis=0) - degraded.mean()  # the mean colour's departure from grey
    offset = sample_degradation(seed).color_offset
    assert np.linalg.norm(cast) > 10.0
    assert np.dot(cast, offset) / (np.linalg.norm(cast) * np.linalg.norm(offset)) > 0.9


def test_negative_frame_tensor_is_normalised_channels_first() -> None:
    image = _portrait(32, 48)
    tensor = negative_frame_tensor(image, seed=1)
    assert tensor.shape == (3, 32, 48)
    assert tensor.min() >= -1.0
    assert tensor.max() <= 1.0
    expected = torch.from_numpy(degrade_reference(image, 1)).permute(2, 0, 1).float() / 127.5 - 1
    torch.testing.assert_close(tensor, expected)


def test_degradation_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        degrade_reference(np.zeros((8, 8, 3), np.float32), seed=0)
    with pytest.raises(ValueError, match="strength"):
        degrade_reference(np.zeros((8, 8, 3), np.uint8), seed=0, strength=-1.0)


# --- schedules and guidance -------------------------------------------------------------------------------------


def test_sigma_schedules_start_at_one_and_decrease() -> None:
    assert sigma_schedule(4, kind="linear") == [1.0, 0.75, 0.5, 0.25]
    flow = sigma_schedule(4, shift=5.0)
    assert flow == pytest.approx([1.0, 0.9375, 2.5 / 3, 0.625])
    assert flow == pytest.approx(sigma_schedule(4, shift=5.0, kind=[1.0, 0.75, 0.5, 0.25]))
    assert sigma_schedule(3, shift=1.0, kind=[0.9, 0.5, 0.1]) == pytest.approx([0.9, 0.5, 0.1])
    assert len(sigma_schedule(40, shift=3.0)) == 40


@pytest.mark.parametrize(
    ("steps", "kind", "message"),
    [
        (0, "flow", "num_inference_steps"),
        (3, [1.0, 0.5, 0.5], "strictly decreasing"),
        (3, [1.0, 0.5, 0.0], r"\(0, 1\]"),
        (2, [1.2, 0.5], r"\(0, 1\]"),
        (3, [1.0, 0.5], "num_inference_steps=3"),
        (3, "cosine", "kind"),
    ],
)
def test_sigma_schedule_rejects_bad_schedules(steps: int, kind: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sigma_schedule(steps, kind=kind)  # type: ignore[arg-type]


def test_scheduler_steps_through_exactly_the_custom_sigmas() -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler

    sigmas = sigma_schedule(4, shift=5.0, kind=[1.0, 0.75, 0.5, 0.25])
    scheduler = make_scheduler(sigmas, shift=5.0)
    assert scheduler.config.shift == 5.0
    torch.testing.assert_close(scheduler.sigmas, torch.tensor([*sigmas, 0.0]))
    # The same schedule as diffusers' own call with the base sigmas (ASSETS.md, few-step schedules).
    reference = FlowMatchEulerDiscreteScheduler(shift=5.0)
    reference.set_timesteps(sigmas=[1.0, 0.75, 0.5, 0.25])
    torch.testing.assert_close(scheduler.sigmas, reference.sigmas)
    torch.testing.assert_close(scheduler.timesteps, reference.timesteps)

    # Euler steps with a constant velocity land exactly on x0 = noise - velocity after the last sigma.
    noise, velocity = torch.randn(1, 4, 2, 2), torch.randn(1, 4, 2, 2)
    sample, steps = noise.clone(), 0
    for timestep in scheduler.timesteps:
        sample = scheduler.step(velocity, timestep, sample, return_dict=False)[0]
        steps += 1
    assert steps == 4
    torch.testing.assert_close(sample, noise - velocity)


def test_scheduler_rejects_unsorted_sigmas() -> None:
    with pytest.raises(ValueError, match="sigmas must be strictly decreasing"):
        make_scheduler([0.5, 0.9])


def test_combine_guidance_arithmetic() -> None:
    uncond, text, audio, negative = (torch.full((1, 2, 1, 2, 2), value) for value in (1.0, 2.0, 4.0, 3.0))
    pred = combine_guidance(
        uncond, text, audio, negative, guidance_scale=2.0, audio_guidance_scale=0.5, negative_frame_guidance_scale=1.5
    )
    # 4 + 2 * (4 - 1) + 0.5 * (4 - 2) + 1.5 * (4 - 3)
    torch.testing.assert_close(pred, torch.full_like(audio, 4 + 6 + 1 + 1.5))
    assert pred.dtype == audio.dtype


def test_combine_guidance_scale_zero_drops_the_branch() -> None:
    audio, other = torch.randn(1, 4, 3, 2, 2), torch.randn(1, 4, 3, 2, 2)
    only_text = combine_guidance(
        other, None, audio, None, guidance_scale=3.0, audio_guidance_scale=0.0, negative_frame_guidance_scale=0.0
    )
    torch.testing.assert_close(only_text, audio + 3.0 * (audio - other))
    only_negative = combine_guidance(
        None, None, audio, other, guidance_scale=0.0, audio_guidance_scale=0.0, negative_frame_guidance_scale=2.0
    )
    torch.testing.assert_close(only_negative, audio + 2.0 * (audio - other))
    # A zero scale ignores its branch even when it is given.
    plain = combine_guidance(
        other, other, audio, other, guidance_scale=0.0, audio_guidance_scale=0.0, negative_frame_guidance_scale=0.0
    )
    torch.testing.assert_close(plain, audio)
    assert required_branches(0.0, 1.0, 0.0) == {"audio", "text"}
    assert required_branches(5.0, 4.0, 1.0) == {"audio", "text", "uncond", "negative_frame"}


def test_combine_guidance_rejects_missing_branches_and_bad_scales() -> None:
    audio = torch.zeros(1, 2, 1, 2, 2)
    with pytest.raises(ValueError, match="negative_frame must be a tensor"):
        combine_guidance(
            None, None, audio, None, guidance_scale=0.0, audio_guidance_scale=0.0, negative_frame_guidance_scale=1.0
        )
    with pytest.raises(ValueError, match="audio_guidance_scale must be a finite number >= 0"):
        combine_guidance(
            None, audio, audio, None, guidance_scale=0.0, audio_guidance_scale=-1.0, negative_frame_guidance_scale=0.0
        )
    with pytest.raises(ValueError, match="shape"):
        combine_guidance(
            torch.zeros(1, 2), None, audio, None, guidance_scale=1.0, audio_guidance_scale=0.0,
            negative_frame_guidance_scale=0.0,
        )  # fmt: skip
