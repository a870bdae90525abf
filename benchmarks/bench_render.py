"""Preview render speed and peak memory by video length, and sub-clip throughput by number of workers, as JSON.

Usage:
    python benchmarks/bench_render.py lengths [--seconds 10 60 300] [--resolution 720p] [--fps 25]
        [--executor process] [--workers 2]
    python benchmarks/bench_render.py workers [--seconds 60] [--workers-list 1 2 4]

`lengths` renders a job whose audio is the long_talk example looped to each length, one fresh process per case
(planning in the parent, timed apart; rendering in a fresh process whose memory and its workers' is sampled
from /proc every 50 ms), and reports wall time, the real-time factor
(render seconds per second of video) and peak memory. Planning is timed apart from rendering. `workers` renders
one job with the process executor at each worker count, each in a fresh run folder, and reports the sub-clip
stage's time: Kling-Avatar sec. 2.2 says sub-clips are independent, so with enough workers a long video takes
about as long as one clip.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def make_job(folder: Path, seconds: float, resolution: str, fps: int) -> Path:
    """A one-character job: long_talk's reference, and its audio looped to `seconds` (16 kHz WAV)."""
    from codirector.media import load_audio

    folder.mkdir(parents=True, exist_ok=True)
    speech = load_audio(EXAMPLES / "long_talk" / "audio.flac", 16_000).samples
    looped = np.tile(speech, int(np.ceil(seconds * 16_000 / len(speech))))[: int(seconds * 16_000)]
    with wave.open(str(folder / "voice.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes((np.clip(looped, -1, 1) * 32767).astype("<i2").tobytes())
    (folder / "reference.jpg").write_bytes((EXAMPLES / "long_talk" / "reference.jpg").read_bytes())
    (folder / "job.yaml").write_text(
        "prompt: A calm talk to the camera.\n"
        "characters:\n  - id: speaker\n    reference_image: reference.jpg\n    audio: voice.wav\n"
        f"output: {{resolution: '{resolution}', aspect: '16:9', fps: {fps}}}\n"
    )
    return folder / "job.yaml"


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _descendants(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *_descendants(child)]
    return found


class MemorySampler(threading.Thread):
    """Samples the resident memory of this process and all its descendants (the workers) every 50 ms."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_main = self.peak_total = 0.0
        self.running = True

    def run(self) -> None:
        while self.running:
            main = _rss_mib(os.getpid())
            total = main + sum(_rss_mib(child) for child in _descendants(os.getpid()))
            self.peak_main, self.peak_total = max(self.peak_main, main), max(self.peak_total, total)
            time.sleep(0.05)


def one_case(args: argparse.Namespace) -> dict[str, object]:
    """Render one planned job in this process (the plan was made by the parent); print its figures."""
    import codirector

    folder = Path(args.folder)
    plan = codirector.load_document(folder / "plan.json")
    sampler = MemorySampler()
    sampler.start()
    started = time.perf_counter()
    result = codirector.render(
        plan, folder / "out.mp4", executor=args.executor,
        num_workers=None if args.executor == "local" else args.workers, run_dir=folder / "run",
        config=codirector.Config(home=folder / "home"),
    )  # fmt: skip
    render_s = time.perf_counter() - started
    sampler.running = False
    sampler.join()
    stages = {s.name: round(s.duration_s, 2) for s in result.manifest.stages}
    return {
        "audio_s": args.seconds,
        "resolution": f"{plan.render_plan.output.width}x{plan.render_plan.output.height}",
        "fps": args.fps,
        "num_segments": len(plan.render_plan.segments),
        "executor": args.executor,
        "workers": args.workers,
        "render_s": round(render_s, 2),
        "render_realtime_factor": round(render_s / args.seconds, 3),
        "stages_s": stages,
        "peak_rss_mib": {"main_process": round(sampler.peak_main, 1), "all_processes": round(sampler.peak_total, 1)},
    }


def run_case(seconds: float, **options: object) -> dict[str, object]:
    """Plan here (timed), then render in a fresh process, so the memory figures are the render's alone."""
    import codirector

    with tempfile.TemporaryDirectory(prefix="codirector-bench-") as folder:
        job = make_job(Path(folder) / "job", seconds, str(options["resolution"]), int(options["fps"]))  # type: ignore[call-overload]
        started = time.perf_counter()
        plan = codirector.plan(job, config=codirector.Config(home=Path(folder) / "home"), checkpoint=False)
        plan_s = time.perf_counter() - started
        codirector.schemas.dump_document(plan, Path(folder) / "plan.json")
        command = [sys.executable, __file__, "_case", "--seconds", str(seconds), "--folder", folder]
        for key, value in options.items():
            command += [f"--{key}", str(value)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return {"plan_s": round(plan_s, 2), **json.loads(output.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["lengths", "workers", "_case"])
    parser.add_argument("--seconds", type=float, nargs="*", default=None)
    parser.add_argument("--resolution", default="720p")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--executor", default="process")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--workers-list", type=int, nargs="*", default=[1, 2, 4])
    parser.add_argument("--folder", default=None)
    args = parser.parse_args()
    if args.mode == "_case":
        args.seconds = args.seconds[0]
        print(json.dumps(one_case(args)))
        return
    options = {"resolution": args.resolution, "fps": args.fps}
    cases = []
    if args.mode == "lengths":
        for seconds in args.seconds or [10, 60, 300]:
            cases.append(run_case(seconds, executor=args.executor, workers=args.workers, **options))
    else:
        for workers in args.workers_list:
            cases.append(run_case((args.seconds or [60])[0], executor="process", workers=workers, **options))
    print(json.dumps({"mode": args.mode, "cpu_count": os.cpu_count(), "cases": cases}, indent=2))


if __name__ == "__main__":
    main()
