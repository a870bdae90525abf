"""Eval suites: plan and render metrics, GSB pairwise comparisons, and the prompt-iteration loop.

`run_suite` plans (and renders) every case of a suite and writes one `EvalRecord` per case; `compare_runs`
sets two runs side by side: per-metric deltas, the cases that got worse, and GSB from a panel of judges.
Heavy modules (render metrics, judges) load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from codirector.evals.compare import Comparison, compare_runs
    from codirector.evals.runner import SuiteResult, load_suite, read_run, run_suite

__all__ = ["Comparison", "SuiteResult", "compare_runs", "load_suite", "read_run", "run_suite"]

_LAZY = {
    "Comparison": "codirector.evals.compare",
    "compare_runs": "codirector.evals.compare",
    "SuiteResult": "codirector.evals.runner",
    "load_suite": "codirector.evals.runner",
    "read_run": "codirector.evals.runner",
    "run_suite": "codirector.evals.runner",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'codirector.evals' has no attribute {name!r}")
