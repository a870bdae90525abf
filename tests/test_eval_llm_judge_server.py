"""The LLM judge over HTTP: SmolLM2-135M served by llama.cpp judges a real pair of plans in both orders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from llm_server import running_llama_server
from samples import sample

from codirector.evals.gsb import DIMENSIONS
from codirector.evals.judges import Side, load_judges, run_panel
from codirector.evals.llm_judge import LLMJudge
from codirector.schemas import EvalRecord, Plan
from codirector.schemas.documents import validate_data


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_llama_server(tmp_path_factory.mktemp("llama"), n_ctx=4096) as base_url:
        yield base_url


def _side(prompt: str, corr: float) -> Side:
    data = sample("plan")
    for shot in data["storyline"]["shots"]:
        shot["prompt"] = prompt
    plan = validate_data(data, "plan")
    assert isinstance(plan, Plan)
    record = EvalRecord(
        suite="s", case_id="greeting", category="english_speech", provider="offline", prompts_sha256="0" * 64,
        job_sha256="0" * 64, status="ok", metrics={"render.lip_sync_corr": corr, "plan.text_relevance": corr},
    )  # fmt: skip
    return Side(record=record, plan=plan)


def test_a_local_model_judges_both_orders_and_the_panel_votes(llama_server: str, tmp_path: Path) -> None:
    judges = load_judges(["llm:openai:smollm2#0", "metrics:0", "metrics:1"], base_url=llama_server, timeout_s=120)
    judge = judges[0]
    assert isinstance(judge, LLMJudge)
    baseline = _side("A woman stands still.", 0.2)
    candidate = _side("Ada smiles warmly and greets her guest, nodding.", 0.8)
    votes = run_panel(judges, [("greeting", baseline, candidate)])
    assert {vote.dimension for vote in votes} == set(DIMENSIONS)
    exchanges = judge.exchanges["greeting"]
    assert len(exchanges) == 2  # asked twice, with the sides swapped
    assert exchanges[0].to_dict() != exchanges[1].to_dict()
    lip = next(vote for vote in votes if vote.dimension == "lip_sync")
    assert lip.verdicts[1] == "good"  # metrics:0 reads the lip-sync correlation, 0.2 -> 0.8
    assert all(verdict in ("good", "same", "bad") for vote in votes for verdict in vote.verdicts)
