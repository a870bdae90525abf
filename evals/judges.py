"""Judges for GSB comparisons, and the panel they sit on; the offline metric judges live here.

A judge looks at one case's two results, the baseline (A) and the candidate (B), and gives a verdict per GSB
dimension and overall, from the candidate's point of view (`codirector.evals.gsb`). A panel of judges, three as
the papers' annotators (Kling-Avatar sec. 3.2 / KlingAvatar 2.0 sec. 4: GSB with a majority vote of three), votes
on every case; `run_panel` turns their verdicts into `Vote`s for `gsb_table`.

* `MetricJudge` (here): offline and deterministic. Each dimension has three pieces of evidence (`EVIDENCE`), one
  per judge, so the default panel of three is three independent readings of the metrics rather than one reading
  counted three times.
* `LLMJudge` (`codirector.evals.llm_judge`): a chat model reads both sides and is asked twice, with the sides
  swapped; a preference that does not survive the swap is position bias and counts as "same".
* `SheetJudge` (`codirector.evals.verdict_sheet`): one annotator's column of a CSV sheet that
  `write_verdict_sheet` made for people to fill in.

`load_judges` builds a panel from specs, loading those two modules only when a spec names them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast, runtime_checkable

from codirector.agents.providers.base import OfflineProvider
from codirector.agents.providers.registry import resolve_provider
from codirector.errors import UserError
from codirector.evals.gsb import DIMENSIONS, VERDICTS, Verdict, Vote
from codirector.schemas.evals import GSB_DIMENSIONS, EvalRecord
from codirector.schemas.plan import Plan

__all__ = [
    "EVIDENCE",
    "Evidence",
    "Judge",
    "MetricJudge",
    "Side",
    "check_panel",
    "default_panel",
    "load_judges",
    "run_panel",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a case's record from one run, with its plan and video when there are some.

    Attributes:
        record: the case's result line.
        plan: the plan the record points to, loaded.
        video: the rendered MP4, resolved against the run folder.
    """

    record: EvalRecord
    plan: Plan | None = None
    video: Path | None = None


@runtime_checkable
class Judge(Protocol):
    """Anything that rates a candidate against a baseline.

    Attributes:
        name: unique within a panel; recorded with every vote.
    """

    name: str

    def judge(self, case_id: str, baseline: Side, candidate: Side) -> dict[str, Verdict]:
        """A verdict for every GSB dimension and "overall", from the candidate's point of view."""
        ...


# ---------------------------------------------------------------------------------------------------------------
# Offline: metric rules


_ROUNDING = 1e-9
"""Added to every margin, so that float rounding cannot turn a change of exactly the margin into a verdict."""


@dataclass(frozen=True)
class Evidence:
    """One metric as evidence for a dimension, and how large a difference counts.

    Attributes:
        metric: the `EvalRecord.metrics` key.
        higher_is_better: the metric's direction.
        margin: a difference of at most this is "same"; absolute, or a fraction when `relative`.
        relative: the margin is a fraction of the larger magnitude of the two values (for metrics without a
            natural scale, such as flicker), so the rule is symmetric: swapping the sides flips the verdict.
    """

    metric: str
    higher_is_better: bool
    margin: float
    relative: bool = False

    def compare(self, baseline: float | None, candidate: float | None) -> Verdict:
        """The candidate's verdict on this metric; "same" when either value is missing (nothing to compare).

        Example:
            >>> Evidence("render.flicker", higher_is_better=False, margin=0.1, relative=True).compare(2.0, 1.5)
            'good'
        """
        if baseline is None or candidate is None or math.isnan(baseline) or math.isnan(candidate):
            return "same"
        gain = candidate - baseline if self.higher_is_better else baseline - candidate
        threshold = self.margin * max(abs(baseline), abs(candidate)) if self.relative else self.margin
        threshold += _ROUNDING  # 0.55 - 0.5 is 0.05000000000000004, yet a change of exactly the margin is "same"
        if gain > threshold:
            return "good"
        if gain < -threshold:
            return "bad"
        return "same"


