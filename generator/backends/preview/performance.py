"""What each character does over time: the mouth from their own audio, and seeded head and body motion.

The preview reads each character's voice the way an audio-driven DiT is conditioned on it: per frame, and only
that character's own track drives their mouth (KlingAvatar 2.0 sec. 3.3: identity-specific audio injection). Head
motion is smooth seeded noise that grows while the character speaks; a silent character breathes, and while someone
else speaks, listens with slow small nods. Everything is a function of the timeline time and the seed, so two
sub-clips rendered apart (Kling-Avatar sec. 2.2's parallel sub-clips) agree on the pose at the frame they share.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["HeadPose", "Performer", "SmoothNoise", "Voice", "stream_seed"]

# Mouth opening from loudness: closed at or below -42 dBFS (room noise, breaths), fully open from -14 dBFS (the
# loud syllables of the examples' speech, whose median is -22 dBFS).
_CLOSED_DB = -42.0
_OPEN_DB = -14.0
# Mouth shape from the spectral centroid: dark vowels (o, u: energy low, centroid near 1 kHz) round the lips,
# bright ones and fricatives (i, e, s: 2-3 kHz) spread them. The examples' voiced frames span 1.0-3.3 kHz.
_ROUND_HZ, _WIDE_HZ = 900.0, 2300.0
# Speaking activity: loudness over a 0.8 s window, so a character counts as speaking through the gaps between words.
_ACTIVITY_HALF_S = 0.4
_ACTIVE_FLOOR_DB, _ACTIVE_FULL_DB = -45.0, -28.0


def stream_seed(seed: int, *names: str) -> list[int]:
    """A `numpy.random.default_rng` seed for one named stream of a request (a character's head, the camera).

    Keyed by stable names, not positions, so adding a character does not change another one's motion.
    """
    return [seed, *(zlib.crc32(name.encode()) for name in names)]


@dataclass(frozen=True)
class SmoothNoise:
    """Smooth seeded noise: per channel a sum of three sinusoids at random frequencies and phases, about -1 to 1."""

    frequencies_hz: np.ndarray  # (channels, 3)
    phases: np.ndarray  # (channels, 3)
    weights: np.ndarray  # (channels, 3), each row scaled so the channel's standard deviation is 0.5

    @classmethod
    def seeded(cls, seed: Sequence[int], channels: int, low_hz: float, high_hz: float) -> SmoothNoise:
        rng = np.random.default_rng(list(seed))
        frequencies = rng.uniform(low_hz, high_hz, size=(channels, 3))
        phases = rng.uniform(0.0, 2 * np.pi, size=(channels, 3))
        weights = rng.uniform(0.5, 1.0, size=(channels, 3))
        weights *= 0.5 / np.sqrt((weights**2).sum(axis=1, keepdims=True) / 2)  # var of a*sin is a^2/2
        return cls(frequencies, phases, weights)

    def __call__(self, time_s: float) -> np.ndarray:
        return (self.weights * np.sin(2 * np.pi * self.frequencies_hz * time_s + self.phases)).sum(axis=1)


@dataclass(frozen=True)
class Voice:
    """One character's audio as the frames of a request read it.

    Attributes:
        samples: mono float32 starting at the request's first frame; None for a character who does not speak.
        sample_rate: samples per second.
        fps: frames per second; frame `i` reads the audio around `i / fps` s.
    """

    samples: np.ndarray | None
    sample_rate: int
    fps: float

    def _window(self, samples: np.ndarray, index: int, half_s: float) -> np.ndarray:
        center = round(index / self.fps * self.sample_rate)
        half = max(1, int(half_s * self.sample_rate))
        return samples[max(0, center - half) : max(0, center + half)]

    def mouth(self, index: int) -> tuple[float, float]:
        """(opening, roundness) at frame `index`, both 0-1: loudness over two frames, and the vowel's brightness."""
        if self.samples is None:
            return 0.0, 0.5
        window = self._window(self.samples, index, 1.0 / self.fps)
        if window.size < 16:
            return 0.0, 0.5
        tapered = window * np.hanning(window.size)
        rms = float(np.sqrt(np.mean(tapered**2) / 0.375))  # 0.375: the mean square of a Hann window
        loudness = 20 * np.log10(rms + 1e-9)
        # a soft knee: quiet syllables part the lips, only the loud ones open the jaw wide
        opening = float(np.clip((loudness - _CLOSED_DB) / (_OPEN_DB - _CLOSED_DB), 0.0, 1.0)) ** 1.4
        spectrum = np.abs(np.fft.rfft(tapered))
        frequencies = np.fft.rfftfreq(tapered.size, 1.0 / self.sample_rate)
        band = (frequencies > 90) & (frequencies < 5000)
        centroid = float((spectrum[band] * frequencies[band]).sum() / (spectrum[band].sum() + 1e-9))
        roundness = float(np.clip((_WIDE_HZ - centroid) / (_WIDE_HZ - _ROUND_HZ), 0.0, 1.0))
        return opening, roundness

    def activity(self, index: int) -> float:
        """How much the character is speaking around frame `index`, 0-1, smoothed over 0.8 s."""
        if self.samples is None:
            return 0.0
        window = self._window(self.samples, index, _ACTIVITY_HALF_S)
        if window.size == 0:
            return 0.0
        loudness = 10 * np.log10(float(np.mean(window.astype(np.float64) ** 2)) + 1e-12)
        return float(np.clip((loudness - _ACTIVE_FLOOR_DB) / (_ACTIVE_FULL_DB - _ACTIVE_FLOOR_DB), 0.0, 1.0))


@dataclass(frozen=True)
class HeadPose:
    """A head's offset from the reference pose at one frame.

    Attributes:
        rotation_deg: roll about the neck, degrees, positive counter-clockwise on screen.
        shift_x: sideways shift, shares of the face width.
        shift_y: vertical shift (positive down), shares of the face height.
        breath: chest rise, shares of the face height (positive up).
    """

    rotation_deg: float = 0.0
    shift_x: float = 0.0
    shift_y: float = 0.0
    breath: float = 0.0


# Amplitudes at motion=1, in face units: a talking head turns and tilts a few degrees and moves a few percent of its
# width; an idle one a third of that. Listening nods are slow (about one every two seconds) and small.
_ROLL_DEG, _SHIFT_X, _SHIFT_Y = 2.5, 0.035, 0.02
_IDLE_SHARE = 0.35
_SYLLABLE_BOB = 0.012  # the head dips a little on loud syllables
_NOD_DEPTH, _NOD_HZ = 0.03, 0.5
_BREATH_DEPTH, _BREATH_HZ = 0.012, 0.27


class Performer:
    """One character's performance over a request: mouth from their own voice, head and body from the seed.

    Args:
        character_id: whose performance this is (also names their noise stream).
        seed: the request's seed.
        voice: this character's audio.
        others: the other characters' audio (for listening).
        motion: scale of the head and body motion (the backend's `motion` option).
        mouth_gain: scale of the mouth opening (the backend's `mouth_gain` option).
    """

    def __init__(
        self, character_id: str, seed: int, voice: Voice, others: Sequence[Voice], motion: float, mouth_gain: float
    ) -> None:
        self.character_id = character_id
        self.voice = voice
        self.others = tuple(other for other in others if other.samples is not None)
        self.motion = motion
        self.mouth_gain = mouth_gain
        self._head = SmoothNoise.seeded(stream_seed(seed, "head", character_id), 3, 0.12, 0.6)
        rng = np.random.default_rng(stream_seed(seed, "rhythm", character_id))
        self._nod_phase, self._breath_phase = rng.uniform(0, 2 * np.pi, size=2)
        self._heard: tuple[int, tuple[float, float]] = (-1, (0.0, 0.5))

    def _voice_mouth(self, index: int) -> tuple[float, float]:
        if self._heard[0] != index:  # the mouth and the head both read it: one spectrum per frame
            self._heard = (index, self.voice.mouth(index))
        return self._heard[1]

    def mouth(self, index: int) -> tuple[float, float]:
        """(opening 0-1.5, roundness 0-1) at frame `index`; opening is scaled by `mouth_gain`."""
        opening, roundness = self._voice_mouth(index)
        return min(1.5, opening * self.mouth_gain), roundness

    def pose(self, index: int, time_s: float) -> HeadPose:
        """Head and chest offset at frame `index` (timeline time `time_s`)."""
        if self.motion <= 0:
            return HeadPose()
        speaking = self.voice.activity(index)
        listening = max((other.activity(index) for other in self.others), default=0.0) * (1.0 - speaking)
        roll, sway, bob = self._head(time_s)
        energy = self.motion * (_IDLE_SHARE + (1 - _IDLE_SHARE) * speaking)
        nod = 0.5 - 0.5 * np.cos(2 * np.pi * _NOD_HZ * time_s + self._nod_phase)
        syllable = self._voice_mouth(index)[0] * speaking
        return HeadPose(
            rotation_deg=float(energy * _ROLL_DEG * roll),
            shift_x=float(energy * _SHIFT_X * sway),
            shift_y=float(
                energy * _SHIFT_Y * bob + self.motion * (_NOD_DEPTH * listening * nod + _SYLLABLE_BOB * syllable)
            ),
            breath=float(self.motion * _BREATH_DEPTH * np.sin(2 * np.pi * _BREATH_HZ * time_s + self._breath_phase)),
        )
