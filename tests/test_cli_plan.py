"""`codirector plan`: a plan file from an example job, and exit code 2 on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import EXAMPLES

from codirector.cli import run
from codirector.schemas import Plan, load_document


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODIRECTOR_HOME", str(tmp_path / "home"))


def test_plan_writes_a_valid_plan_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "out" / "plan.json"
    assert run(["plan", str(EXAMPLES / "cat" / "job.yaml"), "-o", str(output)]) == 0
    summary = capsys.readouterr().out
    assert "shots" in summary
    assert "0 model call(s)" in summary
    plan = load_document(output)
    assert isinstance(plan, Plan)
    assert run(["validate", str(output)]) == 0
    assert not list(output.parent.glob(".*.tmp")), "no temporary file is left behind"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--provider", "opanai:gpt-4o"], "Did you mean 'openai'"),
        (["--expert-provider", "eyes=offline"], "EXPERT=PROVIDER"),
        (["--provider", "transformers:/no/such/model"], "/no/such/model"),
    ],
)
def test_bad_provider_options_exit_2(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["plan", str(EXAMPLES / "cat" / "job.yaml"), "-o", str(tmp_path / "p.json"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "p.json").exists()


def test_missing_job_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["plan", str(tmp_path / "nope.yaml"), "-o", str(tmp_path / "p.json")]) == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_review_writes_the_storyline_for_a_person_and_reads_it_back(tmp_path: Path) -> None:
    output = tmp_path / "plan.json"
    # Without a terminal the pause returns at once, so the storyline comes back as written: the round trip
    # through the file a person would edit is what is checked.
    assert run(["plan", str(EXAMPLES / "cat" / "job.yaml"), "-o", str(output), "--review", "--no-cache"]) == 0
    draft = tmp_path / "plan.storyline.yaml"
    assert draft.exists()
    plan = load_document(output)
    assert isinstance(plan, Plan)
    assert plan.reviewed
    assert plan.storyline == load_document(draft)
