"""Pluggable audio encoders that turn a speech track into one feature row per video frame.

The DiT's audio cross-attention (Kling-Avatar sec. 2.4) lets each video token attend to the audio tokens aligned
with its own frame, so every encoder here returns features resampled to the video frame rate: row ``i`` describes
the audio at time ``i / fps``. Three encoders ship:

- `LogMelEncoder`: a log-mel front end with no weights, for tests and as a fallback.
- `WhisperEncoder`: the hidden states of a Whisper encoder (50 frames/s over 30 s windows), from a local folder.
- `Wav2Vec2Encoder`: the hidden states of a wav2vec 2.0 model (50 frames/s), from a local folder.

`make_audio_encoder` resolves a ``"kind:path"`` spec. Weights are never downloaded: a path that is not a local
model folder raises `ConfigError`.

Example:
    >>> import numpy as np
    >>> encoder = make_audio_encoder("logmel")
    >>> encoder.encode(np.zeros(16000, np.float32), sample_rate=16000, fps=25.0, num_frames=25).shape
    torch.Size([25, 80])
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch

from codirector.errors import ConfigError

__all__ = [
    "AudioEncoder",
    "LogMelEncoder",
    "Wav2Vec2Encoder",
    "WhisperEncoder",
    "make_audio_encoder",
    "resample_to_frames",
]

logger = logging.getLogger(__name__)

MODEL_SAMPLE_RATE_HZ = 16_000
"""Whisper and wav2vec 2.0 both take 16 kHz mono audio."""


@runtime_checkable
class AudioEncoder(Protocol):
    """Encodes a mono waveform into features aligned with video frames."""

    @property
    def feature_dim(self) -> int:
        """Width of one feature row."""
        ...

    def encode(self, samples: np.ndarray, sample_rate: int, fps: float, num_frames: int) -> torch.Tensor:
        """Returns features of shape (num_frames, feature_dim); row i describes the audio at time i / fps."""
        ...


def resample_to_frames(features: torch.Tensor, times_s: torch.Tensor, fps: float, num_frames: int) -> torch.Tensor:
    """Linearly interpolates feature rows, stamped with their times, at the video frame times ``i / fps``.

    Frame times outside ``times_s`` take the nearest row (callers pad the audio so that this is silence).

    Args:
        features: (num_rows, feature_dim) features of the audio model.
        times_s: (num_rows,) increasing time of each row, in seconds.
        fps: video frame rate.
        num_frames: number of video frames.

    Returns:
        (num_frames, feature_dim) features, same dtype and device as ``features``.
    """
    if features.ndim != 2 or times_s.shape != features.shape[:1] or features.shape[0] == 0:
        raise ValueError(
            f"features must be (num_rows, dim) with one time per row, got {tuple(features.shape)} "
            f"and times {tuple(times_s.shape)}"
        )
    targets = torch.arange(num_frames, device=features.device, dtype=torch.float64) / fps
    times = times_s.to(device=features.device, dtype=torch.float64)
    if features.shape[0] == 1:
        return features.expand(num_frames, -1).clone()
    # Index of the first row at or after each target, so that rows (upper - 1, upper) bracket it.
    upper = torch.searchsorted(times, targets).clamp(1, features.shape[0] - 1)
    lower = upper - 1
    weight = ((targets - times[lower]) / (times[upper] - times[lower])).clamp(0.0, 1.0)
    weight = weight.to(features.dtype).unsqueeze(1)
    return features[lower] * (1 - weight) + features[upper] * weight


def _check_audio(samples: np.ndarray, sample_rate: int, fps: float, num_frames: int) -> np.ndarray:
    """Validates `encode`'s arguments and returns the samples as a contiguous float32 array."""
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise ValueError(f"samples must be mono with shape (num_samples,), got shape {samples.shape}")
    if samples.size == 0:
        raise ValueError("samples must not be empty, got 0 samples")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be > 0 Hz, got {sample_rate}")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a finite number > 0, got {fps}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    return np.ascontiguousarray(samples, dtype=np.float32)


def _pad_to_cover(samples: np.ndarray, sample_rate: int, fps: float, num_frames: int) -> np.ndarray:
    """Pads with silence so that the audio lasts at least as long as the video (the interpolation never clamps)."""
    needed = math.ceil(num_frames / fps * sample_rate)
    return np.pad(samples, (0, needed - samples.size)) if samples.size < needed else samples


