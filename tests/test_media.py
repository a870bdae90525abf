"""Decoding and probing real media files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import write_image, write_wav

from codirector.errors import MediaError
from codirector.media import load_audio, load_image, probe_audio, probe_image


def test_probe_audio_reports_the_exact_duration(tmp_path: Path) -> None:
    info = probe_audio(write_wav(tmp_path / "a.wav", 1.25, sample_rate=22_050))
    assert info.duration_s == pytest.approx(1.25, abs=1e-4)
    assert (info.sample_rate, info.num_channels, info.codec) == (22_050, 1, "pcm_s16le")


def test_load_audio_resamples_and_keeps_the_tone(tmp_path: Path) -> None:
    signal = load_audio(write_wav(tmp_path / "a.wav", 1.0, sample_rate=44_100, frequency_hz=440.0), 16_000)
    assert signal.sample_rate == 16_000
    assert signal.samples.dtype == np.float32
    assert signal.duration_s == pytest.approx(1.0, abs=2e-3)
    spectrum = np.abs(np.fft.rfft(signal.samples))
    peak_hz = np.argmax(spectrum) * signal.sample_rate / len(signal.samples)
    assert peak_hz == pytest.approx(440.0, abs=2.0)
    assert 0.25 < np.max(np.abs(signal.samples)) < 0.35  # written at 0.3 of full scale


def test_truncated_audio_is_reported(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "a.wav", 1.0)
    path.write_bytes(path.read_bytes()[:30])  # header cut short
    with pytest.raises(MediaError) as caught:
        probe_audio(path)
    assert caught.value.source == str(path)


def test_empty_and_folder_inputs(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.touch()
    with pytest.raises(MediaError, match="is empty"):
        probe_audio(empty)
    with pytest.raises(MediaError, match="is a folder"):
        probe_image(tmp_path)


def test_image_without_audio_stream(tmp_path: Path) -> None:
    png = write_image(tmp_path / "x.png")
    with pytest.raises(MediaError):
        load_audio(png)


def test_load_image_gives_rgb(tmp_path: Path) -> None:
    from PIL import Image

    gray = tmp_path / "g.png"
    Image.fromarray(np.full((10, 20), 128, np.uint8)).save(gray)
    pixels = load_image(gray)
    assert pixels.shape == (10, 20, 3)
    assert probe_image(gray).aspect == 2.0
