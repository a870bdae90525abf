"""Transcription with word timestamps: the first half of the audio expert (KlingAvatar 2.0 sec. 3.2, "transcription").

faster-whisper runs the packaged CTranslate2 Whisper models on the CPU (docs/models.md): Whisper tiny.en for English,
Whisper base for every other language and for language detection. Nothing is downloaded.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from codirector.assets import PACKAGED_ASSETS, materialize
from codirector.errors import ConfigError
from codirector.schemas.reports import Word

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

    from codirector.config import Config
    from codirector.media import AudioSignal

__all__ = ["WHISPER_SAMPLE_RATE", "Transcript", "base_language", "transcribe", "whisper_model_dir"]

logger = logging.getLogger(__name__)

WHISPER_SAMPLE_RATE = 16_000
"""Whisper's input rate; `transcribe` needs mono audio at this rate."""

# Greedy decoding is within a word or two of beam search on clean speech and about twice as fast on two cores.
_BEAM_SIZE = 1
_MIN_WORD_S = 0.02  # one Whisper timestamp step; keeps every word a non-empty span


@dataclass(frozen=True)
class Transcript:
    """What was said and when.

    Attributes:
        words: words in time order, non-overlapping, inside the track.
        language: the BCP-47 short tag decoded with ("en", "zh"), given or detected.
        language_probability: Whisper's confidence in a detected language; None when the job named it.
    """

    words: list[Word]
    language: str | None
    language_probability: float | None

    @property
    def text(self) -> str:
        return join_words([word.text for word in self.words])


def join_words(texts: list[str]) -> str:
    """Join word texts with spaces, except between CJK characters (Whisper splits Chinese per character)."""
    joined = ""
    for text in texts:
        if joined and not (_is_cjk(joined[-1]) and _is_cjk(text[0])):
            joined += " "
        joined += text
    return joined


def _is_cjk(char: str) -> bool:
    return "\u3000" <= char <= "\u9fff" or "\uac00" <= char <= "\ud7af" or "\uff00" <= char <= "\uffef"


def base_language(language: str | None) -> str | None:
    """The primary subtag of a BCP-47 tag, which is what Whisper takes: "en-US" -> "en", "zh-Hans" -> "zh"."""
    if not language:
        return None
    return language.split("-")[0].lower()


def whisper_model_dir(language: str | None, config: Config) -> Path:
    """The CTranslate2 Whisper folder to transcribe `language` with.

    `config.whisper_model` wins when set. Otherwise English uses the packaged Whisper tiny.en (small, fast, and
    English-only models are more accurate per parameter), and any other or unknown language the multilingual
    Whisper base, which also detects the language.

    Raises:
        ConfigError: the configured folder does not exist, or the packaged model is not installed.
    """
    if config.whisper_model is not None:
        if not config.whisper_model.is_dir():
            raise ConfigError(
                "CODIRECTOR_WHISPER_MODEL",
                f"{config.whisper_model} is not a folder",
                "Point it at a CTranslate2 Whisper model folder (with model.bin), or unset it to use a packaged one.",
            )
        return config.whisper_model
    code = base_language(language)
    name = "whisper-tiny.en" if code == "en" else "whisper-base"
    folder = materialize(name, config.home)
    if folder is None:
        raise ConfigError(
            name,
            f"the {PACKAGED_ASSETS[name].purpose} model is not installed",
            f"Install it with `{PACKAGED_ASSETS[name].install}`, or set CODIRECTOR_WHISPER_MODEL to a model folder.",
        )
    return folder


@functools.lru_cache(maxsize=4)
def _load_model(model_dir: str) -> WhisperModel:
    """Load a model once per process: loading takes longer than transcribing a short track."""
    from faster_whisper import WhisperModel

    logger.debug("loading Whisper model from %s", model_dir)
    return WhisperModel(model_dir, device="cpu", compute_type="int8")


def transcribe(signal: AudioSignal, *, language: str | None, config: Config) -> Transcript:
    """Transcribe a mono 16 kHz track into words with times on the track.

    Whisper's voice-activity filter (Silero VAD, shipped inside faster-whisper) skips silence, which keeps the
    model from inventing words in the quiet stretches of a dialogue track.

    Args:
        signal: mono float32 samples at 16 kHz (`codirector.media.load_audio(path, sample_rate=16000)`).
        language: the job's language hint ("en", "zh-CN"), or None to detect it.
        config: where the models live (`Config.whisper_model`, `Config.home`).

    Returns:
        Words in order, clamped into [0, duration] and made non-overlapping.

    Example:
        >>> from codirector.config import Config
        >>> from codirector.media import load_audio
        >>> transcript = transcribe(load_audio("examples/english_portrait/speech.wav"), language="en", config=Config())
        >>> transcript.words[0].text
        'Hi,'
    """
    if signal.samples.ndim != 1 or signal.sample_rate != WHISPER_SAMPLE_RATE:
        raise ValueError(
            f"transcribe needs mono audio at {WHISPER_SAMPLE_RATE} Hz, got shape {signal.samples.shape} "
            f"at {signal.sample_rate} Hz; load it with load_audio(path, sample_rate={WHISPER_SAMPLE_RATE})"
        )
    code = base_language(language)
    model_dir = whisper_model_dir(code, config)
    model = _load_model(str(model_dir))
    if code != "en" and not model.model.is_multilingual:
        # An English-only checkpoint (tiny.en) can neither detect nor decode another language.
        logger.warning("Whisper model %s is English-only; transcribing %s speech as English", model_dir, code)
        code = "en"
    elif code is not None and code not in model.supported_languages:
        logger.warning("Whisper does not know the language %r; detecting the language instead", code)
        code = None
    segments, info = model.transcribe(
        np.ascontiguousarray(signal.samples, dtype=np.float32),
        language=code,
        beam_size=_BEAM_SIZE,
        word_timestamps=True,
        vad_filter=True,
        # Each sentence is decoded on its own: a misheard word cannot snowball through a long track.
        condition_on_previous_text=False,
    )
    raw = [(w.word.strip(), w.start, w.end, w.probability) for segment in segments for w in segment.words or []]
    words = clean_word_times(raw, signal.duration_s)
    detected = code is None
    logger.debug("transcribed %d words, language %s (p=%.2f)", len(words), info.language, info.language_probability)
    if detected and not words:
        return Transcript(words=[], language=None, language_probability=None)  # nothing said in any language
    return Transcript(
        words=words,
        language=info.language or code,
        language_probability=float(info.language_probability) if detected else None,
    )


def clean_word_times(raw: list[tuple[str, float, float, float | None]], duration_s: float) -> list[Word]:
    """Words with times clamped into [0, duration_s], in order, each a non-empty span that ends before the next.

    Whisper's word times come from cross-attention and can overlap by a few hundredths of a second, or run past
    the end of the track; the AudioReport contract wants ordered spans inside the track.
    """
    words: list[Word] = []
    previous_end = 0.0
    for text, start, end, probability in sorted(raw, key=lambda item: item[1]):
        if not text:
            continue
        start_s = min(max(float(start), previous_end, 0.0), duration_s)
        end_s = min(max(float(end), start_s + _MIN_WORD_S), duration_s)
        if end_s <= start_s:
            # No room left at the very end of the track: join it to the previous word rather than lose its text.
            if words:
                last = words[-1]
                words[-1] = last.model_copy(update={"text": f"{last.text} {text}"})
            continue
        p = None if probability is None else min(max(float(probability), 0.0), 1.0)
        words.append(Word(text=text, start_s=start_s, end_s=end_s, probability=p))
        previous_end = words[-1].end_s
    return words