def _to_model_rate(samples: np.ndarray, sample_rate: int, fps: float, num_frames: int) -> np.ndarray:
    """Resamples to 16 kHz and pads with silence so that the audio covers every video frame."""
    if sample_rate != MODEL_SAMPLE_RATE_HZ:
        import librosa

        samples = librosa.resample(samples, orig_sr=sample_rate, target_sr=MODEL_SAMPLE_RATE_HZ).astype(np.float32)
    return _pad_to_cover(samples, MODEL_SAMPLE_RATE_HZ, fps, num_frames)


class LogMelEncoder:
    """A log-mel spectrogram at 100 frames/s, interpolated to the video frame rate; no weights.

    Args:
        n_mels: number of mel bands, the feature width.
        window_s: analysis window length in seconds (25 ms, as in Whisper).
        hop_s: hop between spectrogram frames in seconds (10 ms).
        fmax_hz: highest mel frequency; capped at the Nyquist frequency of the input.
    """

    def __init__(self, n_mels: int = 80, window_s: float = 0.025, hop_s: float = 0.010, fmax_hz: float = 8000.0):
        if n_mels < 1:
            raise ValueError(f"n_mels must be >= 1, got {n_mels}")
        if not (0 < hop_s <= window_s):
            raise ValueError(f"hop_s must be in (0, window_s={window_s}], got {hop_s}")
        self.n_mels = n_mels
        self.window_s = window_s
        self.hop_s = hop_s
        self.fmax_hz = fmax_hz

    @property
    def feature_dim(self) -> int:
        return self.n_mels

    def encode(self, samples: np.ndarray, sample_rate: int, fps: float, num_frames: int) -> torch.Tensor:
        """Returns (num_frames, n_mels) float32 log-mel energies; row i is centred on time i / fps."""
        import librosa

        samples = _pad_to_cover(_check_audio(samples, sample_rate, fps, num_frames), sample_rate, fps, num_frames)
        n_fft = max(16, round(self.window_s * sample_rate))
        hop = max(1, round(self.hop_s * sample_rate))
        fmax_hz = min(self.fmax_hz, sample_rate / 2)
        mel_basis = torch.from_numpy(librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=self.n_mels, fmax=fmax_hz))
        # center=True puts spectrogram frame k at time k * hop / sample_rate.
        window = torch.hann_window(n_fft)
        spectrum = torch.stft(
            torch.from_numpy(samples), n_fft, hop, window=window, pad_mode="constant", return_complex=True
        )
        power = spectrum.abs().pow(2)  # (n_fft // 2 + 1, num_stft_frames)
        log_mel = torch.log(torch.clamp(mel_basis @ power, min=1e-10)).T  # (num_stft_frames, n_mels)
        times_s = torch.arange(log_mel.shape[0], dtype=torch.float64) * hop / sample_rate
        return resample_to_frames(log_mel.float(), times_s, fps, num_frames)


def _check_model_folder(path: str | Path, model_type: str, kind: str) -> Path:
    """Raises ConfigError unless ``path`` is a local folder whose config.json declares ``model_type``."""
    folder = Path(path).expanduser()
    config_file = folder / "config.json"
    fix = (
        f"Pass a local {kind} model folder (config.json, weights and preprocessor_config.json); nothing is downloaded."
    )
    if not folder.is_dir():
        raise ConfigError(folder, f"no {kind} model folder here", fix)
    if not config_file.is_file():
        raise ConfigError(folder, "has no config.json, so it is not a transformers model folder", fix)
    try:
        found = json.loads(config_file.read_text()).get("model_type")
    except (OSError, json.JSONDecodeError, AttributeError) as error:
        raise ConfigError(config_file, f"cannot be read as a model config ({error})", fix) from error
    if found != model_type:
        raise ConfigError(folder, f"is a {found!r} model, not a {model_type!r} model", fix)
    return folder


