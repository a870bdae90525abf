"""Prompt templates (front matter, strict rendering, overrides) and the bounded repair loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import ScriptedChatModel

from codirector.agents.structured import Asked, ask
from codirector.errors import AgentOutputError, InputFileError
from codirector.prompts.templates import load_prompt, packaged_prompts_dir
from codirector.schemas.reports import EmotionEstimate


def test_every_packaged_prompt_parses_and_declares_its_inputs() -> None:
    folder = packaged_prompts_dir()
    paths = sorted(folder.rglob("*.md"))
    assert len(paths) >= 10
    for path in paths:
        prompt_id = path.relative_to(folder).with_suffix("").as_posix()
        template = load_prompt(prompt_id)
        assert template.id == prompt_id, f"{path}: front-matter id must match its path"
        assert len(template.sha256) == 64
        used = {name for name in template.inputs if "{{ " + name in template.body or name in template.body}
        assert used == set(template.inputs), f"{prompt_id} declares inputs it never uses"


def test_rendering_is_strict_about_inputs() -> None:
    template = load_prompt("repair")
    assert "bad field" in template.render(error="bad field")
    with pytest.raises(InputFileError, match="missing \\['error'\\]"):
        template.render()
    with pytest.raises(InputFileError, match="undeclared \\['extra'\\]"):
        template.render(error="x", extra=1)


def test_chat_prompts_inject_the_schema_from_the_model() -> None:
    system, user = load_prompt("audio_expert/interpret").render_chat(
        EmotionEstimate, character="host", measurements="{}", transcript="hi"
    )
    assert json.dumps(EmotionEstimate.model_json_schema()) in system
    assert "Character: host" in user


def test_a_prompts_folder_overrides_file_by_file(tmp_path: Path) -> None:
    (tmp_path / "repair.md").write_text("---\nid: repair\nversion: 7\ninputs: [error]\n---\nFIX {{ error }}\n")
    custom = load_prompt("repair", tmp_path)
    assert (custom.version, custom.render(error="it")) == ("7", "FIX it")
    assert load_prompt("audio_expert/interpret", tmp_path).version == "1"  # the rest stay packaged


def _ask(model: ScriptedChatModel, accounting: Asked) -> EmotionEstimate:
    return ask(
        model,
        "audio_expert/interpret",
        EmotionEstimate,
        expert="audio",
        purpose="test",
        inputs={"character": "host", "measurements": "{}", "transcript": "hi"},
        accounting=accounting,
    )


def test_repair_loop_feeds_the_error_back_and_records_calls() -> None:
    model = ScriptedChatModel(
        [
            '{"label": "furious", "intensity": 2, "confidence": 0.5}',
            '{"label": "angry", "intensity": 2, "confidence": 0.5}',
        ]
    )
    accounting = Asked()
    answer = _ask(model, accounting)
    assert answer.label.value == "angry"
    assert [c.ok for c in accounting.calls] == [False, True]
    second = model.conversations[1]
    assert second[-2].role == "assistant"
    assert "furious" in second[-2].text()
    assert "label" in second[-1].text()
    assert "did not validate" in second[-1].text()


def test_repair_loop_is_bounded_and_carries_the_raw_output() -> None:
    model = ScriptedChatModel(["not json"] * 3)
    accounting = Asked()
    with pytest.raises(AgentOutputError) as caught:
        _ask(model, accounting)
    assert caught.value.raw_output == "not json"
    assert len(accounting.calls) == 3
    assert not any(c.ok for c in accounting.calls)
