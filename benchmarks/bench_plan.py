"""Time to plan each example job with the offline director, per node, as JSON.

Usage: python benchmarks/bench_plan.py [--examples english_portrait long_talk ...] [--provider P --base-url URL]

The first plan in a fresh environment also pays librosa's one-off numba compilation (about 20 s); it is reported
as `warmup_s` and excluded from the per-job figures. Checkpointing is off, so every job is planned from scratch.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import codirector
from codirector.agents.director import direct
from codirector.config import Config

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ALL = ["english_portrait", "mandarin_portrait", "singing", "dialogue", "cat", "long_talk"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", nargs="*", default=ALL)
    parser.add_argument("--provider", default=None)
    parser.add_argument("--base-url", default=None)
    args = parser.parse_args()
    config = Config(home=Path(tempfile.mkdtemp(prefix="codirector-bench-")))
    options = {"base_url": args.base_url} if args.base_url else None
    started = time.perf_counter()
    direct(codirector.load_job(EXAMPLES / "cat" / "job.yaml"), config=config, checkpoint=False)
    results: dict[str, object] = {"cpu_count": os.cpu_count(), "warmup_s": round(time.perf_counter() - started, 2)}
    jobs = []
    for name in args.examples:
        job = codirector.load_job(EXAMPLES / name / "job.yaml")
        marks: list[tuple[str, float]] = []
        started = time.perf_counter()
        plan = direct(
            job,
            provider=args.provider,
            provider_options=options,
            config=config,
            checkpoint=False,
            on_update=lambda node, _update, marks=marks: marks.append((node, time.perf_counter())),
        )
        wall_s = time.perf_counter() - started
        rounds: dict[int, dict[str, float]] = {}
        for call in plan.model_calls:
            entry = rounds.setdefault(call.round or 0, {"calls": 0, "latency_s": 0.0})
            entry["calls"] += 1
            entry["latency_s"] = round(entry["latency_s"] + call.latency_s, 3)
        record = plan.storyline.reasoning
        jobs.append(
            {
                "example": name,
                "audio_s": round(plan.storyline.duration_s, 2),
                "wall_s": round(wall_s, 2),
                "realtime_factor": round(wall_s / plan.storyline.duration_s, 3),
                "nodes_done_at_s": [(node, round(t - started, 2)) for node, t in marks],
                "num_shots": len(plan.storyline.shots),
                "num_segments": len(plan.render_plan.segments),
                "num_rounds": record.num_rounds if record else 0,
                "num_conflicts": len(record.conflicts) if record else 0,
                "num_model_calls": len(plan.model_calls),
                "model_calls_by_round": rounds,
            }
        )
    results["jobs"] = jobs
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
