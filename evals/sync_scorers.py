"""SyncNet-style lip-sync scorers: mouth crop sequences and the audio, embedded alike and compared by lag.

A mouth-opening measure (`codirector.evals.extractors.MouthOpening`) sees one frame and no sound. A SyncNet-style
model (Chung and Zisserman, "Out of time", 2016) sees both: a video net embeds a few consecutive mouth crops, an
audio net embeds the MFCCs of the same span, and the distance between the two embeddings is small where mouth and
sound belong together. Sliding the audio against the video gives a distance per lag; as in SyncNet's own
evaluation (and the LSE-D / LSE-C numbers papers report), the lag of the smallest mean distance is the offset, that
distance is how close the best pairing is, and the median distance over the lags minus the smallest is the
confidence: how much the right pairing stands out.

No weights ship with codirector. A user who has them plugs them in as ``"syncnet-torchscript:VIDEO.pt,AUDIO.pt"``
(`TorchScriptSyncNet`, the input recipe of the original SyncNet), or as ``"module.path:ClassName"``: any class
with ``name``, ``crop_size`` and the ``score`` method of `LipSyncScorer`, which may run any model on the crops and
the audio it is given (a wrapper that feeds another SyncNet variant its own input).

Lags follow the rest of the render metrics: frame i is the picture at ``i / fps``, and a positive lag means the
mouth moves after the sound.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qs

import numpy as np

from codirector.errors import ConfigError
from codirector.evals.extractors import Box, _load_class, load_torchscript
from codirector.evals.signals import MIN_PAIRED_FRAMES, clean

__all__ = [
    "MIN_WINDOWS",
    "LipSyncScorer",
    "SyncScore",
    "TorchScriptSyncNet",
    "load_sync_scorer",
    "mouth_crop",
    "syncnet_mfcc",
]

_SYNC_FORMS = (
    '"syncnet-torchscript:VIDEO.pt,AUDIO.pt[?size=112&window=5&mfcc=13]" or "module.path:ClassName" '
    "(a class with name, crop_size and score(mouth_crops, visible, audio, sample_rate, fps, max_lag))"
)
_TORCHSCRIPT_OPTIONS = {"size": 112, "window": 5, "mfcc": 13}

MIN_WINDOWS = MIN_PAIRED_FRAMES
"""Fewer fully visible windows than this and a distance curve says more about the few windows than about sync."""

# The MFCC recipe of python_speech_features' defaults, which SyncNet's published weights were trained on
_AUDIO_RATE = 16_000  # Hz
_MFCC_RATE = 100  # MFCC frames per second: a 10 ms hop
_MFCC_WINDOW_S = 0.025
_MEL_FILTERS = 26
_LIFTER = 22
_PREEMPHASIS = 0.97
_INT16_SCALE = 32768.0  # SyncNet read 16-bit WAV samples as integers, so its log energies sit this much higher
_BATCH = 64  # windows per forward pass: about 4 MB of 112 x 112 video input


@dataclass(frozen=True)
class SyncScore:
    """A SyncNet-style distance curve: how far the mouth is from the sound at each lag (lower is more in sync).

    Attributes:
        lags: the lags tried, in frames; positive means the mouth moves after the sound.
        distance_by_lag: the mean embedding distance at each lag, or None where it could not be measured.
    """

    lags: list[int]
    distance_by_lag: list[float | None]

    def _scored(self) -> list[tuple[float, int]]:
        return [(d, lag) for lag, d in zip(self.lags, self.distance_by_lag, strict=True) if d is not None]

    @property
    def best_lag(self) -> int | None:
        """The lag of the smallest distance (the smallest |lag| among equals); None if no lag was measured."""
        scored = self._scored()
        return min(scored, key=lambda pair: (pair[0], abs(pair[1])))[1] if scored else None

    @property
    def min_distance(self) -> float | None:
        """The smallest distance, SyncNet's LSE-D when the embeddings are SyncNet's; None if none was measured."""
        scored = self._scored()
        return min(d for d, _ in scored) if scored else None

    @property
    def confidence(self) -> float | None:
        """The median distance over the lags minus the smallest (SyncNet's LSE-C): how much the best pairing
        stands out; None if no lag was measured."""
        scored = self._scored()
        return float(np.median([d for d, _ in scored])) - min(d for d, _ in scored) if scored else None

    def as_json(self) -> dict[str, Any]:
        """The curve and its summary as plain lists and rounded floats."""
        return {
            "lags": list(self.lags),
            "distance_by_lag": [clean(d) for d in self.distance_by_lag],
            "best_lag": self.best_lag,
            "min_distance": clean(self.min_distance),
            "confidence": clean(self.confidence),
        }


@runtime_checkable
class LipSyncScorer(Protocol):
    """Scores a character's mouth crops against their voice, SyncNet-style.

    Attributes:
        name: what the scorer is, as reports show it.
        crop_size: the side S of the square mouth crops it is given, pixels.
    """

    name: str
    crop_size: int

    def score(
        self, mouth_crops: np.ndarray, visible: np.ndarray, audio: np.ndarray, sample_rate: int, fps: float,
        max_lag: int,
    ) -> SyncScore | None:  # fmt: skip
        """The distance between mouth and sound at each lag in ``-max_lag..max_lag``.

        Args:
            mouth_crops: (T, S, S, 3) uint8 RGB, one per video frame: the lower half of the tracked face box
                resized to S x S (see `mouth_crop`); zeros where the face was not seen.
            visible: (T,) bool, where the face was seen.
            audio: the character's own voice, mono float32 in -1..1, starting with the video.
            sample_rate: its samples per second.
            fps: video frames per second.
            max_lag: the largest offset tried each way, frames.

        Returns:
            The curve, or None when too little of the face was seen to tell.
        """
        ...


def mouth_crop(frame_rgb: np.ndarray, box: Box, size: int) -> np.ndarray | None:
    """The lower half of a face box (mouth, chin and cheeks) resized to `size` x `size`, RGB uint8.

    A Haar box runs from the brows to the chin and is about square, so the half is about twice as wide as tall and
    the square crop stretches it upright; every frame is stretched alike. Parts of the box past the frame's edges
    read black, so the mouth stays where it is in the crop; None when under half of the region is in the frame.
    """
    import cv2

    x0, y0, x1, y1 = box
    left, top, right, bottom = round(x0), round((y0 + y1) / 2), round(x1), round(y1)
    if right - left < 4 or bottom - top < 2:
        return None
    height, width = frame_rgb.shape[:2]
    inside = frame_rgb[max(0, top) : max(0, min(height, bottom)), max(0, left) : max(0, min(width, right))]
    if inside.shape[0] * inside.shape[1] < 0.5 * (right - left) * (bottom - top):
        return None
    region = np.zeros((bottom - top, right - left, 3), np.uint8)
    row, column = max(0, top) - top, max(0, left) - left
    region[row : row + inside.shape[0], column : column + inside.shape[1]] = inside
    return cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA)


# ------------------------------------------------------------------------------------------------ audio features


def _mel_filters(count: int, nfft: int, sample_rate: int) -> np.ndarray:
    """python_speech_features' triangular filters: equally spaced on the HTK mel scale, edges on whole FFT bins."""
    top_mel = 2595.0 * np.log10(1.0 + sample_rate / 2 / 700.0)
    hz = 700.0 * (10.0 ** (np.linspace(0.0, top_mel, count + 2) / 2595.0) - 1.0)
    bins = np.floor((nfft + 1) * hz / sample_rate)
    filters = np.zeros((count, nfft // 2 + 1))
    for number in range(count):
        low, middle, high = bins[number : number + 3]
        rising, falling = np.arange(int(low), int(middle)), np.arange(int(middle), int(high))
        filters[number, rising] = (rising - low) / max(middle - low, 1.0)
        filters[number, falling] = (high - falling) / max(high - middle, 1.0)
    return filters


def syncnet_mfcc(samples: np.ndarray, sample_rate: int = _AUDIO_RATE, num_mfcc: int = 13) -> np.ndarray:
    """MFCCs as ``python_speech_features.mfcc`` computes them with its defaults, the features SyncNet learnt from.

    25 ms rectangular windows every 10 ms (the last padded with zeros to a whole window), pre-emphasis 0.97, the
    power spectrum of the next power-of-two FFT (512 points at 16 kHz), 26 triangular mel filters up to Nyquist,
    natural log, orthonormal DCT-II, sinusoidal lifter 22, and coefficient 0 replaced by the log of the window's
    total power. librosa's MFCC differs in every one of these (dB, Slaney filters, centred Hann windows), and a
    network trained on one reads the other as noise. Long audio is done a minute at a time.

    Args:
        samples: mono samples, on whatever scale the model was trained on (SyncNet: 16-bit integers).
        sample_rate: samples per second.
        num_mfcc: coefficients kept, at most 26.

    Returns:
        float64 (num_windows, num_mfcc); window m starts at sample ``m * sample_rate / 100``.
    """
    from scipy.fft import dct

    signal = np.asarray(samples, dtype=np.float32).reshape(-1)
    signal = np.append(signal[:1], signal[1:] - _PREEMPHASIS * signal[:-1])
    # rounded half up, as python_speech_features does (1102.5 samples at 44.1 kHz is 1103)
    length, step = int(_MFCC_WINDOW_S * sample_rate + 0.5), int(sample_rate / _MFCC_RATE + 0.5)
    nfft = 1 << (length - 1).bit_length()
    count = 1 if len(signal) <= length else 1 + -(-(len(signal) - length) // step)
    signal = np.pad(signal, (0, (count - 1) * step + length - len(signal)))
    windows = np.lib.stride_tricks.sliding_window_view(signal, length)[::step]
    filters = _mel_filters(_MEL_FILTERS, nfft, sample_rate)
    lifter = 1.0 + _LIFTER / 2.0 * np.sin(np.pi * np.arange(num_mfcc) / _LIFTER)
    tiny = np.finfo(np.float64).eps  # python_speech_features' floor for silent windows
    out = np.empty((count, num_mfcc))
    chunk = 60 * _MFCC_RATE
    for start in range(0, count, chunk):
        power = np.abs(np.fft.rfft(windows[start : start + chunk].astype(np.float64), nfft)) ** 2 / nfft
        bands = np.maximum(power @ filters.T, tiny)
        cepstra = dct(np.log(bands), type=2, axis=1, norm="ortho")[:, :num_mfcc] * lifter
        cepstra[:, 0] = np.log(np.maximum(power.sum(axis=1), tiny))
        out[start : start + chunk] = cepstra
    return out


# ------------------------------------------------------------------------------------------------ the model


def _check_settings(source: str, crop_size: int, window: int, num_mfcc: int) -> None:
    if crop_size < 8 or window < 1 or not 1 <= num_mfcc <= _MEL_FILTERS:
        raise ConfigError(
            source, f"size {crop_size}, window {window} and mfcc {num_mfcc} are out of range",
            f"Use a size of 8 or more, a window of 1 or more, and 1 to {_MEL_FILTERS} MFCCs.",
        )  # fmt: skip


class TorchScriptSyncNet:
    """A SyncNet-style pair of TorchScript nets, fed as the original SyncNet was.

    * Video: (N, window, S, S) float32, the grey (Rec. 601) mouth crops of `window` consecutive frames stacked as
      channels, scaled to 0..1; out (N, D).
    * Audio: (N, 1, num_mfcc, k * window) float32 MFCCs (`syncnet_mfcc` of the 16 kHz voice as 16-bit integers),
      k = round(100 / fps) MFCC frames per video frame: 4 at 25 fps, as SyncNet's 20 per 5 frames; at rates that
      do not divide 100 the span is up to 5 ms a frame off, and each window starts at the MFCC frame nearest its
      time, so nothing drifts. Out (N, D).

    The audio window is centred where its video window is (each frame at ``i / fps``, as the other lip-sync
    metrics pair them); SyncNet's own demo starts the audio at each frame's time, 27.5 ms (0.7 frame at 25 fps)
    later, so a model trained that way may read well-synced video at a lag of -1.

    For each lag L the distance is the mean, over the video windows starting at t where the face is seen in all
    `window` frames, of the Euclidean distance between the video embedding at t and the audio embedding at
    t - L. The embeddings are compared raw, as SyncNet's evaluation does (so distances read as LSE-D); a model
    trained on cosine distance normalises in its own forward. Every lag is averaged over the same windows: those
    whose audio at every lag lies within the video (t from max_lag to T - window - max_lag), so no lag is judged
    on padding. Audio shorter than the video reads as silence.

    Args:
        video_model: the video net's TorchScript file.
        audio_model: the audio net's TorchScript file.
        crop_size: the crops' side S, pixels.
        window: video frames per window (5 in SyncNet).
        num_mfcc: MFCC coefficients per audio frame (13 in SyncNet), at most 26.

    Raises:
        InputFileError: a file is missing or is not TorchScript.
        ConfigError: torch is missing, or a setting is out of range.
    """

    def __init__(
        self, video_model: str | Path, audio_model: str | Path, crop_size: int = 112, window: int = 5,
        num_mfcc: int = 13,
    ) -> None:  # fmt: skip
        video_path, audio_path = Path(video_model).expanduser(), Path(audio_model).expanduser()
        self.name = f"syncnet-torchscript:{video_path.name},{audio_path.name}"
        _check_settings(self.name, crop_size, window, num_mfcc)
        self._video, self._torch = load_torchscript(video_path, self.name)
        self._audio, _ = load_torchscript(audio_path, self.name)
        self.crop_size = crop_size
        self.window = window
        self.num_mfcc = num_mfcc

    def _embed(self, model: Any, batches: Iterator[np.ndarray]) -> np.ndarray:
        torch = self._torch
        outputs = []
        with torch.inference_mode():
            for batch in batches:
                output = model(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
                if isinstance(output, (tuple, list)):  # some exports return (embedding, extras)
                    output = output[0]
                outputs.append(output.detach().to(torch.float32).cpu().numpy().reshape(len(batch), -1))
        return np.concatenate(outputs)

    def _video_batches(self, crops: np.ndarray, starts: np.ndarray) -> Iterator[np.ndarray]:
        luma = np.array([0.299, 0.587, 0.114], np.float32) / 255.0
        offsets = np.arange(self.window)
        for first in range(0, len(starts), _BATCH):
            batch = starts[first : first + _BATCH]
            # grey of just the frames this batch covers: the whole video at once would be T x S x S floats
            low = int(batch[0])
            grey = crops[low : int(batch[-1]) + self.window].astype(np.float32) @ luma
            yield grey[batch[:, None] - low + offsets]

    def _audio_batches(
        self, audio: np.ndarray, sample_rate: int, fps: float, starts: np.ndarray
    ) -> Iterator[np.ndarray]:
        per_frame = max(1, round(_MFCC_RATE / fps))
        span = per_frame * self.window
        samples = np.asarray(audio, dtype=np.float32).reshape(-1)
        if sample_rate != _AUDIO_RATE:
            import librosa

            samples = librosa.resample(samples, orig_sr=sample_rate, target_sr=_AUDIO_RATE)
        # MFCC frame m covers 25 ms from m * 10 ms; shifting the audio by this much centres the MFCC frames of a
        # window starting at frame s on the video window's middle, (s + (window - 1) / 2) / fps
        lead_s = (span - 1) / 2 / _MFCC_RATE + _MFCC_WINDOW_S / 2 - (self.window - 1) / 2 / fps
        lead = round(lead_s * _AUDIO_RATE)
        samples = np.pad(samples, (lead, 0)) if lead >= 0 else samples[-lead:]
        first = np.round(starts / fps * _MFCC_RATE).astype(np.int64)
        needed = (int(first.max()) + span - 1) * (_AUDIO_RATE // _MFCC_RATE) + round(_MFCC_WINDOW_S * _AUDIO_RATE)
        samples = np.pad(samples[:needed], (0, max(0, needed - len(samples))))
        mfcc = syncnet_mfcc(samples * _INT16_SCALE, _AUDIO_RATE, self.num_mfcc).astype(np.float32)
        offsets = np.arange(span)
        for begin in range(0, len(first), _BATCH):
            windows = mfcc[first[begin : begin + _BATCH, None] + offsets]  # (B, span, num_mfcc)
            yield windows.transpose(0, 2, 1)[:, None]

    def score(
        self, mouth_crops: np.ndarray, visible: np.ndarray, audio: np.ndarray, sample_rate: int, fps: float,
        max_lag: int,
    ) -> SyncScore | None:  # fmt: skip
        """The mean embedding distance at each lag (see the class); None with under `MIN_WINDOWS` usable windows."""
        crops = np.asarray(mouth_crops)
        frames = len(crops)
        seen = np.asarray(visible, dtype=bool).reshape(-1)[:frames]
        last = frames - self.window - max_lag
        if last < max_lag or len(seen) < frames:
            return None
        whole = np.lib.stride_tricks.sliding_window_view(seen, self.window).all(axis=1)
        starts = np.flatnonzero(whole[max_lag : last + 1]) + max_lag
        if len(starts) < MIN_WINDOWS:
            return None
        lags = np.arange(-max_lag, max_lag + 1)
        audio_starts = np.unique((starts[:, None] - lags[None, :]).reshape(-1))
        video = self._embed(self._video, self._video_batches(crops, starts))
        sound = self._embed(self._audio, self._audio_batches(audio, sample_rate, fps, audio_starts))
        if video.shape[1] != sound.shape[1]:
            raise ConfigError(
                self.name, f"the video net gives {video.shape[1]} values and the audio net {sound.shape[1]}",
                "Give the video and audio halves of one SyncNet-style model.",
            )  # fmt: skip
        distances: list[float | None] = []
        for lag in lags:
            paired = sound[np.searchsorted(audio_starts, starts - lag)]
            distances.append(float(np.linalg.norm(video - paired, axis=1).mean()))
        return SyncScore([int(lag) for lag in lags], distances)


# ------------------------------------------------------------------------------------------------ loading


def _torchscript_scorer(spec: str) -> TorchScriptSyncNet:
    locations, _, query = spec.removeprefix("syncnet-torchscript:").partition("?")
    video, comma, audio = locations.partition(",")
    options = parse_qs(query, keep_blank_values=True)
    values = {key: options.get(key, [str(default)])[-1] for key, default in _TORCHSCRIPT_OPTIONS.items()}
    if not video or not comma or not audio or set(options) - set(values) or not all(map(str.isdigit, values.values())):
        raise ConfigError(
            spec, "is not a valid SyncNet TorchScript scorer",
            'Write it as "syncnet-torchscript:/path/video.pt,/path/audio.pt?size=112&window=5&mfcc=13" (paths '
            "without commas; the options may be left out).",
        )  # fmt: skip
    size, window, num_mfcc = (int(values[key]) for key in ("size", "window", "mfcc"))
    _check_settings(spec, size, window, num_mfcc)  # before loading the models, and naming the spec
    return TorchScriptSyncNet(video, audio, crop_size=size, window=window, num_mfcc=num_mfcc)


def load_sync_scorer(spec: str) -> LipSyncScorer:
    """The lip-sync scorer named by `spec`.

    Args:
        spec: ``"syncnet-torchscript:VIDEO.pt,AUDIO.pt"`` with optional ``?size=S&window=W&mfcc=C`` (defaults 112,
            5 and 13; see `TorchScriptSyncNet`), or ``"module.path:ClassName"`` (a class with ``name``,
            ``crop_size`` and ``score``, instantiated without arguments).

    Raises:
        ConfigError: the spec names no known scorer, or its class cannot be imported or lacks ``score`` or a
            ``crop_size``.
        InputFileError: a TorchScript file is missing or does not load.
    """
    if spec.startswith("syncnet-torchscript:"):
        return _torchscript_scorer(spec)
    if ":" in spec:
        scorer = _load_class(spec, _SYNC_FORMS, "score")
        size = getattr(scorer, "crop_size", None)
        if not isinstance(size, int) or isinstance(size, bool) or size < 8:
            raise ConfigError(spec, "has no crop_size (a whole number of pixels, 8 or more)", f"Use {_SYNC_FORMS}.")
        return scorer  # type: ignore[no-any-return]
    raise ConfigError(spec, "is not a known lip-sync scorer", f"Use {_SYNC_FORMS}.")