class _HiddenStateEncoder:
    """Shared machinery: load from a local folder, 30 s windows, layer selection, resampling to fps.

    Args:
        path: local folder with config.json, weights and preprocessor_config.json.
        device: where the model runs.
        dtype: model weights dtype (float16/bfloat16 on GPU); features are returned as float32.
        layers: "last", or indices into the hidden states (0 is the embedding output) to combine.
        layer_reduce: "mean" averages the chosen layers, "concat" concatenates them along the feature axis.
    """

    model_type: str
    display_name: str
    frames_per_s: float = 50.0
    window_s: float = 30.0

    def __init__(
        self,
        path: str | Path,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        layers: Literal["last"] | Sequence[int] = "last",
        layer_reduce: Literal["mean", "concat"] = "mean",
    ) -> None:
        if layer_reduce not in ("mean", "concat"):
            raise ValueError(f"layer_reduce must be 'mean' or 'concat', got {layer_reduce!r}")
        self.path = _check_model_folder(path, self.model_type, self.display_name)
        self.device = torch.device(device)
        self.dtype = dtype
        try:
            num_layers, self.hidden_size = self._load(self.path, dtype)
        except OSError as error:  # weights or preprocessor_config.json missing or unreadable
            raise ConfigError(
                self.path, f"cannot be loaded as a {self.display_name} model ({error})", "Check the folder's files."
            ) from error
        self.model.to(self.device).eval()
        # hidden_states has num_layers + 1 entries: the embeddings, then the output of each layer.
        self.layers: tuple[int, ...] = (num_layers,) if layers == "last" else tuple(int(i) for i in layers)
        if not self.layers or any(not -(num_layers + 1) <= index <= num_layers for index in self.layers):
            raise ConfigError(
                "layers",
                f"must be 'last' or indices in [-{num_layers + 1}, {num_layers}], got {layers!r}",
                "Pick hidden-state indices the model has (0 is the embedding output).",
            )
        self.layer_reduce = layer_reduce

    @property
    def feature_dim(self) -> int:
        return self.hidden_size * (len(self.layers) if self.layer_reduce == "concat" else 1)

    def _load(self, folder: Path, dtype: torch.dtype) -> tuple[int, int]:
        """Sets ``self.model`` and ``self.feature_extractor``; returns (num_layers, hidden_size)."""
        raise NotImplementedError

    def _encode_window(self, window: np.ndarray) -> torch.Tensor:
        """(window_samples,) 16 kHz audio -> (num_rows, feature_dim) features, row k at k / frames_per_s."""
        raise NotImplementedError

    def _reduce(self, hidden_states: Sequence[torch.Tensor]) -> torch.Tensor:
        """(batch, time, hidden) per layer -> (batch, time, feature_dim)."""
        picked = [hidden_states[index] for index in self.layers]
        if self.layer_reduce == "concat":
            return torch.cat(picked, dim=-1)
        return torch.stack(picked, dim=0).mean(dim=0)

    def _row_offset_s(self) -> float:
        """Time of row 0 of a window, relative to the window start."""
        return 0.0

    @torch.no_grad()
    def encode(self, samples: np.ndarray, sample_rate: int, fps: float, num_frames: int) -> torch.Tensor:
        """Returns (num_frames, feature_dim) float32 features on ``device``; row i describes time i / fps.

        Long audio is cut into 30 s windows, each encoded alone; their rows are stamped with absolute times,
        concatenated and linearly interpolated to the video frame times.
        """
        samples = _to_model_rate(_check_audio(samples, sample_rate, fps, num_frames), sample_rate, fps, num_frames)
        window_samples = round(self.window_s * MODEL_SAMPLE_RATE_HZ)
        rows: list[torch.Tensor] = []
        times: list[torch.Tensor] = []
        for start in range(0, samples.size, window_samples):
            features = self._encode_window(samples[start : start + window_samples])  # (num_rows, feature_dim)
            rows.append(features.float())
            offset_s = start / MODEL_SAMPLE_RATE_HZ + self._row_offset_s()
            times.append(offset_s + torch.arange(features.shape[0], dtype=torch.float64) / self.frames_per_s)
        logger.debug("encoded %d window(s) of audio into %d rows", len(rows), sum(row.shape[0] for row in rows))
        return resample_to_frames(torch.cat(rows), torch.cat(times), fps, num_frames)