EVIDENCE: dict[str, tuple[Evidence, ...]] = {
    "lip_sync": (
        Evidence("render.lip_sync_corr", True, 0.05),
        Evidence("render.lip_sync_offset_abs_frames", False, 0.5),  # half a frame: below what can be seen
        Evidence("render.right_mouth", True, 0.01),
    ),
    "visual_quality": (
        Evidence("render.flicker", False, 0.10, relative=True),
        Evidence("render.identity_similarity", True, 0.01),
        Evidence("render.color_drift_de", False, 1.0),  # CIEDE2000 of about 1: a just-noticeable difference
    ),
    "motion": (
        Evidence("render.seam_jump", False, 0.10, relative=True),
        Evidence("plan.camera_adherence", True, 0.05),
        Evidence("plan.action_adherence", True, 0.05),
    ),
    "expressiveness": (
        Evidence("plan.emotion_adherence", True, 0.05),
        Evidence("plan.negative_opposition", True, 0.05),
        Evidence("plan.conflict_resolution", True, 0.05),
    ),
    "text_relevance": (
        Evidence("plan.text_relevance", True, 0.02),
        Evidence("plan.instruction_adherence", True, 0.05),
        Evidence("plan.speaker_binding", True, 0.05),
    ),
}
"""Dimension -> evidence, one per metric judge (column k is `MetricJudge(k)`). Add a column to every row for a
fourth judge, or a row for a new dimension; each row needs as many columns as the panel has metric judges."""


def _overall(verdicts: Sequence[Verdict]) -> Verdict:
    """The sign of (#good - #bad): the side that wins more dimensions wins overall."""
    score = sum(v == "good" for v in verdicts) - sum(v == "bad" for v in verdicts)
    return "good" if score > 0 else "bad" if score < 0 else "same"


