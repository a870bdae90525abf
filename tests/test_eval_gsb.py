"""GSB arithmetic against a hand-worked table, the majority vote, and the bootstrap interval."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from codirector.evals.gsb import DIMENSIONS, VERDICTS, GsbTally, Vote, gsb_ratio, gsb_table, majority_vote, tally

PANEL = ("j1", "j2", "j3")

# Ten cases, three judges, one dimension. Majority worked by hand:
#   case  j1    j2    j3    majority
#   c01   good  good  good  good
#   c02   good  good  same  good
#   c03   good  bad   good  good
#   c04   same  same  bad   same (tie)
#   c05   same  same  same  same (tie)
#   c06   bad   bad   good  bad
#   c07   bad   same  bad   bad
#   c08   good  same  bad   split
#   c09   bad   good  same  split
#   c10   good  good  bad   good
# G = 4 (c01 c02 c03 c10), ties = 2 (c04 c05), splits = 2 (c08 c09), B = 2 (c06 c07)
# S = ties + splits = 4, so GSB = (G+S)/(B+S) = (4+4)/(2+4) = 8/6 = 4/3.
TABLE = {
    "c01": ("good", "good", "good"),
    "c02": ("good", "good", "same"),
    "c03": ("good", "bad", "good"),
    "c04": ("same", "same", "bad"),
    "c05": ("same", "same", "same"),
    "c06": ("bad", "bad", "good"),
    "c07": ("bad", "same", "bad"),
    "c08": ("good", "same", "bad"),
    "c09": ("bad", "good", "same"),
    "c10": ("good", "good", "bad"),
}
EXPECTED_MAJORITY = {
    "c01": "good",
    "c02": "good",
    "c03": "good",
    "c04": "same",
    "c05": "same",
    "c06": "bad",
    "c07": "bad",
    "c08": None,
    "c09": None,
    "c10": "good",
}

# A second dimension, "overall", worked by hand:
#   o1 good good bad -> good;  o2 bad bad same -> bad;  o3 same good same -> same;  o4 bad bad bad -> bad
# G = 1, S = 1, B = 2, splits = 0: GSB = (1+1)/(2+1) = 2/3.
OVERALL = {
    "c01": ("good", "good", "bad"),
    "c02": ("bad", "bad", "same"),
    "c03": ("same", "good", "same"),
    "c04": ("bad", "bad", "bad"),
}


def _votes(table: dict[str, tuple[str, ...]], dimension: str, prefix: str = "") -> list[Vote]:
    return [Vote(prefix + case, dimension, verdicts, PANEL) for case, verdicts in table.items()]  # type: ignore[arg-type]


def test_the_hand_worked_table() -> None:
    votes = _votes(TABLE, "lip_sync")
    assert {vote.case_id: vote.majority for vote in votes} == EXPECTED_MAJORITY
    result = tally(votes, "lip_sync")
    assert (result.good, result.same, result.bad, result.splits, result.ties) == (4, 4, 2, 2, 2)
    assert result.num_cases == 10
    assert result.ratio == pytest.approx(4 / 3)
    assert result.ratio == gsb_ratio(4, 4, 2)


def test_the_table_keeps_dimensions_apart_and_always_has_overall() -> None:
    votes = _votes(TABLE, "lip_sync") + _votes(OVERALL, "overall")
    table = gsb_table(votes, num_resamples=200)
    assert list(table) == ["lip_sync", "overall"]
    assert table["lip_sync"].ratio == pytest.approx(4 / 3)
    overall = table["overall"]
    assert (overall.good, overall.same, overall.bad, overall.splits, overall.num_cases) == (1, 1, 2, 0, 4)
    assert overall.ratio == pytest.approx(2 / 3)
    # Known dimensions come in DIMENSIONS order whatever the vote order; "overall" is there even without votes.
    shuffled = _votes(OVERALL, "motion") + _votes(TABLE, "lip_sync") + _votes(OVERALL, "custom")
    assert list(gsb_table(shuffled, num_resamples=0)) == ["lip_sync", "motion", "custom", "overall"]
    empty = gsb_table(shuffled, num_resamples=0)["overall"]
    assert (empty.num_cases, empty.ratio, empty.ci_low, empty.ci_high) == (0, None, None, None)


def test_ratio_edge_cases() -> None:
    assert gsb_ratio(3, 0, 0) is None  # all wins: B+S == 0
    assert gsb_ratio(0, 0, 0) is None
    assert gsb_ratio(0, 0, 5) == 0.0
    assert gsb_ratio(0, 2, 0) == 1.0
    assert gsb_ratio(5, 3, 2) == pytest.approx(1.6)
    with pytest.raises(ValueError, match=">= 0"):
        gsb_ratio(-1, 0, 1)
    all_good = tally(_votes({"a": ("good",) * 3, "b": ("good", "good", "bad")}, "motion"), "motion")
    assert (all_good.good, all_good.ratio, all_good.ci_low, all_good.ci_high) == (2, None, None, None)


def test_majority_vote_for_every_three_judge_pattern() -> None:
    patterns = list(itertools.product(VERDICTS, repeat=3))
    assert len(patterns) == 27
    splits = 0
    for pattern in patterns:
        counts = Counter(pattern)
        result = majority_vote(pattern)
        if len(counts) == 3:  # one of each: no majority
            assert result is None, pattern
            splits += 1
        else:
            top, count = counts.most_common(1)[0]
            assert count >= 2
            assert result == top, pattern
    assert splits == 6  # the 3! orders of good/same/bad
    assert majority_vote(["same", "bad", "same"]) == "same"
    assert majority_vote(["bad", "bad", "good"]) == "bad"


def test_majority_vote_other_panels_and_bad_input() -> None:
    assert majority_vote(["bad"]) == "bad"
    assert majority_vote(["good", "bad"]) is None  # an even panel split in two has no majority
    assert majority_vote(["good", "good", "bad", "same", "good"]) == "good"
    assert majority_vote(["good", "good", "bad", "bad", "same"]) is None
    with pytest.raises(ValueError, match="at least one"):
        majority_vote([])
    with pytest.raises(ValueError, match="better"):
        majority_vote(["good", "better", "same"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="2 verdicts for 3 judges"):
        Vote("c", "motion", ("good", "bad"), PANEL)
    with pytest.raises(ValueError, match="more than one vote"):
        tally(_votes(TABLE, "motion") + _votes({"c01": ("bad",) * 3}, "motion"), "motion")


def test_bootstrap_interval_holds_the_estimate_and_is_deterministic() -> None:
    votes = _votes(TABLE, "lip_sync")
    first = tally(votes, "lip_sync", seed=7)
    again = tally(votes, "lip_sync", seed=7)
    other = tally(votes, "lip_sync", seed=8)
    assert first == again
    assert (first.ci_low, first.ci_high) != (other.ci_low, other.ci_high)
    assert first.ci_low is not None
    assert first.ci_high is not None
    assert first.ratio is not None
    assert first.ci_low < first.ratio < first.ci_high
    narrow = tally(votes, "lip_sync", level=0.5, seed=7)
    assert narrow.ci_low is not None
    assert narrow.ci_high is not None
    assert first.ci_low <= narrow.ci_low < narrow.ci_high <= first.ci_high
    none = tally(votes, "lip_sync", num_resamples=0)
    assert (none.ratio, none.ci_low, none.ci_high) == (first.ratio, None, None)
    with pytest.raises(ValueError, match="level"):
        tally(votes, "lip_sync", level=1.0)


def test_bootstrap_narrows_with_more_cases() -> None:
    small = tally(_votes(TABLE, "lip_sync"), "lip_sync")
    # The same table ten times over: the same shares and ratio, ten times the cases.
    large_votes = [vote for copy in range(10) for vote in _votes(TABLE, "lip_sync", prefix=f"r{copy}-")]
    large = tally(large_votes, "lip_sync")
    assert large.ratio == pytest.approx(small.ratio)
    assert large.num_cases == 100
    assert small.ci_low is not None
    assert small.ci_high is not None
    assert large.ci_low is not None
    assert large.ci_high is not None
    assert large.ci_high - large.ci_low < 0.5 * (small.ci_high - small.ci_low)


def test_bootstrap_matches_resampling_case_indices() -> None:
    """The multinomial draw must give what resampling the cases themselves gives (checked independently)."""
    # 100 cases, so the resampled ratios are dense enough for their quantiles to be compared closely.
    votes = [vote for copy in range(10) for vote in _votes(TABLE, "lip_sync", prefix=f"r{copy}-")]
    result = tally(votes, "lip_sync", num_resamples=20_000, seed=1)
    categories = np.array(["same" if v.majority is None else v.majority for v in votes])
    rng = np.random.default_rng(123)
    picks = categories[rng.integers(0, len(categories), size=(20_000, len(categories)))]
    g, s, b = ((picks == name).sum(axis=1) for name in ("good", "same", "bad"))
    defined = (b + s) > 0
    ratios = (g[defined] + s[defined]) / (b[defined] + s[defined])
    low, high = np.quantile(ratios, [0.025, 0.975])
    assert result.ci_low == pytest.approx(low, abs=0.03)
    assert result.ci_high == pytest.approx(high, abs=0.03)


def test_tally_to_dict_reports_ties_and_splits() -> None:
    result = tally(_votes(TABLE, "lip_sync"), "lip_sync", num_resamples=100)
    data = result.to_dict()
    assert data["good"] == 4
    assert data["same"] == 4
    assert data["bad"] == 2
    assert data["ties"] == 2
    assert data["splits"] == 2
    assert data["num_cases"] == 10
    assert data["level"] == 0.95
    assert data["ratio"] == pytest.approx(4 / 3)
    assert set(data) >= {"dimension", "ci_low", "ci_high"}
    assert GsbTally(**{k: v for k, v in data.items() if k != "ties"}) == result


def test_dimensions_are_the_papers_five_and_overall() -> None:
    assert DIMENSIONS == ("lip_sync", "visual_quality", "motion", "expressiveness", "text_relevance", "overall")
