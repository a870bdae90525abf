#!/usr/bin/env python3
"""Build the example jobs shipped in ``examples/``.

Each example is a folder with a ``job.yaml``, one or more reference images and
speech (or singing) audio. Images come from scikit-image's bundled photos and
all audio is synthesized with espeak-ng and processed with sox, so the examples
can be rebuilt byte for byte on any machine with the same tool versions:

    python examples/make_examples.py                 # all examples
    python examples/make_examples.py --only singing  # a subset

Requires ``espeak-ng`` and ``sox`` on PATH (``apt-get install espeak-ng sox``).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skdata

SR = 16_000  # every speech file is 16 kHz mono 16-bit
JPEG_QUALITY = 90
# -R seeds sox's random generators (pluck synth) so re-runs are byte-identical;
# -D disables dither so silence stays digital zero (and stays repeatable).
SOX = ("sox", "-R", "-D", "-V1")
PCM = ("-r", str(SR), "-c", "1", "-b", "16")


class ToolError(RuntimeError):
    """An external tool is missing or failed."""


# --------------------------------------------------------------------------- #
# External tools
# --------------------------------------------------------------------------- #


def require_tools() -> None:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        raise ToolError(
            f"missing required tool(s): {', '.join(missing)}. Install them with: apt-get install espeak-ng sox"
        )


def run(*args: str | Path) -> str:
    cmd = [str(a) for a in args]
    try:
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as err:
        raise ToolError(f"command failed ({err.returncode}): {cmd}\n{err.stderr.strip()}") from err
    return done.stdout


def sox(*args: str | Path) -> None:
    run(*SOX, *args)


def samples(n: int) -> str:
    """A sox time spec in samples, so cuts land exactly on the sample grid."""
    return f"{n}s"


def n_samples(path: Path) -> int:
    return int(run("sox", "--i", "-s", path))


def duration_s(path: Path) -> float:
    return float(run("sox", "--i", "-D", path))


def read_pcm(path: Path) -> np.ndarray:
    """Mono 16-bit WAV as float32 in [-1, 1)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            raise ValueError(f"{path}: expected mono 16-bit PCM")
        raw = wav.readframes(wav.getnframes())
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0


# --------------------------------------------------------------------------- #
# Speech
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Voice:
    name: str  # espeak-ng voice (+variant), e.g. "en-us+f3"
    rate: int  # words per minute
    pitch: int  # espeak-ng base pitch, 0..99
    amp: int = 100


def espeak(text: str, voice: Voice, out: Path, *, ssml: bool = False) -> None:
    args: list[str | Path] = ["espeak-ng", "-v", voice.name, "-s", str(voice.rate)]
    args += ["-p", str(voice.pitch), "-a", str(voice.amp), "-w", out]
    if ssml:
        args.append("-m")
    run(*args, text)


def trimmed_clip(text: str, voice: Voice, out: Path, *, ssml: bool = False) -> Path:
    """Synthesize ``text`` as 16 kHz mono with espeak's lead/trail silence cut.

    Trimming lets us set every pause ourselves and makes clip boundaries equal
    the audible speech, which the dialogue's turn timings rely on.
    """
    raw = out.with_suffix(".raw.wav")
    espeak(text, voice, raw, ssml=ssml)
    edge = ("silence", "1", "0.005", "0.1%")  # -60 dB: keeps soft fricatives
    sox(raw, *PCM, out, *edge, "reverse", *edge, "reverse")
    if n_samples(out) < SR // 10:
        raise ToolError(f"espeak-ng produced (almost) no audio for voice {voice.name}: {text!r}")
    return out


def silence(n: int, out: Path) -> Path:
    # Format options placed before -n describe the null input itself; after it
    # they would only describe the output, and sox would trim at its 48 kHz default.
    sox(*PCM, "-n", *PCM, out, "trim", "0", samples(n))
    return out


def concat(parts: Sequence[Path], out: Path, *effects: str) -> Path:
    sox(*parts, out, *effects)
    return out


