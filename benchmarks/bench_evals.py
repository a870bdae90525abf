"""How long the prompt-iteration loop takes: a suite cold, warm, and after editing a prompt.

    python benchmarks/bench_evals.py [--suite default] [--no-render] [--home DIR]

Runs the suite four times into a fresh cache and prints one JSON object:
- cold: nothing cached (the director plans, the cascade renders, every metric is computed);
- warm: the same again (everything reused);
- edit_unread: a prompt no offline plan reads (text_expert/storyline.md) edited: plans still reused;
- edit_read: the negative director's opposites table edited: every case that read it is planned again; renders of
  plans whose negative prompts changed are redone (the preview backend ignores negative prompts, so the cascade
  reuses its stages), and metrics of unchanged videos come from the cache.
Each with wall time, per-case timings and what was reused.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from codirector.config import Config
from codirector.evals.runner import run_suite
from codirector.prompts.templates import packaged_prompts_dir


def _run(label: str, suite: str, out: Path, config: Config, render: bool | None, prompts: Path | None) -> dict:
    started = time.perf_counter()
    result = run_suite(suite, out / label, config=config, render=render, prompts_dir=prompts)
    return {
        "wall_s": round(time.perf_counter() - started, 2),
        "failed": [r.case_id for r in result.failed],
        "cases": {
            r.case_id: {"reused": r.reused, "timings_s": {k: round(v, 2) for k, v in r.timings_s.items()}}
            for r in result.records
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="default")
    parser.add_argument("--no-render", action="store_true")
    parser.add_argument("--home", type=Path, default=None, help="Cache folder (default: a fresh temporary one).")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="codirector-bench-evals-"))
    config = Config(home=home, progress="never")
    render = False if args.no_render else None
    out = home / "runs"
    edited = home / "edited_prompts"
    (edited / "text_expert").mkdir(parents=True, exist_ok=True)
    (edited / "negative_director").mkdir(parents=True, exist_ok=True)
    packaged = packaged_prompts_dir()
    report = {"suite": args.suite, "render": not args.no_render}
    report["cold"] = _run("cold", args.suite, out, config, render, None)
    report["warm"] = _run("warm", args.suite, out, config, render, None)
    shutil.copy(packaged / "text_expert" / "storyline.md", edited / "text_expert" / "storyline.md")
    with open(edited / "text_expert" / "storyline.md", "a", encoding="utf-8") as stream:
        stream.write("\nPrefer fewer, longer shots.\n")
    report["edit_unread"] = _run("edit_unread", args.suite, out, config, render, edited)
    table = (packaged / "negative_director" / "opposites.yaml").read_text(encoding="utf-8")
    (edited / "negative_director" / "opposites.yaml").write_text(table.replace("sad face, ", ""), encoding="utf-8")
    report["edit_read"] = _run("edit_read", args.suite, out, config, render, edited)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
