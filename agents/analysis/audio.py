"""The offline audio expert's measurements: one `AudioReport` per character track (KlingAvatar 2.0 sec. 3.2).

Transcription (speech.py), signal measurements (prosody.py) and transcript rules (intent.py) meet here. The order
matters: words are trimmed to the sound before phrases and pauses are cut from them, and the delivery (speech or
singing) is known before the emotion is read, because a sung word rate says nothing about arousal.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from codirector.agents.analysis.intent import (
    classify_intent,
    exclaimed_share,
    summarize_intent,
    text_valence,
    track_intent,
)
from codirector.agents.analysis.prosody import (
    FrameFeatures,
    SegmentFeatures,
    arousal_from,
    classify_delivery,
    estimate_tempo,
    find_pauses,
    label_emotion,
    measure_frames,
    measure_prosody,
    pulse_clarity,
    refine_words,
    segment_features,
    split_utterances,
)
from codirector.agents.analysis.speech import WHISPER_SAMPLE_RATE, Transcript, base_language, join_words, transcribe
from codirector.errors import MediaError
from codirector.media import load_audio
from codirector.schemas.reports import AudioReport, EmotionEstimate, Utterance, Word
from codirector.schemas.vocab import Delivery, Emotion

if TYPE_CHECKING:
    from codirector.config import Config

__all__ = ["analyze_track"]

logger = logging.getLogger(__name__)

_CHARACTER_LANGUAGES = frozenset({"zh", "ja", "ko", "yue"})  # rate is counted in characters (syllables) there
_MIN_PHRASE_S = 0.8  # shorter phrases are too short for their own pitch and energy statistics
_SILENT_SUMMARY = "Silent: the character does not speak on this track."


def analyze_track(character_id: str, audio_path: Path, *, language: str | None, config: Config) -> AudioReport:
    """Transcribe and measure one character's track.

    Args:
        character_id: the job's id for the character who speaks on this track.
        audio_path: any audio file ffmpeg decodes; it is analysed as 16 kHz mono.
        language: the job's language hint ("en", "zh-CN"), or None to detect it.
        config: where the Whisper models are (`Config.whisper_model`, `Config.home`).

    Returns:
        Words, phrases, prosody, delivery, emotion and speaking intent. A silent track gives a valid report with
        no words, neutral emotion and low confidences.

    Raises:
        MediaError: the file cannot be decoded or holds no samples.
        ConfigError: the Whisper model is not installed.

    Example:
        >>> from pathlib import Path
        >>> from codirector.config import Config
        >>> report = analyze_track("host", Path("examples/english_portrait/speech.wav"), language="en", config=Config())
        >>> report.delivery, report.speaking_intent
        (<Delivery.SPEECH: 'speech'>, <SpeakingIntent.GREET: 'greet'>)
    """
    audio_path = Path(audio_path)
    signal = load_audio(audio_path, sample_rate=WHISPER_SAMPLE_RATE)
    if signal.samples.size == 0:
        raise MediaError(audio_path, "has no audio samples", "Give an audio file with at least some sound in it.")
    duration_s = signal.duration_s
    frames = measure_frames(signal)
    if frames.active.any():
        transcript = transcribe(signal, language=language, config=config)
    else:
        logger.warning("%s is silent: no words, neutral emotion", audio_path)
        transcript = Transcript(words=[], language=base_language(language), language_probability=None)

    words = refine_words(transcript.words, frames)
    utterances = [
        Utterance(
            text=join_words([word.text for word in words[first : last + 1]]),
            start_s=words[first].start_s,
            end_s=words[last].end_s,
            first_word=first,
            last_word=last,
        )
        for first, last in split_utterances(words)
    ]
    pauses = find_pauses(words, frames, duration_s)
    prosody = measure_prosody(frames, words, utterances, pauses)
    delivery, delivery_confidence = classify_delivery(
        frames, utterances, prosody.speech_rate_wps, pulse_clarity(frames) if frames.voiced.any() else 0.0
    )
    tempo_bpm = estimate_tempo(frames) if delivery is not Delivery.SPEECH else None
    if tempo_bpm is not None:
        prosody = prosody.model_copy(update={"tempo_bpm": tempo_bpm})

    texts = [utterance.text for utterance in utterances]
    emotion, utterances = _estimate_emotions(frames, words, utterances, transcript.language, delivery, tempo_bpm)
    intents = [classify_intent(text) for text in texts]
    sung = delivery is Delivery.SINGING
    report = AudioReport(
        character_id=character_id,
        audio_path=audio_path,
        duration_s=duration_s,
        sample_rate_hz=signal.sample_rate,
        language=transcript.language,
        language_probability=transcript.language_probability,
        delivery=delivery,
        delivery_confidence=delivery_confidence,
        words=words,
        utterances=utterances,
        emotion=emotion,
        prosody=prosody,
        speaking_intent=track_intent(intents, sung=sung),
        intent_summary=summarize_intent(texts, intents, sung=sung) if frames.active.any() else _SILENT_SUMMARY,
    )
    logger.info(
        "%s: %d words, %s (%.2f), %s %d, %s",
        character_id, len(words), delivery.value, delivery_confidence, emotion.label.value, emotion.intensity,
        report.speaking_intent.value,
    )  # fmt: skip
    return report


def _speaking_rate(words: list[Word], seconds: float, unit: str) -> float | None:
    """Words (or, for Chinese, Japanese and Korean, characters) per second of speaking."""
    if not words or seconds <= 0:
        return None
    count = sum(len(word.text.strip("，。！？、,.!?")) for word in words) if unit == "chars" else len(words)
    return count / seconds


def _estimate_emotions(
    frames: FrameFeatures,
    words: list[Word],
    utterances: list[Utterance],
    language: str | None,
    delivery: Delivery,
    tempo_bpm: float | None,
) -> tuple[EmotionEstimate, list[Utterance]]:
    """The track's emotion, and the phrases whose own emotion differs from it.

    The track is read against a neutral speaker; each phrase against the track itself (the speaker's own
    baseline), so a speaker who is always loud does not make every phrase angry.
    """
    track = segment_features(frames)
    if not words and track.num_voiced == 0:
        return EmotionEstimate(label=Emotion.NEUTRAL, intensity=1, confidence=0.1), utterances
    unit = "chars" if base_language(language) in _CHARACTER_LANGUAGES else "words"
    speaking_s = sum(u.end_s - u.start_s for u in utterances)
    texts = [u.text for u in utterances]
    arousal = arousal_from(
        track,
        rate=_speaking_rate(words, speaking_s, unit),
        rate_unit=unit,
        exclaimed=exclaimed_share(texts),
        delivery=delivery,
        tempo_bpm=tempo_bpm,
    )
    valence, _ = text_valence(" ".join(texts))
    if delivery is Delivery.SINGING:
        valence *= 0.5  # Whisper mishears sung words: the lyrics' valence is weaker evidence than speech's
    evidence = min(1.0, (len(words) + track.num_voiced * frames.hop_s) / 30.0)
    emotion = label_emotion(arousal, valence, delivery=delivery, evidence=evidence)
    logger.debug("track emotion: arousal %.2f, valence %.2f -> %s", arousal, valence, emotion.label.value)

    track_rate = _speaking_rate(words, speaking_s, unit)
    track_exclaimed = exclaimed_share(texts)
    phrases: list[Utterance] = []
    for utterance in utterances:
        duration = utterance.end_s - utterance.start_s
        own_valence, num_cues = text_valence(utterance.text)
        exclaimed = exclaimed_share([utterance.text])
        shift = 0.0
        if duration >= _MIN_PHRASE_S:
            own = segment_features(frames, frames.span(utterance.start_s, utterance.end_s))
            phrase_words = words[utterance.first_word : utterance.last_word + 1]
            rate = _speaking_rate(phrase_words, duration, unit) if len(phrase_words) >= 3 else None
            shift = _relative_arousal(own, track, rate, track_rate, delivery)
        # A phrase gets its own emotion only on its own evidence: a clear change of voice against the speaker's
        # baseline, its own emotional words, or an exclamation. Otherwise it shares the track's.
        if abs(shift) < 0.5 and num_cues == 0 and exclaimed == 0.0:
            phrases.append(utterance)
            continue
        phrase_arousal = arousal - track_exclaimed + shift + exclaimed
        phrase_valence = own_valence if num_cues else valence
        estimate = label_emotion(
            phrase_arousal,
            phrase_valence,
            delivery=delivery,
            evidence=min(1.0, (utterance.last_word - utterance.first_word + 1) / 15.0),
        )
        # Near the track's own point a different label is only a quadrant boundary crossed by noise.
        moved = abs(phrase_arousal - arousal) >= 0.5 or abs(phrase_valence - valence) >= 0.3
        differs = moved and estimate.label is not emotion.label
        phrases.append(utterance.model_copy(update={"emotion": estimate}) if differs else utterance)
    return emotion, phrases


def _relative_arousal(
    own: SegmentFeatures,
    track: SegmentFeatures,
    rate: float | None,
    track_rate: float | None,
    delivery: Delivery,
) -> float:
    """How much more aroused a phrase sounds than the track: higher, wider, louder, faster, in z-units."""
    shifts: list[float] = [(own.energy_mean_dbfs - track.energy_mean_dbfs) / 4.0]
    if own.pitch_median_hz and track.pitch_median_hz:
        shifts.append(12.0 * math.log2(own.pitch_median_hz / track.pitch_median_hz) / 3.0)
    if own.pitch_range_semitones is not None and track.pitch_range_semitones is not None:
        shifts.append((own.pitch_range_semitones - track.pitch_range_semitones) / 3.0)
    if delivery is not Delivery.SINGING and rate is not None and track_rate:
        shifts.append((rate - track_rate) / (0.3 * track_rate))
    return float(np.clip(np.mean(shifts), -2.0, 2.0))