def speak_script(
    paragraphs: Sequence[Sequence[str]],
    voice: Voice,
    out: Path,
    tmp: Path,
    *,
    sentence_gap_s: float = 0.35,
    paragraph_gap_s: float = 0.9,
) -> Path:
    """Speak sentence by sentence so pauses are explicit and natural-length."""
    lead = silence(round(0.3 * SR), tmp / "lead.wav")
    s_gap = silence(round(sentence_gap_s * SR), tmp / "s_gap.wav")
    p_gap = silence(round(paragraph_gap_s * SR), tmp / "p_gap.wav")
    parts: list[Path] = [lead]
    for p, sentences in enumerate(paragraphs):
        if p:
            parts.append(p_gap)
        for s, sentence in enumerate(sentences):
            if s:
                parts.append(s_gap)
            parts.append(trimmed_clip(sentence, voice, tmp / f"p{p}s{s}.wav"))
    parts.append(lead)  # same short tail so the last word is not clipped by players
    extra = ("-C", "8") if out.suffix == ".flac" else ()
    # Concatenate to an intermediate WAV, then write the target with a peak
    # normalization so every example plays at a similar level.
    joined = concat(parts, tmp / "joined.wav")
    sox(joined, *PCM, *extra, out, "gain", "-n", "-1")
    return out


# --------------------------------------------------------------------------- #
# Images
# --------------------------------------------------------------------------- #


def astronaut() -> Image.Image:
    return Image.fromarray(skdata.astronaut())


def cameraman() -> Image.Image:
    # camera() is grayscale; the pipeline expects RGB references.
    return Image.fromarray(skdata.camera()).convert("RGB")


def cat() -> Image.Image:
    return Image.fromarray(skdata.chelsea())


def save_jpeg(img: Image.Image, out: Path) -> None:
    img.convert("RGB").save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)


# --------------------------------------------------------------------------- #
# job.yaml
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Character:
    id: str
    name: str
    audio: str
    reference_image: str | None = None
    scene_box: tuple[float, float, float, float] | None = None