def _present(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


class MetricJudge:
    """An offline judge that reads column `column` of the evidence table: one metric per dimension.

    When its own metric is missing on either side (a run without renders has no render metrics), the judge reads
    the next piece of evidence in the dimension's row that both sides have, so a plan-only comparison is still
    judged on evidence (two judges may then read the same metric); with none at all the verdict is "same".

    Args:
        column: which piece of evidence per dimension this judge uses.
        evidence: the table; `EVIDENCE` by default. It must cover every GSB dimension.

    Raises:
        ValueError: the table misses a GSB dimension, names "overall", or has no column `column`.

    Example:
        >>> from codirector.schemas.evals import EvalRecord
        >>> def side(corr: float) -> Side:
        ...     return Side(EvalRecord(suite="s", case_id="c", category="other", provider="offline",
        ...         prompts_sha256="0" * 64, job_sha256="0" * 64, status="ok",
        ...         metrics={"render.lip_sync_corr": corr}))
        >>> verdicts = MetricJudge(0).judge("c", side(0.5), side(0.7))
        >>> verdicts["lip_sync"], verdicts["motion"], verdicts["overall"]
        ('good', 'same', 'good')
    """

    def __init__(self, column: int, evidence: Mapping[str, Sequence[Evidence]] = EVIDENCE) -> None:
        missing = [d for d in GSB_DIMENSIONS if d not in evidence]
        if missing or "overall" in evidence:
            raise ValueError(f"the evidence table must cover {list(GSB_DIMENSIONS)} and not 'overall'")
        width = min(len(row) for row in evidence.values())
        if not 0 <= column < width:
            raise ValueError(f"column must be in 0..{width - 1}, got {column}")
        self.column = column
        # each row rotated to start at this judge's own column: its evidence first, then the fallbacks in order
        self.evidence: dict[str, tuple[Evidence, ...]] = {
            dimension: (*row[column:], *row[:column]) for dimension, row in evidence.items()
        }
        self.name = f"metrics:{column}"

    def judge(self, case_id: str, baseline: Side, candidate: Side) -> dict[str, Verdict]:
        """Compare the two records' metrics, dimension by dimension; "overall" is who wins more dimensions."""
        verdicts: dict[str, Verdict] = {}
        for dimension, row in self.evidence.items():
            verdicts[dimension] = "same"
            for item in row:
                before, after = baseline.record.metrics.get(item.metric), candidate.record.metrics.get(item.metric)
                if _present(before) and _present(after):
                    verdicts[dimension] = item.compare(before, after)
                    break
        verdicts["overall"] = _overall(list(verdicts.values()))
        return verdicts

    def __repr__(self) -> str:
        return f"MetricJudge({self.column})"


def default_panel() -> list[Judge]:
    """The offline panel: one `MetricJudge` per evidence column, three with `EVIDENCE`.

    Example:
        >>> [judge.name for judge in default_panel()]
        ['metrics:0', 'metrics:1', 'metrics:2']
    """
    width = min(len(row) for row in EVIDENCE.values())
    return [MetricJudge(column) for column in range(width)]


# ---------------------------------------------------------------------------------------------------------------
# Panels

_SPEC_FORMS = "metrics, metrics:K (K = 0..2), llm:PROVIDER:MODEL[#SEED], sheet:PATH"


def check_panel(judges: Sequence[Judge]) -> None:
    """Refuse a panel that cannot give a majority vote as the papers do.

    The papers take the majority of three annotators. Any odd number of judges works the same way; an even
    number can split evenly between two verdicts (good against bad), so it is refused rather than reported as a
    string of splits.

    Raises:
        UserError: no judges, an even number of them, or two judges with one name.
    """
    names = [judge.name for judge in judges]
    if not names:
        raise UserError("judges", "the panel is empty", f"Name three judges, e.g. 'metrics' ({_SPEC_FORMS}).")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise UserError(
            f"judges {', '.join(names)}",
            f"{', '.join(twice)} {'appear' if len(twice) > 1 else 'appears'} more than once",
            "Name each judge once (an LLM judge with another seed: llm:PROVIDER:MODEL#SEED).",
        )
    if len(names) % 2 == 0:
        raise UserError(
            f"judges {', '.join(names)}",
            f"a panel of {len(names)} judges can split evenly, leaving no majority",
            "Use an odd number of judges: three, as the papers' three annotators.",
        )


def load_judges(specs: Sequence[str], **provider_options: object) -> list[Judge]:
    """Build a panel from judge specs.

    Specs:
        ``metrics``: the three offline metric judges (`default_panel`).
        ``metrics:K``: metric judge K alone (0, 1 or 2).
        ``llm:PROVIDER_REF[#SEED]``: a chat model as a judge, e.g. ``llm:openai:gpt-4o-mini#1``; the
        reference goes to `resolve_provider` with `provider_options`.
        ``sheet:PATH``: a filled-in verdict sheet, one judge per annotator column.

    Raises:
        UserError: an unknown spec, ``llm:offline`` (an LLM judge needs a model), a bad seed or column, an
            unknown provider (`ProviderNotFoundError`), a bad sheet, or a panel `check_panel` refuses.

    Example:
        >>> [judge.name for judge in load_judges(["metrics:0", "metrics:2", "metrics:1"])]
        ['metrics:0', 'metrics:2', 'metrics:1']
    """
    from codirector.evals.verdict_sheet import SheetJudge, sheet_annotators  # lazily: it imports this module

    judges: list[Judge] = []
    for spec in specs:
        kind, _, rest = spec.strip().partition(":")
        rest = rest.strip()
        if kind == "metrics":
            judges += _metric_judges(spec, rest)
        elif kind == "llm":
            judges.append(_llm_judge(spec, rest, provider_options))
        elif kind == "sheet" and rest:
            path = Path(rest)
            judges += [SheetJudge(path, annotator) for annotator in sheet_annotators(path)]
        else:
            raise UserError(spec, "not a judge spec", f"Write one of: {_SPEC_FORMS}.")
    check_panel(judges)
    return judges


def _metric_judges(spec: str, column: str) -> list[Judge]:
    if not column:
        return default_panel()
    width = min(len(row) for row in EVIDENCE.values())
    if not (column.isdigit() and int(column) < width):
        raise UserError(spec, f"no metric judge {column!r}", f"Write metrics:K with K in 0..{width - 1}, or metrics.")
    return [MetricJudge(int(column))]


def _llm_judge(spec: str, rest: str, provider_options: Mapping[str, object]) -> Judge:
    from codirector.evals.llm_judge import LLMJudge  # lazily: it imports this module

    ref, sep, seed_text = rest.rpartition("#")
    if not sep:
        ref, seed_text = rest, "0"
    if not seed_text.isdigit():
        raise UserError(spec, f"the seed {seed_text!r} is not a whole number", "Write llm:PROVIDER:MODEL#SEED.")
    if not ref:
        raise UserError(spec, "no model given", "Write llm:PROVIDER:MODEL, e.g. llm:openai:gpt-4o-mini.")
    provider = resolve_provider(ref, **provider_options)
    if isinstance(provider, OfflineProvider):
        raise UserError(
            spec,
            "an LLM judge needs a model, and the offline provider has none",
            "Name a chat model, e.g. llm:openai:gpt-4o-mini, or use the offline metric judges: metrics.",
        )
    return LLMJudge(provider, seed=int(seed_text))


def _checked(judge: Judge, case_id: str, verdicts: Mapping[str, str]) -> dict[str, Verdict]:
    """A judge's answer, checked: every dimension present and every verdict good/same/bad."""
    missing = [d for d in DIMENSIONS if d not in verdicts]
    invalid = {d: v for d, v in verdicts.items() if v not in VERDICTS}
    if missing or invalid:
        raise ValueError(f"judge {judge.name!r} on {case_id!r}: missing {missing}, invalid {invalid}")
    return {dimension: cast(Verdict, verdict) for dimension, verdict in verdicts.items()}


def run_panel(judges: Sequence[Judge], pairs: Sequence[tuple[str, Side, Side]]) -> list[Vote]:
    """Let every judge rate every pair; one `Vote` per case and dimension, verdicts in judge order.

    Dimensions are `DIMENSIONS`, then any extra dimension every judge rated (from an extended `EVIDENCE`).

    Args:
        judges: the panel (`check_panel` must accept it).
        pairs: (case_id, baseline, candidate) per case; each case once.

    Raises:
        UserError: the panel is refused (see `check_panel`), or a judge's own input error.
        ValueError: a case appears twice, or a judge answered without some dimension or with an invalid verdict.

    Example:
        >>> from codirector.schemas.evals import EvalRecord
        >>> record = EvalRecord(suite="s", case_id="c", category="other", provider="offline",
        ...     prompts_sha256="0" * 64, job_sha256="0" * 64, status="ok")
        >>> votes = run_panel(default_panel(), [("c", Side(record), Side(record))])
        >>> len(votes), votes[0].dimension, votes[0].majority
        (6, 'lip_sync', 'same')
    """
    check_panel(judges)
    names = tuple(judge.name for judge in judges)
    seen: set[str] = set()
    votes: list[Vote] = []
    for case_id, baseline, candidate in pairs:
        if case_id in seen:
            raise ValueError(f"case {case_id!r} appears more than once in the pairs")
        seen.add(case_id)
        answers = [_checked(judge, case_id, judge.judge(case_id, baseline, candidate)) for judge in judges]
        extra = [d for d in answers[0] if d not in DIMENSIONS and all(d in answer for answer in answers)]
        for dimension in (*DIMENSIONS, *extra):
            votes.append(Vote(case_id, dimension, tuple(answer[dimension] for answer in answers), names))
        logger.debug("judged %s: %s", case_id, {d: [a[d] for a in answers] for d in DIMENSIONS})
    return votes
