"""Two runs side by side: what changed between them, per-metric deltas, the cases that got worse, and GSB.

The baseline (A) is usually the shipped prompts or the current provider, the candidate (B) the edited prompts or
the new provider. Cases pair by id. GSB counts from B's side: G means B is better (KlingAvatar 2.0 sec. 4 reports
GSB of its method against each baseline the same way).

Example:
    >>> from codirector.evals import compare_runs
    >>> comparison = compare_runs("runs/shipped", "runs/edited")  # doctest: +SKIP
    >>> comparison.gsb["overall"].ratio  # doctest: +SKIP
    1.5
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from statistics import fmean
from typing import TYPE_CHECKING, Any

from codirector.evals.metric_info import METRICS, change
from codirector.evals.runner import SuiteResult, read_run
from codirector.schemas import EvalRecord, Plan, load_document

if TYPE_CHECKING:
    from codirector.evals.gsb import GsbTally, Vote
    from codirector.evals.judges import Judge, Side

__all__ = ["CaseChange", "Comparison", "MetricDelta", "compare_runs"]


@dataclass(frozen=True)
class MetricDelta:
    """One metric over the paired cases: means on each side, and how many cases moved which way."""

    metric: str
    label: str
    better: str
    baseline_mean: float | None
    candidate_mean: float | None
    delta: float | None
    num_cases: int
    num_better: int
    num_worse: int


@dataclass(frozen=True)
class CaseChange:
    """A case whose metric moved beyond the metric's tolerance."""

    case_id: str
    category: str
    metric: str
    label: str
    baseline: float
    candidate: float
    direction: str  # "better" or "worse"


@dataclass(frozen=True)
class Comparison:
    """What `codirector eval compare` reports."""

    baseline: SuiteResult
    candidate: SuiteResult
    differences: dict[str, tuple[str, str]]
    prompt_changes: list[tuple[str, str, str]]
    metrics: list[MetricDelta]
    changes: list[CaseChange]
    only_in_baseline: list[str]
    only_in_candidate: list[str]
    failed: dict[str, list[str]]
    judges: list[str] = field(default_factory=list)
    votes: list[Vote] = field(default_factory=list)
    gsb: dict[str, GsbTally] = field(default_factory=dict)

    @property
    def worse(self) -> list[CaseChange]:
        return [c for c in self.changes if c.direction == "worse"]

    @property
    def better(self) -> list[CaseChange]:
        return [c for c in self.changes if c.direction == "better"]

    def pairs(self) -> list[tuple[EvalRecord, EvalRecord]]:
        return _pairs(self.baseline, self.candidate)

    def sides(self) -> list[tuple[str, Side, Side]]:
        """The paired cases as judges see them: (case id, baseline side, candidate side), plans loaded."""
        return [
            (a.case_id, _side(self.baseline, a), _side(self.candidate, b)) for a, b in self.pairs()
        ]  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": str(self.baseline.run_dir),
            "candidate": str(self.candidate.run_dir),
            "differences": {key: list(value) for key, value in self.differences.items()},
            "prompt_changes": [list(item) for item in self.prompt_changes],
            "metrics": [asdict(item) for item in self.metrics],
            "changes": [asdict(item) for item in self.changes],
            "only_in_baseline": self.only_in_baseline,
            "only_in_candidate": self.only_in_candidate,
            "failed": self.failed,
            "judges": self.judges,
            "votes": [
                {"case_id": v.case_id, "dimension": v.dimension, "verdicts": list(v.verdicts), "majority": v.majority}
                for v in self.votes
            ],
            "gsb": {name: tally.to_dict() for name, tally in self.gsb.items()},
        }


def _pairs(baseline: SuiteResult, candidate: SuiteResult) -> list[tuple[EvalRecord, EvalRecord]]:
    ours = {r.case_id: r for r in candidate.records if r.status == "ok"}
    return [(r, ours[r.case_id]) for r in baseline.records if r.status == "ok" and r.case_id in ours]


def _differences(a: SuiteResult, b: SuiteResult) -> dict[str, tuple[str, str]]:
    fields = {
        "suite": (a.run.suite, b.run.suite),
        "provider": (a.run.provider, b.run.provider),
        "backend": (str(a.run.backend), str(b.run.backend)),
        "prompts_dir": (str(a.run.prompts_dir or "packaged"), str(b.run.prompts_dir or "packaged")),
        "codirector": (a.run.codirector_version, b.run.codirector_version),
    }
    return {name: values for name, values in fields.items() if values[0] != values[1]}


def _prompt_changes(a: SuiteResult, b: SuiteResult) -> list[tuple[str, str, str]]:
    before = {ref.id: f"{ref.version}@{ref.sha256[:12]}" for ref in a.run.prompt_refs}
    after = {ref.id: f"{ref.version}@{ref.sha256[:12]}" for ref in b.run.prompt_refs}
    return [
        (prompt_id, before.get(prompt_id, "-"), after.get(prompt_id, "-"))
        for prompt_id in sorted(before.keys() | after.keys())
        if before.get(prompt_id) != after.get(prompt_id)
    ]


