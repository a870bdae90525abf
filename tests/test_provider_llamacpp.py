"""The openai provider against a real llama.cpp server (llama-cpp-python) serving SmolLM2-135M-Instruct."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Literal

import pytest
from llm_server import running_llama_server
from pydantic import BaseModel

from codirector.agents.providers import ChatMessage, resolve_provider
from codirector.agents.providers.openai_chat import OpenAIChatModel
from codirector.errors import ProviderError

logger = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 60.0


class Mood(BaseModel):
    emotion: Literal["happy", "sad", "angry", "calm"]
    intensity: int


MESSAGES = [
    ChatMessage("system", "You label the mood of a sentence."),
    ChatMessage("user", "Sentence: 'We won the final, this is the best day of my life!'"),
]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A llama.cpp server on a free local port; yields its OpenAI base_url."""
    with running_llama_server(tmp_path_factory.mktemp("llama"), n_ctx=2048) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def model(llama_server: str) -> OpenAIChatModel:
    chat = resolve_provider("openai:smollm2", base_url=llama_server, timeout_s=120, max_retries=0)
    assert isinstance(chat, OpenAIChatModel)
    return chat


def test_a_schema_constrained_answer_parses_into_the_pydantic_model(model: OpenAIChatModel) -> None:
    response = model.complete(MESSAGES, json_schema=Mood.model_json_schema(), max_tokens=60, seed=0)
    mood = Mood.model_validate_json(response.text)  # the enum and the integer hold only if decoding was constrained
    assert mood.emotion in ("happy", "sad", "angry", "calm")
    # llama.cpp refuses "json_schema" (HTTP 500) and constrains decoding with json_object + schema.
    assert response.extra["structured_output"] == "json_object_schema"
    assert model.structured_mode == "json_object_schema"
    assert response.prompt_tokens
    assert response.completion_tokens
    assert response.latency_s > 0
    # Warm: the mode is learned, so this call is a single request; record its speed for the report.
    again = model.complete(MESSAGES, json_schema=Mood.model_json_schema(), max_tokens=60, seed=0)
    assert Mood.model_validate_json(again.text) == mood  # temperature 0 and a seed: repeatable
    logger.info(
        "llama.cpp JSON answer: %d prompt + %d completion tokens in %.2f s (%.0f completion tok/s end to end)",
        again.prompt_tokens,
        again.completion_tokens,
        again.latency_s,
        again.completion_tokens / again.latency_s,
    )


def test_plain_text_completion(model: OpenAIChatModel) -> None:
    response = model.complete([ChatMessage("user", "Say hello in one short sentence.")], max_tokens=40)
    assert response.text.strip()
    assert not response.text.lstrip().startswith("{")
    assert response.extra["structured_output"] is None
    assert 0 < response.completion_tokens <= 40
    assert response.latency_s > 0


def test_the_token_limit_is_passed_to_the_server(model: OpenAIChatModel) -> None:
    response = model.complete([ChatMessage("user", "Write a long story about a dragon.")], max_tokens=5)
    assert response.completion_tokens == 5
    assert response.extra["finish_reason"] == "length"


def test_a_fixed_json_schema_mode_fails_with_the_servers_own_words(llama_server: str) -> None:
    strict = OpenAIChatModel("smollm2", base_url=llama_server, structured_output="json_schema", max_retries=2)
    started = time.perf_counter()
    with pytest.raises(ProviderError) as caught:
        strict.complete(MESSAGES, json_schema=Mood.model_json_schema(), max_tokens=20)
    message = str(caught.value)
    assert "HTTP 500" in message
    assert "json_object" in message  # the server lists the response_format types it takes
    assert "after 1 attempt(s)" in message  # a refusal is not retried
    assert llama_server in message
    assert time.perf_counter() - started < 10


def test_json_object_mode_without_schema_still_returns_json(llama_server: str) -> None:
    loose = OpenAIChatModel("smollm2", base_url=llama_server, structured_output="json_object", max_retries=0)
    response = loose.complete(MESSAGES, json_schema=Mood.model_json_schema(), max_tokens=60)
    assert isinstance(json.loads(response.text), dict)  # JSON grammar: always a JSON object, maybe not a Mood
