"""GSB pairwise comparison: per-dimension verdicts, a majority vote per case, tallies and a bootstrap interval.

Two runs of the same suite (a baseline A and a candidate B) are compared case by case. Each judge says, per
dimension, whether the candidate is better ("good"), equal ("same") or worse ("bad") than the baseline; the case's
verdict is the judges' majority, and a dimension's score is the GSB ratio (G+S)/(B+S) over cases (Kling-Avatar
sec. 3.2 / KlingAvatar 2.0 sec. 4: GSB, three annotators, majority vote, overall and per dimension). A ratio
above 1 means the candidate wins more than it loses.

Two ways a case ends up on the "same" side, reported apart:

* a tie: the judges' majority says "same" (the sides are equally good);
* a split: no verdict has a majority (good/same/bad from three judges). The case is counted inside `same` for the
  ratio, since the panel could not tell the sides apart, and in `splits` on its own, so a table that is mostly
  splits (judges that disagree) does not read like a table of clear ties.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from codirector.schemas.evals import GSB_DIMENSIONS

__all__ = [
    "DIMENSIONS",
    "VERDICTS",
    "GsbTally",
    "Verdict",
    "Vote",
    "gsb_ratio",
    "gsb_table",
    "majority_vote",
    "tally",
]

Verdict = Literal["good", "same", "bad"]
"""From the candidate's point of view: "good" means the candidate (B) is better than the baseline (A)."""
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)

DIMENSIONS: tuple[str, ...] = (*GSB_DIMENSIONS, "overall")
"""The dimensions a judge rates: the papers' five, then the overall impression (rated, not derived)."""


def majority_vote(verdicts: Sequence[Verdict]) -> Verdict | None:
    """The verdict more than half of the judges gave, or None when none has a majority (a split).

    A strict majority, so an even panel split down the middle (good/bad) is a split too.

    Args:
        verdicts: one verdict per judge.

    Raises:
        ValueError: no verdicts, or a value that is not good/same/bad.

    Example:
        >>> majority_vote(["good", "good", "bad"])
        'good'
        >>> majority_vote(["good", "same", "bad"]) is None
        True
    """
    if not verdicts:
        raise ValueError("a majority vote needs at least one verdict")
    unknown = sorted({str(v) for v in verdicts} - set(VERDICTS))
    if unknown:
        raise ValueError(f"verdicts must be one of {VERDICTS}, got {unknown}")
    verdict, count = Counter(verdicts).most_common(1)[0]
    return verdict if 2 * count > len(verdicts) else None


def gsb_ratio(good: int, same: int, bad: int) -> float | None:
    """(G+S)/(B+S), the papers' GSB score; None when B+S == 0 (every case a win: the ratio is unbounded).

    Raises:
        ValueError: a negative count.

    Example:
        >>> gsb_ratio(5, 3, 2)
        1.6
        >>> gsb_ratio(4, 0, 0) is None
        True
    """
    if min(good, same, bad) < 0:
        raise ValueError(f"counts must be >= 0, got good={good}, same={same}, bad={bad}")
    return (good + same) / (bad + same) if bad + same else None


@dataclass(frozen=True)
class Vote:
    """The panel's verdicts on one case and dimension.

    Attributes:
        case_id: the eval case.
        dimension: one of `DIMENSIONS` (or a dimension a custom judge adds).
        verdicts: one per judge, in judge order, from the candidate's point of view.
        judges: the judges' names, in the same order.

    Example:
        >>> Vote("greeting", "motion", ("good", "same", "good"), ("j1", "j2", "j3")).majority
        'good'
    """

    case_id: str
    dimension: str
    verdicts: tuple[Verdict, ...]
    judges: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.verdicts) != len(self.judges):
            raise ValueError(f"{len(self.verdicts)} verdicts for {len(self.judges)} judges")
        majority_vote(self.verdicts)  # validates: at least one verdict, each good/same/bad

    @property
    def majority(self) -> Verdict | None:
        """The majority verdict; None for a split."""
        return majority_vote(self.verdicts)


@dataclass(frozen=True)
class GsbTally:
    """One dimension's GSB over the cases.

    Attributes:
        good, same, bad: cases by majority verdict; `same` includes the splits (see the module docstring).
        splits: cases without a majority, also counted in `same`.
        ratio: (G+S)/(B+S), None when B+S == 0.
        ci_low, ci_high: the bootstrap percentile interval of the ratio at `level`; None when there are no
            cases, no resample gave a defined ratio, or no resampling was asked for.
        num_cases: cases voted on in this dimension.
        level: the interval's confidence level.
    """

    dimension: str
    good: int
    same: int
    bad: int
    splits: int
    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    num_cases: int
    level: float = 0.95

    @property
    def ties(self) -> int:
        """Cases whose majority said "same" (splits excluded)."""
        return self.same - self.splits

    def to_dict(self) -> dict[str, Any]:
        """The tally as plain JSON-ready data, ties included.

        Example:
            >>> GsbTally("motion", 2, 1, 1, 0, 1.5, 0.5, 3.0, 4).to_dict()["ties"]
            1
        """
        return {
            "dimension": self.dimension,
            "good": self.good,
            "same": self.same,
            "bad": self.bad,
            "ties": self.ties,
            "splits": self.splits,
            "ratio": self.ratio,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "level": self.level,
            "num_cases": self.num_cases,
        }


