"""Video IO: frames written are the frames read (by index too), clips join without re-encoding, same bytes twice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from codirector.errors import RenderStageError
from codirector.generator.videoio import concat_mp4, probe_video, read_frames, write_frames
from codirector.media import file_sha256


def _frames(count: int, start: int = 0) -> list[np.ndarray]:
    """Frame i is a flat grey of level 4 * i with a bright bar whose position moves: easy to tell apart."""
    frames = []
    for index in range(start, start + count):
        frame = np.full((64, 96, 3), 4 * index, np.uint8)
        frame[20:40, (3 * index) % 80 : (3 * index) % 80 + 16] = 255
        frames.append(frame)
    return frames


@pytest.mark.parametrize(("codec", "suffix"), [("mjpeg", ".mkv"), ("h264", ".mp4")])
def test_frames_read_back_by_index(tmp_path: Path, codec: str, suffix: str) -> None:
    path = tmp_path / f"clip{suffix}"
    frames = _frames(30)
    assert write_frames(path, iter(frames), width=96, height=64, fps=25, codec=codec) == 30
    info = probe_video(path)
    assert (info.num_frames, info.width, info.height, info.fps) == (30, 96, 64, 25.0)
    picked = list(read_frames(path, [17, 3, 29, 3]))
    assert len(picked) == 3
    for index, frame in zip([3, 17, 29], picked, strict=True):
        errors = [np.abs(frame.astype(int) - f.astype(int)).mean() for f in frames]
        assert int(np.argmin(errors)) == index


def test_a_wrong_frame_count_is_an_error_and_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(RenderStageError, match="made 5 frames, not 6"):
        write_frames(tmp_path / "c.mkv", iter(_frames(5)), width=96, height=64, fps=25, num_frames=6)
    assert list(tmp_path.iterdir()) == []


def test_concat_copies_the_clips_and_muxes_audio_of_the_same_length(tmp_path: Path) -> None:
    parts = []
    for number, (count, start) in enumerate([(12, 0), (20, 12), (9, 32)]):
        parts.append(tmp_path / f"p{number}.mp4")
        write_frames(parts[-1], iter(_frames(count, start)), width=96, height=64, fps=25, codec="h264")
    audio = (0.3 * np.sin(np.arange(16_000 * 41 // 25) * 0.05)).astype(np.float32)
    assert concat_mp4(parts, tmp_path / "out.mp4", fps=25, audio=[("mix", audio)], sample_rate=16_000) == 41
    info = probe_video(tmp_path / "out.mp4")
    assert (info.video_codec, info.audio_codecs, info.num_frames) == ("h264", ("aac",), 41)
    assert info.audio_duration_s == pytest.approx(41 / 25, abs=1 / 25)
    joined = list(read_frames(tmp_path / "out.mp4"))
    separate = [frame for part in parts for frame in read_frames(part)]
    assert all(np.array_equal(a, b) for a, b in zip(joined, separate, strict=True))
    concat_mp4(parts, tmp_path / "again.mp4", fps=25, audio=[("mix", audio)], sample_rate=16_000)
    assert file_sha256(tmp_path / "out.mp4") == file_sha256(tmp_path / "again.mp4")
