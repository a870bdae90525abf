"""The director end to end with a real model over HTTP: llama.cpp's OpenAI-compatible server with SmolLM2-135M.

A 135M model makes mistakes: this checks that constrained decoding, the deterministic repairs and the bounded
repair loop still turn its answers into a plan that validates (or a typed error, never a broken plan).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import EXAMPLES
from llm_server import running_llama_server

import codirector
from codirector.agents.director import direct
from codirector.config import Config
from codirector.errors import AgentOutputError
from codirector.schemas import Plan


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # The storyline prompt (three worked examples and the schema) needs more than the default 2048 tokens.
    with running_llama_server(tmp_path_factory.mktemp("llama"), n_ctx=8192) as url:
        yield url


def test_every_expert_on_a_real_local_model_yields_a_valid_plan(base_url: str, tmp_path: Path) -> None:
    job = codirector.load_job(EXAMPLES / "cat" / "job.yaml")
    try:
        plan = direct(
            job,
            provider="openai:smollm2",
            provider_options={"base_url": base_url, "timeout_s": 300},
            config=Config(home=tmp_path / "home"),
            checkpoint=False,
        )
    except AgentOutputError as error:
        pytest.fail(f"the 135M model never produced a valid answer: {error}; raw output: {error.raw_output[:300]!r}")
    Plan.model_validate(plan.model_dump(mode="json"))
    assert set(plan.providers.values()) == {"openai:smollm2"}
    purposes = {call.purpose for call in plan.model_calls}
    assert {"interpret", "describe", "instructions", "co-reasoning", "storyline", "negatives", "segments"} <= purposes
    assert all(call.provider == "openai:smollm2" and call.latency_s > 0 for call in plan.model_calls)
    assert sum(c.completion_tokens or 0 for c in plan.model_calls) > 0
    assert plan.storyline.shots[-1].end_s == pytest.approx(plan.storyline.duration_s, abs=1 / 25)
    assert all(shot.negative_prompt for shot in plan.storyline.shots)
    assert any(ref.id == "text_expert/storyline" for ref in plan.prompt_refs)
