"""Stage 7, compose: the finished clips joined into one MP4 (H.264) with the audio muxed in (AAC).

The clips' packets are copied, not re-encoded, and the audio is encoded in step with them, so memory stays flat
however long the video is. The first audio stream is the mix of every character's track (what a viewer hears);
with two or more speaking characters, each character's own track follows as a further stream, titled by id.
The audio is cut or padded to exactly the video's frames, so both streams end together.
"""

from __future__ import annotations

import hashlib

import numpy as np

from codirector.generator.artifacts import ComposedVideo, FileRef, FinalClips
from codirector.generator.context import RenderRun
from codirector.generator.inputs import SAMPLE_RATE, load_track
from codirector.generator.videoio import concat_mp4

__all__ = ["compose", "mixed_audio"]

STAGE = "compose"


def mixed_audio(run: RenderRun, num_frames: int) -> list[tuple[str, np.ndarray]]:
    """(title, samples) per audio stream: the mix first, then each speaking character's track if there are two+."""
    length = round(num_frames / run.inputs.fps * SAMPLE_RATE)
    tracks = []
    for character in run.inputs.characters:
        if character.audio is None:
            continue
        samples = np.zeros(length, np.float32)
        track = load_track(character.audio.path, character.audio.sha256)[:length]
        samples[: len(track)] = track
        tracks.append((character.id, samples))
    mix = np.clip(np.sum([samples for _, samples in tracks], axis=0), -1.0, 1.0).astype(np.float32)
    return [("mix", mix)] + (tracks if len(tracks) > 1 else [])


def compose(run: RenderRun, clips: FinalClips) -> ComposedVideo:
    """Join the clips and mux the audio into `compose/<key>.mp4`."""
    if run.progress is not None:
        run.progress(STAGE, 0, 1)
    audio = mixed_audio(run, clips.num_frames)
    key = hashlib.sha256(":".join(c.sha256 for c in clips.clips).encode() + run.inputs.key().encode()).hexdigest()
    relative = f"{STAGE}/{key[:20]}.mp4"
    item = run.run_dir.existing(relative)
    if item is None:
        concat_mp4(
            [run.run_dir.path(c.path) for c in clips.clips], run.run_dir.path(relative), fps=run.inputs.fps,
            audio=audio, sample_rate=SAMPLE_RATE, stage=STAGE,
        )  # fmt: skip
        item = run.run_dir.item(relative, reused=False)
    if run.progress is not None:
        run.progress(STAGE, 1, 1)
    return ComposedVideo(
        video=FileRef.of(item),
        num_frames=clips.num_frames,
        duration_s=clips.num_frames / run.inputs.fps,
        audio_streams=[title for title, _ in audio],
    )