def yaml_str(text: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar.
    return json.dumps(text, ensure_ascii=False)


def job_yaml(
    comment: str,
    prompt: str,
    language: str,
    characters: Sequence[Character],
    scene_image: str | None = None,
) -> str:
    lines = [
        f"# {comment}",
        'schema_version: "1"',
        "kind: job",
        f"prompt: {yaml_str(prompt)}",
        f"language: {language}          # BCP-47 language hint: en, zh, ...",
    ]
    if scene_image:
        lines.append(f"scene_image: {scene_image}   # shared frame; characters point into it")
    lines.append("characters:")
    for c in characters:
        lines += [f"  - id: {c.id}", f"    name: {c.name}"]
        if c.reference_image:
            lines.append(f"    reference_image: {c.reference_image}")
        if c.scene_box:
            box = ", ".join(f"{v:.3f}" for v in c.scene_box)
            lines.append(f"    scene_box_xyxy_norm: [{box}]   # x0, y0, x1, y1 in 0..1")
        lines.append(f"    audio: {c.audio}")
    lines += [
        "output:",
        "  resolution: 480p     # 480p | 720p | 1080p",
        "  aspect: auto         # auto | 16:9 | 9:16 | 1:1 | 4:3 | 3:4",
        "  fps: 25",
        "  seed: 0",
        "director:",
        "  max_rounds: 3",
        "  provider: offline",
        "render:",
        "  backend: preview",
        "  executor: local",
    ]
    return "\n".join(lines) + "\n"


def write_job(
    folder: Path,
    comment: str,
    prompt: str,
    language: str,
    characters: Sequence[Character],
    scene_image: str | None = None,
) -> None:
    text = job_yaml(comment, prompt, language, characters, scene_image)
    (folder / "job.yaml").write_text(text, encoding="utf-8")


def check_duration(path: Path, lo: float, hi: float) -> float:
    """Fail loudly if a text/voice change pushed a clip outside its target."""
    d = duration_s(path)
    if not lo <= d <= hi:
        raise ToolError(f"{path}: duration {d:.2f}s is outside the target {lo}-{hi}s")
    return d


# --------------------------------------------------------------------------- #
# 1. english_portrait
# --------------------------------------------------------------------------- #

EILEEN = Voice("en-us+f3", rate=160, pitch=60)


def build_english_portrait(folder: Path, tmp: Path) -> None:
    save_jpeg(astronaut(), folder / "reference.jpg")
    text = [
        [
            "Hi there, and welcome!",
            "I'm Eileen, and I'm so glad you stopped by today.",
            "I'm going to show you what it's really like to live and work in space.",
            "Let's have some fun!",
        ]
    ]
    speak_script(text, EILEEN, folder / "speech.wav", tmp)
    check_duration(folder / "speech.wav", 10.0, 14.0)
    write_job(
        folder,
        "English speech, one portrait: the quickest example.",
        "A friendly astronaut greets the audience, smiling and nodding warmly, with a slow push-in at the end.",
        "en",
        [Character("host", "Eileen", "speech.wav", reference_image="reference.jpg")],
    )


# --------------------------------------------------------------------------- #
# 2. mandarin_portrait
# --------------------------------------------------------------------------- #

# espeak-ng 1.51's plain "cmn" voice reads Chinese characters as pinyin with the
# tone digits spoken in *English* ("ni three hao three", espeak-ng issue #1236);
# "cmn-latn-pinyin" is the same Mandarin language and pronounces them properly.
LI_WEI = Voice("cmn-latn-pinyin", rate=180, pitch=40)


def require_mandarin_phonemes(text: str, voice: Voice) -> None:
    """Refuse to ship Mandarin that espeak-ng would read with English words in it."""
    phonemes = run("espeak-ng", "-q", "-x", "-v", voice.name, text)
    if "(en)" in phonemes:
        raise ToolError(f"espeak-ng voice {voice.name} switches to English for {text!r}: {phonemes.strip()}")


def build_mandarin_portrait(folder: Path, tmp: Path) -> None:
    save_jpeg(cameraman(), folder / "reference.jpg")
    text = [
        [
            "大家好，我是一名摄影师。",
            "今天我想带你们看看这座美丽的城市。",
            "请跟着我的镜头，一起出发吧！",
        ]
    ]
    for sentence in text[0]:
        require_mandarin_phonemes(sentence, LI_WEI)
    speak_script(text, LI_WEI, folder / "speech.wav", tmp, sentence_gap_s=0.4)
    check_duration(folder / "speech.wav", 8.0, 12.0)
    write_job(
        folder,
        "Mandarin speech (language: zh), grayscale photo converted to RGB.",
        "A cameraman speaks calmly and proudly about his city while looking "
        "through his camera, then turns toward the viewer and smiles at the end; "
        "the camera slowly pans left.",
        "zh",
        [Character("cameraman", "Li Wei", "speech.wav", reference_image="reference.jpg")],
    )


# --------------------------------------------------------------------------- #
# 3. singing
# --------------------------------------------------------------------------- #

BPM = 90
INTRO_BEATS = 2  # accompaniment alone before the voice comes in
SINGER = Voice("en-us+f4", rate=80, pitch=50)  # 80 wpm is espeak-ng's slowest
# f4 has no breath noise, so its vowels are clean harmonic tones.
# Measured espeak-ng 1.51 "en-us+f4" F0 (Hz) for a few -p values. Only a first
# guess so the voice starts near each note; sox then corrects the residual
# from the pitch actually measured, which keeps formant shifting small.
ESPEAK_PITCH_HZ = ((20, 114.0), (40, 143.0), (50, 160.0), (60, 180.0), (80, 229.0), (99, 291.0))


@dataclass(frozen=True)
class Note:
    lyric: str  # as printed in the lyrics
    say: str  # spelling that makes espeak-ng say the syllable as sung
    midi: int
    beats: float


# "Stars above the quiet sea, sing a lullaby to me." C major, I-vi-IV-V-I,
# stepwise melody between A3 and E4 so the pitch contour reads as a tune.
MELODY = (
    Note("Stars", "stars", 64, 1.5), Note("a-", "uh", 62, 0.5), Note("bove", "buv", 60, 1.0),
    Note("the", "thuh", 62, 1.0),
    Note("qui-", "kwy", 64, 1.0), Note("et", "et", 62, 1.0), Note("sea,", "sea", 60, 2.0),
    Note("sing", "sing", 60, 1.0), Note("a", "uh", 57, 1.0), Note("lul-", "lull", 60, 1.0),
    Note("la-", "luh", 62, 1.0),
    Note("by", "bye", 62, 2.0), Note("to", "too", 59, 2.0),
    Note("me.", "me", 60, 3.0),
)  # fmt: skip
# (root, third, fifth) MIDI notes per chord, and how many beats it lasts.
CHORDS = (
    ((48, 52, 55), INTRO_BEATS + 4),  # C (intro + bar 1)
    ((45, 48, 52), 4),  # Am
    ((41, 45, 48), 4),  # F
    ((43, 47, 50), 4),  # G
    ((48, 52, 55), 3),  # C, final held note
)


# Null input with one channel per chord tone (synth fills channel by channel;
# "remix -" then folds them to mono). sox's pluck only runs at 44.1-48 kHz, so
# synthesize at 48 kHz, an exact multiple of SR, and let sox resample.
SYNTH_SR = 48_000
CHORD_SRC = ("-r", str(SYNTH_SR), "-c", "3", "-n")


def synth_len(n: int) -> str:
    """``n`` output samples expressed in the 48 kHz synth input's samples."""
    return samples(n * SYNTH_SR // SR)


def midi_hz(m: float) -> float:
    return 440.0 * 2.0 ** ((m - 69) / 12)


def beat_sample(beat: float) -> int:
    """Absolute sample of a beat; rounding per beat keeps the grid drift-free."""
    return round(beat * SR * 60 / BPM)


def espeak_pitch_for(hz: float) -> int:
    ps, fs = zip(*ESPEAK_PITCH_HZ, strict=True)
    p = np.interp(math.log(hz), np.log(fs), ps)
    return round(float(np.clip(p, 0, 99)))


def f0_frames(x: np.ndarray, hop: int = SR // 100, win: int = SR // 25) -> np.ndarray:
    """Autocorrelation F0 per frame (Hz, 0 where unvoiced). Small and robust
    enough for clean synthetic speech; we only need a median and a voiced span."""
    lo, hi = SR // 500, SR // 70
    out = np.zeros(max(0, (len(x) - win) // hop + 1))
    for i in range(len(out)):
        f = x[i * hop : i * hop + win]
        f = f - f.mean()
        if np.sqrt(np.mean(f * f)) < 0.02:
            continue
        ac = np.correlate(f, f, "full")[win - 1 :]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.5 * ac[0]:
            out[i] = SR / lag
    return out


def sing_note(note: Note, slot: int, tmp: Path, idx: int) -> Path:
    """One syllable, pitched to its note and sustained on its vowel for ``slot`` samples."""
    target = midi_hz(note.midi)
    # range="x-low" flattens espeak's intonation, close to a held sung pitch.
    ssml = f'<speak><prosody range="x-low">{note.say}</prosody></speak>'
    voice = Voice(SINGER.name, SINGER.rate, espeak_pitch_for(target))
    syl = trimmed_clip(ssml, voice, tmp / f"syl{idx}.wav", ssml=True)
    x = read_pcm(syl)
    f0 = f0_frames(x)
    voiced = np.flatnonzero(f0)
    if voiced.size == 0:
        raise ToolError(f"no voiced frames in sung syllable {note.say!r}")
    cents = 1200 * math.log2(target / float(np.median(f0[voiced])))
    hop = SR // 100
    # Voiced span in samples; +4 hops reaches the end of the last voiced window.
    v0, v1 = int(voiced[0]) * hop, min(len(x), (int(voiced[-1]) + 4) * hop)
    release = round(0.06 * SR)  # a breath between notes keeps the beat audible
    keep = slot - release
    body_target = keep - v0 - (len(x) - v1)
    if body_target >= 0.8 * (v1 - v0):
        # Sustain only the voiced core (the vowel), as a singer would, leaving
        # the consonants at natural speed.
        head = tmp / f"head{idx}.wav"
        body = tmp / f"body{idx}.wav"
        tail = tmp / f"tail{idx}.wav"
        sox(syl, head, "trim", "0", samples(v0))
        sox(syl, body, "trim", samples(v0), samples(v1 - v0), "tempo", f"{(v1 - v0) / body_target:.4f}")
        sox(syl, tail, "trim", samples(v1))
        parts = [head, body, tail]
    else:
        # Short note: squeeze the whole syllable into it.
        squeezed = tmp / f"sq{idx}.wav"
        sox(syl, squeezed, "tempo", f"{len(x) / keep:.4f}")
        parts = [squeezed]
    out = tmp / f"note{idx}.wav"
    concat(
        parts, out,
        "pitch", f"{cents:.1f}",
        "trim", "0", samples(keep),
        "fade", "t", "0.01", samples(keep), "0.05",
        "pad", "0", samples(slot), "trim", "0", samples(slot),
    )  # fmt: skip
    return out


def accompaniment(tmp: Path, total: int) -> Path:
    """Soft pad chord per bar plus a plucked chord on every beat (a steady pulse)."""
    parts: list[Path] = []
    beat = 0
    for c, (chord, beats) in enumerate(CHORDS):
        freqs = [f"{midi_hz(m):.2f}" for m in chord]
        for b in range(beats):
            n = beat_sample(beat + 1) - beat_sample(beat)
            out = tmp / f"acc{c}_{b}.wav"
            # Root an octave down on the bar's first beat gives a downbeat accent.
            notes = freqs if b % 4 else [f"{midi_hz(chord[0] - 12):.2f}", *freqs[1:]]
            sox(*CHORD_SRC, *PCM, out,
                "synth", synth_len(n), *(w for f in notes for w in ("pluck", f)),
                "remix", "-", "gain", "-n", "-6")  # fmt: skip
            parts.append(out)
            beat += 1
    plucks = concat(parts, tmp / "plucks.wav")
    pads: list[Path] = []
    beat = 0
    for c, (chord, beats) in enumerate(CHORDS):
        n = beat_sample(beat + beats) - beat_sample(beat)
        out = tmp / f"pad{c}.wav"
        sox(*CHORD_SRC, *PCM, out,
            "synth", synth_len(n), *(w for m in chord for w in ("triangle", f"{midi_hz(m):.2f}")),
            "remix", "-", "gain", "-n", "-12", "fade", "t", "0.15", samples(n), "0.15")  # fmt: skip
        pads.append(out)
        beat += beats
    pad = concat(pads, tmp / "pads.wav")
    out = tmp / "accompaniment.wav"
    sox("-m", plucks, pad, out, "trim", "0", samples(total))
    return out


def build_singing(folder: Path, tmp: Path) -> None:
    # Tighter crop around the face and shoulders (the ring of the suit).
    save_jpeg(astronaut().crop((65, 0, 385, 384)), folder / "reference.jpg")
    total_beats = sum(b for _, b in CHORDS)
    if INTRO_BEATS + sum(n.beats for n in MELODY) != total_beats:
        raise ValueError("melody and chords must span the same number of beats")
    parts = [silence(beat_sample(INTRO_BEATS), tmp / "intro.wav")]
    beat = float(INTRO_BEATS)
    for i, note in enumerate(MELODY):
        slot = beat_sample(beat + note.beats) - beat_sample(beat)
        parts.append(sing_note(note, slot, tmp, i))
        beat += note.beats
    # A little room reverb glues the syllables into one sung line.
    vocal = concat(parts, tmp / "vocal.wav", "reverb", "25", "50", "60")
    total = beat_sample(total_beats)
    acc = accompaniment(tmp, total)
    # Voice on top, accompaniment quiet underneath (about -12 dB).
    sox("-m", "-v", "1.0", vocal, "-v", "0.25", acc, *PCM, folder / "song.wav",
        "trim", "0", samples(total), "fade", "t", "0", samples(total), "1.0",
        "gain", "-n", "-1")  # fmt: skip
    check_duration(folder / "song.wav", 12.0, 16.0)
    write_job(
        folder,
        "Singing, not speech: sustained notes on a steady 90 BPM beat over soft chords.",
        "A tender ballad: the astronaut sings softly with her eyes half closed, "
        "swaying gently to the beat, and looks up with a small smile on the last note "
        "while the camera slowly pulls back.",
        "en",
        [Character("singer", "Eileen", "song.wav", reference_image="reference.jpg")],
    )


# --------------------------------------------------------------------------- #
# 4. dialogue
# --------------------------------------------------------------------------- #

HOST = Voice("en-us+f3", rate=170, pitch=62)
GUEST = Voice("en-us", rate=165, pitch=30)
TURN_GAP_S = 0.4


@dataclass(frozen=True)
class Turn:
    speaker: str
    text: str
    overlap_s: float = 0.0  # start this long before the previous turn ends


DIALOGUE = (
    Turn("host", "Welcome back! My guest today films rocket launches."),
    Turn("guest", "Thanks for having me. It's a dream job, mostly."),
    Turn("host", "So tell me, what's the hardest part?"),
    # The guest jumps in before the host has quite finished: a real overlap.
    Turn("guest", "Oh, the waiting! Sometimes we wait days for good weather.", 1.0),
    Turn("host", "Well, this was worth the wait. Thank you!"),
)


def speech_span(x: np.ndarray, lo: int, hi: int, thresh: float = 0.001) -> tuple[int, int]:
    """First and last sample of ``x`` in [lo, hi) above -60 dB, the clips' trim level."""
    idx = np.flatnonzero(np.abs(x[max(0, lo) : hi]) > thresh)
    if idx.size == 0:
        raise ToolError(f"no speech found between samples {lo} and {hi}")
    return max(0, lo) + int(idx[0]), max(0, lo) + int(idx[-1]) + 1


def build_dialogue(folder: Path, tmp: Path) -> None:
    scene = Image.new("RGB", (1024, 512))
    scene.paste(astronaut(), (0, 0))
    scene.paste(cameraman(), (512, 0))
    save_jpeg(scene, folder / "scene.jpg")

    voices = {"host": HOST, "guest": GUEST}
    clips = [trimmed_clip(t.text, voices[t.speaker], tmp / f"turn{i}.wav") for i, t in enumerate(DIALOGUE)]
    # Schedule turns in samples from the real clip lengths.
    starts: list[int] = []
    prev_end = round(0.4 * SR) - round(TURN_GAP_S * SR)  # first turn starts at 0.4 s
    for turn, clip in zip(DIALOGUE, clips, strict=True):
        # A positive overlap pulls the turn back over the previous one's end.
        start = prev_end - round(turn.overlap_s * SR) if turn.overlap_s else prev_end + round(TURN_GAP_S * SR)
        starts.append(start)
        prev_end = start + n_samples(clip)
    total = prev_end + round(0.5 * SR)

    # Each track is its speaker's clips laid on digital silence, same length.
    for speaker in voices:
        parts: list[Path] = []
        pos = 0
        for i, (turn, clip) in enumerate(zip(DIALOGUE, clips, strict=True)):
            if turn.speaker != speaker:
                continue
            if starts[i] > pos:
                parts.append(silence(starts[i] - pos, tmp / f"{speaker}_gap{i}.wav"))
            parts.append(clip)
            pos = starts[i] + n_samples(clip)
        parts.append(silence(total - pos, tmp / f"{speaker}_end.wav"))
        concat(parts, folder / f"{speaker}.wav")
    for speaker in voices:
        if n_samples(folder / f"{speaker}.wav") != total:
            raise ToolError(f"{speaker}.wav is not {total} samples long")
    check_duration(folder / "host.wav", 14.0, 20.0)

    # Turn timings are measured on the written tracks, not taken from the plan.
    tracks = {s: read_pcm(folder / f"{s}.wav") for s in voices}
    turns = []
    for turn, start, clip in zip(DIALOGUE, starts, clips, strict=True):
        pad = SR // 10
        a, b = speech_span(tracks[turn.speaker], start - pad, start + n_samples(clip) + pad)
        turns.append(
            {
                "speaker": turn.speaker,
                "start_s": round(a / SR, 3),
                "end_s": round(b / SR, 3),
                "text": turn.text,
            }
        )
    doc = {
        "duration_s": round(total / SR, 3),
        "tracks": {s: f"{s}.wav" for s in voices},
        "turns": turns,
    }
    (folder / "turns.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    write_job(
        folder,
        "Two characters in one shared scene, separate audio tracks, turn-taking with one overlap.",
        "A cheerful talk-show host interviews a cameraman; she listens and nods while he "
        "speaks, he laughs when he cuts in about the waiting, and both smile at each other "
        "at the end as the camera slowly zooms out to show them together.",
        "en",
        [
            Character("host", "Eileen", "host.wav", scene_box=(0.02, 0.03, 0.36, 1.0)),
            Character("guest", "Sam", "guest.wav", scene_box=(0.5, 0.12, 0.83, 1.0)),
        ],
        scene_image="scene.jpg",
    )


# --------------------------------------------------------------------------- #
# 5. cat
# --------------------------------------------------------------------------- #

CHELSEA = Voice("en-gb+f4", rate=185, pitch=88)


def build_cat(folder: Path, tmp: Path) -> None:
    save_jpeg(cat(), folder / "reference.jpg")
    text = [
        [
            "Hello, human! I'm Chelsea, the fluffiest cat in the whole house.",
            "Now, would you please bring me a tiny snack, right now?",
        ]
    ]
    speak_script(text, CHELSEA, folder / "speech.wav", tmp)
    check_duration(folder / "speech.wav", 6.0, 10.0)
    write_job(
        folder,
        "A non-human face: a talking cat with a high, playful voice.",
        "A playful cat talks to the viewer with wide eyes and a cheeky expression, "
        "tilting its head, and blinks slowly at the end while the camera pushes in.",
        "en",
        [Character("cat", "Chelsea", "speech.wav", reference_image="reference.jpg")],
    )


# --------------------------------------------------------------------------- #
# 6. long_talk
# --------------------------------------------------------------------------- #

LECTURER = Voice("en-us+f3", rate=160, pitch=55)
LECTURE = (
    (
        "Good afternoon, everyone.",
        "Today I want to tell you how astronauts train for a spaceflight.",
        "Most people picture the rocket and the launch, but almost all of our time is spent on the ground, learning.",
    ),
    (
        "Training takes about two years.",
        "We study the spacecraft until we know every switch and every warning light.",
        "We practice emergencies again and again, because up there, there is no one to call for help.",
    ),
    (
        "Our bodies need training, too.",
        "We run, we lift weights, and we learn to work with very little sleep.",
        "Some days are exhausting, and honestly, some days I wondered why I signed up at all.",
    ),
    (
        "But then came launch day!",
        "I still remember the engines shaking the whole cabin, and the sudden silence when they stopped.",
        "I floated up from my seat, looked out of the window, and saw the Earth, blue and bright.",
        "In that moment, every hard day of training was worth it.",
    ),
    (
        "So if you dream of going to space, start today.",
        "Stay curious, and never give up.",
        "Thank you!",
    ),
)


def build_long_talk(folder: Path, tmp: Path) -> None:
    save_jpeg(astronaut(), folder / "reference.jpg")
    speak_script(LECTURE, LECTURER, folder / "audio.flac", tmp, sentence_gap_s=0.45, paragraph_gap_s=1.0)
    check_duration(folder / "audio.flac", 62.0, 80.0)
    write_job(
        folder,
        "Long input (over a minute, FLAC): tests chunking and keeping identity over time.",
        "An astronaut gives a calm, thoughtful talk about training, speaking seriously with "
        "small hand gestures; halfway through, when she reaches launch day, her mood turns "
        "excited and emotional, her eyes light up, and the camera slowly pushes in until "
        "the end.",
        "en",
        [Character("host", "Eileen", "audio.flac", reference_image="reference.jpg")],
    )


# --------------------------------------------------------------------------- #
# Driver
# --------------------------------------------------------------------------- #

EXAMPLES: dict[str, Callable[[Path, Path], None]] = {
    "english_portrait": build_english_portrait,
    "mandarin_portrait": build_mandarin_portrait,
    "singing": build_singing,
    "dialogue": build_dialogue,
    "cat": build_cat,
    "long_talk": build_long_talk,
}
AUDIO_SUFFIXES = {".wav", ".flac"}


def build(name: str, out_root: Path) -> None:
    folder = out_root / name
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"codirector-{name}-") as tmp:
        EXAMPLES[name](folder, Path(tmp))
    audio = sorted(p for p in folder.iterdir() if p.suffix in AUDIO_SUFFIXES)
    lengths = ", ".join(f"{p.name} {duration_s(p):.2f}s" for p in audio)
    size_kb = sum(p.stat().st_size for p in folder.iterdir()) / 1024
    print(f"{name}: {lengths}; {size_kb:.0f} KiB")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="folder to write the example folders into (default: next to this script)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(EXAMPLES),
        metavar="NAME",
        help=f"build only this example (repeatable); one of: {', '.join(EXAMPLES)}",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        require_tools()
        for name in args.only or EXAMPLES:
            build(name, args.out)
    except ToolError as err:
        print(f"make_examples: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
