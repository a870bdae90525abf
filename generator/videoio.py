"""Video files in and out, streamed frame by frame through PyAV (ffmpeg), written atomically.

Intermediate clips are Motion-JPEG in Matroska: intra-only, so any frame decodes on its own, and cheap to write
(about 2 ms a frame at 640x360 here). Finished clips are H.264 in MP4 at the final quality; `concat_mp4`
joins them by copying packets (no second encode) and muxes the AAC audio, interleaved by time. Every writer
uses ffmpeg's bit-exact flags and a fixed thread count, so the same frames give the same bytes on any machine:
that is what lets a resumed render produce the same file as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np

from codirector.errors import RenderStageError

__all__ = [
    "VideoInfo",
    "VideoWriter",
    "atomic_path",
    "concat_mp4",
    "probe_video",
    "read_frames",
    "write_frames",
]

Codec = Literal["mjpeg", "h264"]
_THREADS = 1  # see the x264 options below: repeatable bytes matter more than a second encoder thread
_BITEXACT = {"fflags": "+bitexact"}


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, as ffprobe would say."""

    path: Path
    width: int
    height: int
    fps: float
    num_frames: int
    duration_s: float
    video_codec: str
    audio_codecs: tuple[str, ...]
    audio_duration_s: float | None


@contextlib.contextmanager
def atomic_path(final: Path, stage: str = "io") -> Iterator[Path]:
    """Yield a temporary path beside `final`; on success rename it over `final`, on any failure delete it.

    The temporary name keeps the suffix, so ffmpeg still recognises the container. A failed write (a full disk)
    becomes a `RenderStageError` that names the file; no half-written file is ever left under the final name.
    """
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RenderStageError(stage, f"cannot create {final.parent}: {error.strerror or error}") from None
    temporary = final.with_name(f".{final.stem}.{os.getpid()}.tmp{final.suffix}")
    try:
        yield temporary
        os.replace(temporary, final)
    except OSError as error:
        raise RenderStageError(
            stage, f"cannot write {final}: {error.strerror or error}; free some space or choose another run folder, "
            "then rerun the same command to resume"
        ) from None  # fmt: skip
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


