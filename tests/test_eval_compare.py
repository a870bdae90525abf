"""`eval compare` on two fixed result sets whose deltas, regressions and GSB are worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codirector.cli import run as cli_run
from codirector.evals.compare import compare_runs
from codirector.evals.report import line_chart, print_summary, write_report
from codirector.schemas import EvalRecord, EvalRun, dump_document

# Lip-sync metrics of four cases, A -> B, and how each of the three offline judges reads them (judge 0: r,
# margin 0.05; judge 1: |offset|, margin 0.5 frames; judge 2: right mouth, which a single voice does not have, so
# judge 2 reads the next evidence in its row, r):
#   c1: r 0.50 -> 0.70 good, |offset| 2 -> 0 good, r good    -> majority good
#   c2: r 0.60 -> 0.40 bad,  |offset| 1 -> 3 bad,  r bad     -> majority bad
#   c3: r 0.50 -> 0.52 same, |offset| 1 -> 1 same, r same    -> majority same (a tie)
#   c4: r 0.50 -> 0.70 good, |offset| 0 -> 2 bad,  r good    -> majority good
# lip_sync GSB: G=2, S=1, B=1 -> (2+1)/(1+1) = 1.5; the other dimensions have no evidence: S=4, ratio 1.
# Splits (three different verdicts) are counted in test_eval_gsb's hand-worked table.
CASES = {
    "c1": ((0.50, 2.0), (0.70, 0.0)),
    "c2": ((0.60, 1.0), (0.40, 3.0)),
    "c3": ((0.50, 1.0), (0.52, 1.0)),
    "c4": ((0.50, 0.0), (0.70, 2.0)),
}


def _write_run(folder: Path, side: int, prompts_dir: str | None) -> Path:
    records = []
    for case_id, values in CASES.items():
        corr, offset = values[side]
        records.append(
            EvalRecord(
                suite="fixed", case_id=case_id, category="english_speech", provider="offline", backend="preview",
                prompt_versions={"negative_director/opposites": f"1@{side}"}, prompts_sha256=f"{side}" * 64,
                job_sha256="0" * 64, status="ok",
                metrics={"render.lip_sync_corr": corr, "render.lip_sync_offset_abs_frames": offset},
                details={"render.identity_curve": {"t_s": [0.0, 1.0, 2.0], "similarity": [0.9, 0.85 - side / 10, 0.8]}},
            )
        )  # fmt: skip
    folder.mkdir(parents=True)
    (folder / "results.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in records))
    dump_document(
        EvalRun(
            codirector_version="0.1.0", suite="fixed", suite_path=Path("fixed.yaml"), suite_sha256="1" * 64,
            provider="offline", backend="preview", prompts_dir=Path(prompts_dir) if prompts_dir else None,
            created_at="2026-11-22T10:00:00Z", duration_s=1.0, num_cases=4, num_failed=0,
        ),  # type: ignore[arg-type]
        folder / "run.json",
    )  # fmt: skip
    return folder


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path]:
    return _write_run(tmp_path / "a", 0, None), _write_run(tmp_path / "b", 1, "/prompts/edited")


def test_metric_deltas_and_the_cases_that_got_worse(runs: tuple[Path, Path]) -> None:
    comparison = compare_runs(*runs, gsb=False)
    assert comparison.differences == {"prompts_dir": ("packaged", "/prompts/edited")}
    by_name = {m.metric: m for m in comparison.metrics}
    corr = by_name["render.lip_sync_corr"]
    assert corr.baseline_mean == pytest.approx(0.525)
    assert corr.candidate_mean == pytest.approx(0.58)
    assert (corr.num_better, corr.num_worse) == (2, 1)  # c3's +0.02 is inside the 0.03 tolerance
    offset = by_name["render.lip_sync_offset_abs_frames"]
    assert (offset.num_better, offset.num_worse) == (1, 2)
    worse = sorted((c.case_id, c.metric) for c in comparison.worse)
    assert worse == [
        ("c2", "render.lip_sync_corr"),
        ("c2", "render.lip_sync_offset_abs_frames"),
        ("c4", "render.lip_sync_offset_abs_frames"),
    ]
    assert comparison.gsb == {}


def test_gsb_from_the_offline_panel_matches_the_hand_count(runs: tuple[Path, Path]) -> None:
    comparison = compare_runs(*runs)
    assert comparison.judges == ["metrics:0", "metrics:1", "metrics:2"]
    lip = comparison.gsb["lip_sync"]
    assert (lip.good, lip.same, lip.bad, lip.splits) == (2, 1, 1, 0)
    assert lip.ratio == pytest.approx(1.5)
    motion = comparison.gsb["motion"]
    assert (motion.good, motion.same, motion.bad) == (0, 4, 0)
    overall = comparison.gsb["overall"]  # each judge's overall is its lip-sync verdict here
    assert (overall.good, overall.same, overall.bad, overall.splits) == (2, 1, 1, 0)
    verdicts = {v.case_id: (v.verdicts, v.majority) for v in comparison.votes if v.dimension == "lip_sync"}
    assert verdicts["c4"] == (("good", "bad", "good"), "good")
    assert {case: majority for case, (_, majority) in verdicts.items()} == {
        "c1": "good", "c2": "bad", "c3": "same", "c4": "good"
    }  # fmt: skip


def test_the_report_shows_gsb_deltas_regressions_and_curves(
    runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    comparison = compare_runs(*runs)
    page = write_report(comparison, tmp_path / "report").read_text()
    assert page.count("<svg") >= 1 + len(CASES)  # the GSB chart and an identity curve per case
    assert "lip sync r" in page
    assert "c2" in page
    saved = json.loads((tmp_path / "report" / "comparison.json").read_text())
    assert saved["gsb"]["lip_sync"]["good"] == 2
    assert len((tmp_path / "report" / "votes.jsonl").read_text().splitlines()) == len(CASES) * 6
    print_summary(comparison)
    out = capsys.readouterr().out
    assert "cases that got worse (3)" in out
    assert "prompts_dir: packaged -> /prompts/edited" in out


def test_the_cli_compares_and_writes_a_sheet_for_people(runs: tuple[Path, Path], tmp_path: Path) -> None:
    sheet = tmp_path / "sheet.csv"
    code = cli_run(
        ["eval", "compare", str(runs[0]), str(runs[1]), "-o", str(tmp_path / "r"), "--write-sheet", str(sheet)]
    )
    assert code == 0
    assert (tmp_path / "r" / "report.html").is_file()
    assert sheet.read_text().count("\n") == 1 + len(CASES) * 6
    assert cli_run(["eval", "compare", str(runs[0]), str(runs[1]), "--judge", "metrics:0", "--judge", "metrics:1"]) == 2


def test_line_chart_scales_series_into_the_box() -> None:
    svg = line_chart([("a", [0, 10], [0.0, 1.0], "#000")], title="t", x_label="x", y_label="y", width=200, height=100)
    assert svg.startswith("<svg")
    assert "polyline" in svg
    points = svg.split('points="')[1].split('"')[0].split()
    (x0, y0), (x1, y1) = (tuple(map(float, p.split(","))) for p in points)
    assert x0 < x1
    assert y0 > y1
    assert line_chart([], title="t", x_label="x", y_label="y") == ""


def test_a_case_only_the_candidate_failed_is_lost_on_every_dimension(runs: tuple[Path, Path]) -> None:
    a, b = runs
    finished = EvalRecord.model_validate_json((a / "results.jsonl").read_text().splitlines()[0])
    failed = finished.model_copy(
        update={"case_id": "c5", "status": "failed", "metrics": {}, "error": "AgentOutputError"}
    )
    with open(a / "results.jsonl", "a") as stream:
        stream.write(finished.model_copy(update={"case_id": "c5"}).model_dump_json() + "\n")
    with open(b / "results.jsonl", "a") as stream:
        stream.write(failed.model_dump_json() + "\n")
    comparison = compare_runs(a, b)
    assert comparison.failed == {"baseline": [], "candidate": ["c5"]}
    lost = [v for v in comparison.votes if v.case_id == "c5"]
    assert len(lost) == 6
    assert all(v.majority == "bad" for v in lost)
    lip = comparison.gsb["lip_sync"]  # the hand count above plus one B: (2+1)/(2+1)
    assert (lip.good, lip.same, lip.bad) == (2, 1, 2)
    assert lip.ratio == pytest.approx(1.0)
