"""How long validation takes: each example job (media decoded) and storylines of many shots.

Prints one JSON object. Run: python benchmarks/bench_validation.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from codirector.api import validate_file
from codirector.schemas import validate_data

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def best_of(repeats: int, work: Callable[[], object]) -> dict[str, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return {"best_ms": round(min(times) * 1e3, 2), "median_ms": round(statistics.median(times) * 1e3, 2)}


def storyline(num_shots: int, shot_s: float = 0.3) -> dict:
    """A storyline of `num_shots` back-to-back shots; 1000 shots of 0.3 s is a 5-minute video."""
    shots = [
        {
            "start_s": round(i * shot_s, 3),
            "end_s": round((i + 1) * shot_s, 3),
            "speakers": ["host"],
            "shot_size": "medium",
            "camera": {"movement": "pan", "direction": "left"},
            "emotion": {"label": "happy", "intensity": 2},
            "prompt": "She talks.",
        }
        for i in range(num_shots)
    ]
    return {
        "kind": "storyline",
        "duration_s": round(num_shots * shot_s, 3),
        "fps": 25,
        "characters": [{"id": "host", "name": "Host", "audio": "/a.wav"}],
        "style": {"visual_style": "photo", "scene": "studio", "lighting": "soft"},
        "global_prompt": "A talk.",
        "shots": shots,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    jobs = {
        path.parent.name: best_of(args.repeats, lambda path=path: validate_file(path))
        for path in sorted(EXAMPLES.glob("*/job.yaml"))
    }
    storylines = {}
    for num_shots in (10, 100, 1000):
        data = storyline(num_shots)
        storylines[f"{num_shots}_shots"] = best_of(args.repeats, lambda data=data: validate_data(data, "storyline"))
    result = {
        "benchmark": "validation",
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
        "repeats": args.repeats,
        "example_jobs_with_media": jobs,
        "storyline_jsonschema_plus_pydantic": storylines,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