class VideoWriter:
    """Write RGB frames to a video file one at a time (use `write_frames` for the atomic, whole-clip form).

    Args:
        path: the file to write (.mkv for MJPEG, .mp4 for H.264).
        width, height: frame size in pixels; H.264 needs both even.
        fps: frames per second (a rational is kept exactly: 25, 24000/1001).
        codec: "mjpeg" for intermediates, "h264" for finished clips.
        crf: H.264 quality (lower is better; 18 is visually lossless for most content).
    """

    def __init__(
        self, path: Path, *, width: int, height: int, fps: float | Fraction, codec: Codec = "mjpeg", crf: int = 18,
        preset: str = "veryfast",
    ) -> None:  # fmt: skip
        import av
        from av.codec.context import Flags

        self.path = Path(path)
        self.width, self.height = width, height
        self.num_frames = 0
        self._container = av.open(str(self.path), "w", options=_BITEXACT)
        rate = Fraction(fps).limit_denominator(1001)
        if codec == "mjpeg":
            stream = self._container.add_stream("mjpeg", rate=rate)
            stream.pix_fmt = "yuvj420p"
            stream.options = {"q:v": "2"}
        else:
            stream = self._container.add_stream("libx264", rate=rate)
            stream.pix_fmt = "yuv420p"
            # mb-tree's floating-point lookahead gave different bytes for the same frames in some processes
            # (whatever else had set the FPU's modes); without it, and on one thread, x264 repeats itself exactly.
            stream.options = {"crf": str(crf), "preset": preset, "x264-params": "no-mbtree=1"}
            stream.codec_context.thread_count = _THREADS
        stream.width, stream.height = width, height
        stream.time_base = 1 / rate
        stream.codec_context.flags |= Flags.bitexact
        self._stream = stream

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB uint8 frame of shape (height, width, 3)."""
        import av

        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"frame {self.num_frames} of {self.path.name} is {frame.dtype} {frame.shape}, "
                f"expected uint8 {(self.height, self.width, 3)}"
            )
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video_frame.pts = self.num_frames
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.num_frames += 1

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken container can fail again; the file is discarded
            self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def write_frames(
    path: Path, frames: Iterable[np.ndarray], *, width: int, height: int, fps: float | Fraction,
    codec: Codec = "mjpeg", num_frames: int | None = None, stage: str = "io", crf: int = 18,
) -> int:  # fmt: skip
    """Write all `frames` to `path` atomically; return how many were written.

    Raises:
        RenderStageError: the frames did not number `num_frames`, or the file could not be written.
    """
    with (
        atomic_path(path, stage) as temporary,
        VideoWriter(temporary, width=width, height=height, fps=fps, codec=codec, crf=crf) as writer,
    ):
        for frame in frames:
            writer.write(frame)
        if num_frames is not None and writer.num_frames != num_frames:
            raise RenderStageError(stage, f"{path.name}: the backend made {writer.num_frames} frames, not {num_frames}")
        return writer.num_frames


def read_frames(path: Path, indices: Sequence[int] | None = None) -> Iterator[np.ndarray]:
    """Decode frames as RGB uint8 arrays, in order; only those at `indices` (0-based) when given.

    In an intra-only file (our MJPEG intermediates) the frames not asked for are skipped without being decoded,
    so picking a few keyframes from a long blueprint costs about as much as reading the file.
    """
    import av

    wanted = None if indices is None else sorted(set(indices))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if wanted is None:
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
            return
        if not wanted:
            return
        wanted_set = set(wanted)
        if stream.codec_context.name == "mjpeg":  # intra-only: one packet per frame, each decodes on its own
            numbered = enumerate(packet for packet in container.demux(stream) if packet.size)
            pairs = ((i, frame) for i, packet in numbered if i in wanted_set for frame in packet.decode())
        else:  # frames depend on each other (and come out of order): decode all, count decoded frames
            pairs = enumerate(container.decode(stream))
        position = 0
        for index, frame in pairs:
            if index == wanted[position]:
                yield frame.to_ndarray(format="rgb24")
                position += 1
                if position == len(wanted):
                    return


def probe_video(path: Path) -> VideoInfo:
    """Count frames and read stream facts by demuxing the whole file (exact, not header estimates)."""
    import av

    with av.open(str(path)) as container:
        video = container.streams.video[0]
        num_frames = sum(1 for packet in container.demux(video) if packet.size)
        fps = float(video.average_rate or video.guessed_rate or 0)
        audio = container.streams.audio
        audio_s = float(audio[0].duration * audio[0].time_base) if audio and audio[0].duration else None
        return VideoInfo(
            path=Path(path), width=video.codec_context.width, height=video.codec_context.height, fps=fps,
            num_frames=num_frames, duration_s=num_frames / fps if fps else 0.0,
            video_codec=video.codec_context.name, audio_codecs=tuple(s.codec_context.name for s in audio),
            audio_duration_s=audio_s,
        )  # fmt: skip


def concat_mp4(
    parts: Sequence[Path], output: Path, *, fps: float | Fraction, audio: Sequence[tuple[str, np.ndarray]],
    sample_rate: int, stage: str = "compose",
) -> int:  # fmt: skip
    """Join H.264 MP4 clips (same size and settings) into `output` by copying packets, and mux AAC audio.

    Video packets are copied, not re-encoded, so this costs about as much as reading the files; audio is
    encoded in step with the video, chunk by chunk, so the file is interleaved and memory stays flat.

    Args:
        parts: the clips, in order; each starts with a keyframe (as x264 writes them).
        output: the MP4 to write (atomically).
        fps: the clips' frame rate.
        audio: (title, samples) per audio stream: mono float32 at `sample_rate`, the first one the default.
        sample_rate: of the audio arrays.

    Returns:
        The number of video frames written.
    """
    import av
    from av.codec.context import Flags

    rate = Fraction(fps).limit_denominator(1001)
    with atomic_path(output, stage) as temporary:
        out = av.open(str(temporary), "w", options={**_BITEXACT, "movflags": "+faststart"})
        try:
            with av.open(str(parts[0])) as first:  # video is stream 0, as players expect
                video_out = out.add_stream_from_template(first.streams.video[0])
                extradata = first.streams.video[0].codec_context.extradata
            video_out.time_base = 1 / rate
            audio_streams = []
            for index, (title, _) in enumerate(audio):
                stream = out.add_stream("aac", rate=sample_rate, layout="mono")
                stream.codec_context.flags |= Flags.bitexact
                stream.metadata["title"] = title
                stream.disposition = av.stream.Disposition.default if index == 0 else av.stream.Disposition(0)
                audio_streams.append(stream)
            audio_position = 0
            offset = 0  # in the video time base (one tick per frame)

            def push_audio(until_s: float) -> None:
                nonlocal audio_position
                final = until_s == float("inf")
                end = len(audio[0][1]) if final else min(len(audio[0][1]), round(until_s * sample_rate))
                step = 1024
                while audio_position + step <= end or (final and audio_position < end):
                    stop = min(audio_position + step, end)
                    for stream, (_, samples) in zip(audio_streams, audio, strict=True):
                        chunk = samples[audio_position:stop].reshape(1, -1).astype(np.float32)
                        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                        frame.sample_rate = sample_rate
                        frame.pts = audio_position
                        for packet in stream.encode(frame):
                            out.mux(packet)
                    audio_position = stop

            for part in parts:
                with av.open(str(part)) as source:
                    video_in = source.streams.video[0]
                    if video_in.codec_context.extradata != extradata:
                        raise RenderStageError(
                            stage, f"{part.name} was encoded with other settings than the first clip"
                        )
                    count = 0
                    scale = video_in.time_base * rate  # source ticks -> frames
                    for packet in source.demux(video_in):
                        if packet.size == 0 or packet.pts is None:
                            continue
                        packet.pts = offset + round(packet.pts * scale)
                        packet.dts = offset + round(packet.dts * scale) if packet.dts is not None else None
                        packet.duration = 1
                        packet.time_base = 1 / rate
                        packet.stream = video_out
                        out.mux(packet)
                        count += 1
                    offset += count
                    push_audio(offset / float(rate))
            push_audio(float("inf"))
            for stream in audio_streams:
                for packet in stream.encode(None):
                    out.mux(packet)
        finally:
            out.close()
    return offset