def tally(
    votes: Sequence[Vote], dimension: str, *, num_resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> GsbTally:
    """GSB of one dimension: majority per case, counts, ratio and a bootstrap percentile interval over cases.

    The interval resamples cases with replacement and recomputes the ratio. A case enters the ratio only through
    its category (good, same or bad), so the category counts of a resample of n cases follow a multinomial
    with the observed shares: that is how it is drawn, exactly the same distribution as drawing case indices,
    in O(resamples) memory. Resamples where B+S == 0 have no ratio and are skipped, so with few losses and ties
    the interval describes the resamples that have a ratio (it is None if none has).

    Args:
        votes: votes of any dimensions; those of `dimension` are used.
        dimension: the dimension to tally.
        num_resamples: bootstrap resamples; 0 skips the interval.
        level: the interval's confidence level, in (0, 1).
        seed: seeds the generator, so the same votes give the same interval.

    Raises:
        ValueError: a case voted twice in the dimension, a level outside (0, 1) or a negative resample count.

    Example:
        >>> panel = ("j1", "j2", "j3")
        >>> votes = [
        ...     Vote("a", "motion", ("good", "good", "same"), panel),
        ...     Vote("b", "motion", ("bad", "same", "same"), panel),
        ...     Vote("c", "motion", ("good", "same", "bad"), panel),
        ... ]
        >>> result = tally(votes, "motion")
        >>> (result.good, result.same, result.bad, result.splits, result.ratio)
        (1, 2, 0, 1, 1.5)
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if num_resamples < 0:
        raise ValueError(f"num_resamples must be >= 0, got {num_resamples}")
    majorities: dict[str, Verdict | None] = {}
    for vote in votes:
        if vote.dimension != dimension:
            continue
        if vote.case_id in majorities:
            raise ValueError(f"case {vote.case_id!r} has more than one vote on {dimension!r}")
        majorities[vote.case_id] = vote.majority
    counts = Counter(majorities.values())
    splits = counts[None]
    good, same, bad = counts["good"], counts["same"] + splits, counts["bad"]
    ci_low, ci_high = _bootstrap(good, same, bad, num_resamples, level, seed)
    return GsbTally(
        dimension=dimension,
        good=good,
        same=same,
        bad=bad,
        splits=splits,
        ratio=gsb_ratio(good, same, bad),
        ci_low=ci_low,
        ci_high=ci_high,
        num_cases=len(majorities),
        level=level,
    )


def _bootstrap(
    good: int, same: int, bad: int, num_resamples: int, level: float, seed: int
) -> tuple[float | None, float | None]:
    """The percentile interval of (G+S)/(B+S) over resampled cases; (None, None) when it is undefined."""
    total = good + same + bad
    if total == 0 or num_resamples == 0:
        return None, None
    rng = np.random.default_rng(seed)
    drawn = rng.multinomial(total, np.array([good, same, bad]) / total, size=num_resamples)
    g, s, b = drawn[:, 0], drawn[:, 1], drawn[:, 2]
    defined = (b + s) > 0
    if not defined.any():
        return None, None
    ratios = (g[defined] + s[defined]) / (b[defined] + s[defined])
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(ratios, [tail, 1.0 - tail])
    return float(low), float(high)


def gsb_table(votes: Sequence[Vote], **kw: Any) -> dict[str, GsbTally]:
    """A tally per dimension: those of `DIMENSIONS` that have votes, then any other voted dimension, then
    "overall" (always present, empty when nobody voted on it).

    Args:
        votes: the panel's votes (see `codirector.evals.judges.run_panel`).
        **kw: passed to `tally` (num_resamples, level, seed).

    Example:
        >>> panel = ("j1",)
        >>> table = gsb_table([Vote("a", "motion", ("good",), panel), Vote("a", "overall", ("same",), panel)])
        >>> list(table), table["overall"].ratio
        (['motion', 'overall'], 1.0)
    """
    voted = list(dict.fromkeys(vote.dimension for vote in votes))
    ordered = [d for d in DIMENSIONS if d in voted and d != "overall"]
    ordered += [d for d in voted if d not in DIMENSIONS]
    return {dimension: tally(votes, dimension, **kw) for dimension in [*ordered, "overall"]}