def _metric_table(pairs: Sequence[tuple[EvalRecord, EvalRecord]]) -> tuple[list[MetricDelta], list[CaseChange]]:
    names = sorted({name for a, b in pairs for name in a.metrics.keys() | b.metrics.keys()}, key=_metric_order)
    deltas: list[MetricDelta] = []
    changes: list[CaseChange] = []
    for name in names:
        info = METRICS.get(name)
        both = [(a, b) for a, b in pairs if a.metrics.get(name) is not None and b.metrics.get(name) is not None]
        moved = {"better": 0, "worse": 0}
        for a, b in both:
            verdict = change(name, a.metrics[name], b.metrics[name])
            if verdict in moved:
                moved[verdict] += 1  # type: ignore[index]
                changes.append(
                    CaseChange(
                        a.case_id, a.category, name, info.label if info else name,
                        a.metrics[name], b.metrics[name], verdict,  # type: ignore[arg-type]
                    )
                )  # fmt: skip
        mean_a = fmean(a.metrics[name] for a, _ in both) if both else None  # type: ignore[misc]
        mean_b = fmean(b.metrics[name] for _, b in both) if both else None  # type: ignore[misc]
        deltas.append(
            MetricDelta(
                name, info.label if info else name, info.better if info else "none", mean_a, mean_b,
                None if mean_a is None or mean_b is None else mean_b - mean_a, len(both), moved["better"],
                moved["worse"],
            )
        )  # fmt: skip
    return deltas, changes


def _metric_order(name: str) -> tuple[int, str]:
    order = list(METRICS)
    return (order.index(name), name) if name in order else (len(order), name)


def _failure_votes(a: SuiteResult, b: SuiteResult, judges: list[str]) -> list[Vote]:
    """A case one run failed and the other finished is lost by the failing run, on every dimension, by every
    judge: no video (or no plan) is worse than any video."""
    from codirector.evals.gsb import DIMENSIONS, Vote

    ours = {r.case_id: r for r in b.records}
    votes = []
    for theirs in a.records:
        mine = ours.get(theirs.case_id)
        if mine is None or (theirs.status == "failed") == (mine.status == "failed"):
            continue
        verdict = "bad" if mine.status == "failed" else "good"
        votes += [Vote(theirs.case_id, name, (verdict,) * len(judges), tuple(judges)) for name in DIMENSIONS]
    return votes


def _side(result: SuiteResult, record: EvalRecord) -> Side:
    from codirector.evals.judges import Side

    plan = None
    if record.plan_path and (result.run_dir / record.plan_path).is_file():
        loaded = load_document(result.run_dir / record.plan_path, "plan")
        plan = loaded if isinstance(loaded, Plan) else None
    video = result.run_dir / record.video_path if record.video_path else None
    return Side(record=record, plan=plan, video=video if video is not None and video.is_file() else None)


def compare_runs(
    baseline: SuiteResult | str | Path,
    candidate: SuiteResult | str | Path,
    *,
    judges: Sequence[Judge] | None = None,
    gsb: bool = True,
    num_resamples: int = 2000,
) -> Comparison:
    """Compare two eval runs case by case.

    Args:
        baseline: run A (a run folder or a `SuiteResult`).
        candidate: run B.
        judges: the GSB panel; default: the offline panel of three metric judges (`judges.default_panel`).
        gsb: judge the pairs and tally GSB (False: metric deltas only).
        num_resamples: bootstrap resamples for the GSB confidence intervals.
    """
    a = baseline if isinstance(baseline, SuiteResult) else read_run(baseline)
    b = candidate if isinstance(candidate, SuiteResult) else read_run(candidate)
    pairs = _pairs(a, b)
    deltas, changes = _metric_table(pairs)
    ids_a, ids_b = {r.case_id for r in a.records}, {r.case_id for r in b.records}
    comparison = Comparison(
        baseline=a, candidate=b, differences=_differences(a, b), prompt_changes=_prompt_changes(a, b),
        metrics=deltas, changes=changes, only_in_baseline=sorted(ids_a - ids_b),
        only_in_candidate=sorted(ids_b - ids_a),
        failed={"baseline": [r.case_id for r in a.failed], "candidate": [r.case_id for r in b.failed]},
    )  # fmt: skip
    if not gsb or not (pairs or comparison.failed["baseline"] or comparison.failed["candidate"]):
        return comparison
    from codirector.evals.gsb import gsb_table
    from codirector.evals.judges import default_panel, run_panel

    panel = list(judges) if judges is not None else default_panel()
    votes = run_panel(panel, comparison.sides())
    votes += _failure_votes(a, b, [judge.name for judge in panel])
    return replace(
        comparison, judges=[judge.name for judge in panel], votes=votes,
        gsb=gsb_table(votes, num_resamples=num_resamples),
    )  # fmt: skip