class WhisperEncoder(_HiddenStateEncoder):
    """Whisper encoder hidden states (50 rows/s: 10 ms mel hop, then a stride-2 convolution), from a local folder.

    Whisper always encodes a 30 s log-mel window (its feature extractor pads shorter audio); only the rows that
    cover real audio are kept. The folder holds config.json (model_type "whisper"), the weights and
    preprocessor_config.json; the constructor takes the arguments of `_HiddenStateEncoder`.
    """

    model_type = "whisper"
    display_name = "Whisper"

    def _load(self, folder: Path, dtype: torch.dtype) -> tuple[int, int]:
        from transformers import WhisperFeatureExtractor, WhisperModel

        self.feature_extractor: Any = WhisperFeatureExtractor.from_pretrained(folder, local_files_only=True)
        # Only the encoder is used; the decoder is dropped to free its memory.
        self.model: Any = WhisperModel.from_pretrained(folder, local_files_only=True, dtype=dtype).get_encoder()
        return self.model.config.encoder_layers, self.model.config.d_model

    def _encode_window(self, window: np.ndarray) -> torch.Tensor:
        inputs = self.feature_extractor(window, sampling_rate=MODEL_SAMPLE_RATE_HZ, return_tensors="pt")
        mel = inputs.input_features.to(self.device, self.dtype)  # (1, num_mel_bins, 3000)
        output = self.model(mel, output_hidden_states=True)
        num_rows = math.ceil(window.size / MODEL_SAMPLE_RATE_HZ * self.frames_per_s)
        return self._reduce(output.hidden_states)[0, :num_rows]


class Wav2Vec2Encoder(_HiddenStateEncoder):
    """wav2vec 2.0 hidden states (50 rows/s: a stride-320 convolutional front end), from a local folder.

    The folder holds config.json (model_type "wav2vec2"), the weights and preprocessor_config.json; the constructor
    takes the arguments of `_HiddenStateEncoder`.
    """

    model_type = "wav2vec2"
    display_name = "wav2vec 2.0"

    def _load(self, folder: Path, dtype: torch.dtype) -> tuple[int, int]:
        from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

        self.feature_extractor: Any = Wav2Vec2FeatureExtractor.from_pretrained(folder, local_files_only=True)
        self.model: Any = Wav2Vec2Model.from_pretrained(folder, local_files_only=True, dtype=dtype)
        config = self.model.config
        # Receptive field of the convolutional front end: row k covers [k * stride, k * stride + field) samples.
        field, stride = 1, 1
        for kernel, step in zip(config.conv_kernel, config.conv_stride, strict=True):
            field += (kernel - 1) * stride
            stride *= step
        self.frames_per_s = MODEL_SAMPLE_RATE_HZ / stride
        self._offset_s = field / 2 / MODEL_SAMPLE_RATE_HZ
        self._min_samples = field
        return config.num_hidden_layers, config.hidden_size

    def _row_offset_s(self) -> float:
        return self._offset_s

    def _encode_window(self, window: np.ndarray) -> torch.Tensor:
        if window.size < self._min_samples:  # a last window shorter than one receptive field
            window = np.pad(window, (0, self._min_samples - window.size))
        inputs = self.feature_extractor(window, sampling_rate=MODEL_SAMPLE_RATE_HZ, return_tensors="pt")
        values = inputs.input_values.to(self.device, self.dtype)  # (1, window_samples)
        output = self.model(values, output_hidden_states=True)
        return self._reduce(output.hidden_states)[0]


_ENCODERS = {"whisper": WhisperEncoder, "wav2vec2": Wav2Vec2Encoder}


def make_audio_encoder(
    spec: str | None, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> AudioEncoder:
    """Resolves an encoder spec: None or "logmel" (default), "logmel:N" (N mel bands), "whisper:/path/to/folder",
    "wav2vec2:/path".

    Args:
        spec: the encoder and, after the colon, a local model folder (or the number of mel bands for logmel).
        device: where a model encoder runs.
        dtype: a model encoder's weights dtype.

    Raises:
        ConfigError: unknown kind, a missing path, or a folder that does not hold that kind of model.
    """
    kind, _, argument = (spec or "logmel").partition(":")
    kind, argument = kind.strip().lower(), argument.strip()
    if kind == "logmel":
        if not argument:
            return LogMelEncoder()
        if not argument.isdigit() or int(argument) < 1:
            raise ConfigError(
                "audio_encoder", f"logmel needs a whole number of mel bands, got {spec!r}", "Use 'logmel:80'."
            )
        return LogMelEncoder(n_mels=int(argument))
    if kind not in _ENCODERS:
        raise ConfigError(
            "audio_encoder", f"unknown audio encoder {spec!r}", "Use 'logmel', 'whisper:/path' or 'wav2vec2:/path'."
        )
    if not argument:
        raise ConfigError("audio_encoder", f"{kind!r} needs a local model folder, got {spec!r}", f"Use '{kind}:/path'.")
    return _ENCODERS[kind](argument, device=device, dtype=dtype)
