"""LLM providers: the registry, the openai provider against a real scripted HTTP server, message conversion."""

from __future__ import annotations

import base64
import doctest
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
from helpers import write_image, write_wav

from codirector.agents.providers import (
    OFFLINE,
    AudioPart,
    ChatMessage,
    ChatResponse,
    ImagePart,
    TextPart,
    known_providers,
    register_provider,
    registry,
    resolve_provider,
    transformers_chat,
)
from codirector.agents.providers.base import schema_instruction, with_schema_instruction
from codirector.agents.providers.openai_chat import OpenAIChatModel, to_openai_messages
from codirector.agents.providers.transformers_chat import TransformersChatModel
from codirector.errors import ConfigError, MediaError, ProviderError, ProviderNotFoundError

SCHEMA = {
    "title": "Mood",
    "type": "object",
    "properties": {"emotion": {"type": "string"}, "intensity": {"type": "number"}},
    "required": ["emotion", "intensity"],
}
USER = [ChatMessage("user", "How does the speaker feel?")]

# --------------------------------------------------------------------------------------------------------------
# A real HTTP server on 127.0.0.1, scripted per test.

Reply = tuple[int, Any] | tuple[int, Any, dict[str, str]]
Rule = Callable[[dict[str, Any]], Reply]


def completion(content: str, prompt_tokens: int = 11, completion_tokens: int = 7) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "served-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def error_body(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "server_error", "code": None}}


@dataclass
class ScriptedServer:
    """Answers POST /v1/chat/completions with `replies` in order (the last one repeats), or with `rule`."""

    base_url: str
    replies: list[Reply] = field(default_factory=list)
    rule: Rule | None = None
    delay_s: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)

    def answer(self, request: dict[str, Any]) -> Reply:
        self.requests.append(request)
        if self.rule is not None:
            return self.rule(request)
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    def format_types(self) -> list[str | None]:
        return [request.get("response_format", {}).get("type") for request in self.requests]


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted: ScriptedServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status, payload, *rest = scripted.answer(body)
            time.sleep(scripted.delay_s)
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (rest[0] if rest else {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout tests)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    scripted = ScriptedServer(base_url=f"http://127.0.0.1:{httpd.server_address[1]}/v1")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield scripted
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def model_for(server: ScriptedServer, **options: Any) -> OpenAIChatModel:
    options = {"timeout_s": 5.0, "retry_backoff_s": 0.01, **options}
    return OpenAIChatModel("served-model", base_url=server.base_url, api_key="test-key", **options)


def refuse_json_schema(request: dict[str, Any]) -> Reply:
    """What llama.cpp's server does: HTTP 500 for a json_schema response_format, JSON mode with a schema is fine."""
    if request.get("response_format", {}).get("type") == "json_schema":
        return 500, error_body("Invalid response_format: type 'json_schema' is not supported")
    return 200, completion('{"emotion": "calm", "intensity": 0.4}')


# --------------------------------------------------------------------------------------------------------------
# The openai provider: retries, timeouts, errors.


def test_a_500_is_retried_and_the_reply_carries_usage_and_latency(server: ScriptedServer) -> None:
    server.replies = [(500, error_body("server overloaded")), (200, completion("hello"))]
    response = model_for(server, max_retries=2).complete(USER)
    assert isinstance(response, ChatResponse)
    assert response.text == "hello"
    assert (response.prompt_tokens, response.completion_tokens) == (11, 7)
    assert response.model == "openai:served-model"
    assert response.latency_s > 0
    assert response.extra["retries"] == 1
    assert len(server.requests) == 2


def test_retries_run_out_into_a_provider_error_with_the_servers_message(server: ScriptedServer) -> None:
    server.replies = [(503, error_body("server overloaded, try later"))]
    with pytest.raises(ProviderError) as caught:
        model_for(server, max_retries=2).complete(USER)
    message = str(caught.value)
    assert "HTTP 503" in message
    assert "server overloaded, try later" in message
    assert server.base_url in message
    assert "after 3 attempt(s)" in message
    assert caught.value.provider == "openai:served-model"
    assert len(server.requests) == 3  # one call and max_retries retries, the SDK's own retries off


def test_a_429_is_retried_after_the_servers_retry_after(server: ScriptedServer) -> None:
    server.replies = [(429, error_body("rate limited"), {"Retry-After": "0.3"}), (200, completion("ok"))]
    started = time.perf_counter()
    response = model_for(server, max_retries=1).complete(USER)
    assert response.text == "ok"
    assert time.perf_counter() - started >= 0.3
    assert len(server.requests) == 2


def test_a_client_error_is_not_retried(server: ScriptedServer) -> None:
    server.replies = [(404, error_body("model 'served-model' not found"))]
    with pytest.raises(ProviderError, match=r"HTTP 404 .* model 'served-model' not found; check the model name"):
        model_for(server, max_retries=3).complete(USER)
    assert len(server.requests) == 1


def test_a_server_slower_than_the_timeout_is_retried_then_reported(server: ScriptedServer) -> None:
    server.replies = [(200, completion("too late"))]
    server.delay_s = 1.5
    started = time.perf_counter()
    with pytest.raises(ProviderError, match=r"timed out .* after 2 attempt\(s\) with a 0.3 s timeout"):
        model_for(server, timeout_s=0.3, max_retries=1).complete(USER)
    assert time.perf_counter() - started < 1.5  # both attempts gave up at the timeout, not at the reply
    assert len(server.requests) == 2


def test_an_unreachable_server_is_a_provider_error_naming_the_url() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    model = OpenAIChatModel("m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=1, retry_backoff_s=0.01)
    with pytest.raises(ProviderError, match=rf"could not connect .* at http://127.0.0.1:{port}/v1/ after 2 attempt"):
        model.complete(USER)


def test_request_carries_the_sampling_arguments(server: ScriptedServer) -> None:
    server.replies = [(200, completion("x"))]
    model_for(server).complete(USER, max_tokens=33, temperature=0.5, seed=7)
    request = server.requests[0]
    assert (request["max_tokens"], request["temperature"], request["seed"]) == (33, 0.5, 7)
    assert request["model"] == "served-model"
    assert "response_format" not in request


def test_a_model_that_refuses_max_tokens_gets_max_completion_tokens(server: ScriptedServer) -> None:
    def rule(request: dict[str, Any]) -> Reply:
        if "max_tokens" in request:
            return 400, error_body("Unsupported parameter: 'max_tokens'. Use 'max_completion_tokens' instead.")
        return 200, completion("fine")

    server.rule = rule
    model = model_for(server, max_retries=0)
    assert model.complete(USER, max_tokens=20).text == "fine"
    assert server.requests[-1]["max_completion_tokens"] == 20
    model.complete(USER)
    assert len(server.requests) == 3  # learned once, then sent right the first time


def test_the_client_is_built_on_first_call_and_needs_a_key_for_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    model = OpenAIChatModel("gpt-4o-mini")
    assert model._client is None
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        model.complete(USER)


def test_a_bad_structured_output_mode_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="json_object_schema"):
        OpenAIChatModel("m", structured_output="grammar")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------------------
# Structured output: the fallback ladder.


def test_auto_falls_back_from_json_schema_to_json_object_with_schema_without_burning_retries(
    server: ScriptedServer,
) -> None:
    server.rule = refuse_json_schema
    model = model_for(server, max_retries=0)  # no retries at all: the probe must not need one
    response = model.complete(USER, json_schema=SCHEMA)
    assert json.loads(response.text) == {"emotion": "calm", "intensity": 0.4}
    assert server.format_types() == ["json_schema", "json_object"]
    first, second = server.requests
    assert first["response_format"]["json_schema"] == {"name": "Mood", "schema": SCHEMA, "strict": False}
    assert second["response_format"]["schema"] == SCHEMA
    assert second["messages"][0]["role"] == "system"  # below json_schema the prompt carries the schema too
    assert json.dumps(SCHEMA, separators=(",", ":")) in second["messages"][0]["content"]
    assert response.extra["structured_output"] == "json_object_schema"
    assert response.extra["retries"] == 0
    # Remembered per client: the next structured call goes straight to what worked.
    model.complete(USER, json_schema=SCHEMA)
    assert server.format_types() == ["json_schema", "json_object", "json_object"]
    assert model.structured_mode == "json_object_schema"


@pytest.mark.parametrize("status", [400, 422, 500])
def test_the_ladder_ends_with_no_response_format(server: ScriptedServer, status: int) -> None:
    def rule(request: dict[str, Any]) -> Reply:
        if "response_format" in request:
            return status, error_body(f"response_format {request['response_format']['type']} not supported")
        return 200, completion('{"emotion": "sad", "intensity": 1}')

    server.rule = rule
    model = model_for(server, max_retries=2)
    response = model.complete(USER, json_schema=SCHEMA)
    assert server.format_types() == ["json_schema", "json_object", "json_object", None]
    assert "schema" not in server.requests[2]["response_format"]
    assert schema_instruction(SCHEMA) in server.requests[3]["messages"][0]["content"]
    assert response.extra["structured_output"] == "none"


def test_a_fixed_mode_the_server_refuses_is_reported_at_once(server: ScriptedServer) -> None:
    server.rule = refuse_json_schema
    with pytest.raises(ProviderError, match=r"HTTP 500 .*json_schema.* try structured_output='auto'"):
        model_for(server, structured_output="json_schema", max_retries=2).complete(USER, json_schema=SCHEMA)
    assert len(server.requests) == 1


def test_a_plain_500_during_a_structured_call_is_retried_not_taken_for_a_refusal(server: ScriptedServer) -> None:
    server.replies = [(500, error_body("CUDA out of memory")), (200, completion('{"emotion": "x", "intensity": 0}'))]
    model = model_for(server, max_retries=1)
    model.complete(USER, json_schema=SCHEMA)
    assert server.format_types() == ["json_schema", "json_schema"]
    assert model.structured_mode == "json_schema"


# --------------------------------------------------------------------------------------------------------------
# Message conversion.


def test_images_and_audio_become_data_url_and_input_audio_parts(tmp_path: Path) -> None:
    image = write_image(tmp_path / "face.png")
    audio = write_wav(tmp_path / "voice.wav", 0.2)
    messages = [
        ChatMessage("system", "You direct."),
        ChatMessage("user", (TextPart("Look and listen."), ImagePart(image), AudioPart(audio))),
    ]
    system, user = to_openai_messages(messages, sees_images=True, hears_audio=True)
    assert system == {"role": "system", "content": "You direct."}
    text, image_part, audio_part = user["content"]
    assert text == {"type": "text", "text": "Look and listen."}
    assert image_part["type"] == "image_url"
    prefix, encoded = image_part["image_url"]["url"].split(",", 1)
    assert prefix == "data:image/png;base64"
    assert base64.b64decode(encoded) == image.read_bytes()
    assert audio_part["type"] == "input_audio"
    assert audio_part["input_audio"]["format"] == "wav"
    assert base64.b64decode(audio_part["input_audio"]["data"]) == audio.read_bytes()


def test_parts_a_model_cannot_take_are_dropped(tmp_path: Path) -> None:
    image = write_image(tmp_path / "face.jpg")
    audio = write_wav(tmp_path / "voice.wav", 0.2)
    message = ChatMessage("user", (TextPart("Transcript: hello."), ImagePart(image), AudioPart(audio)))
    assert to_openai_messages([message], sees_images=False, hears_audio=False) == [
        {"role": "user", "content": "Transcript: hello."}
    ]
    (only_image,) = to_openai_messages([message], sees_images=True, hears_audio=False)
    assert [part["type"] for part in only_image["content"]] == ["text", "image_url"]
    assert only_image["content"][1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    # The API takes media only from the user: a system message keeps its text.
    system = ChatMessage("system", (TextPart("rules"), ImagePart(image)))
    assert to_openai_messages([system], sees_images=True, hears_audio=True) == [{"role": "system", "content": "rules"}]


def test_unreadable_media_is_a_media_error(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="cannot be read"):
        to_openai_messages(
            [ChatMessage("user", (ImagePart(tmp_path / "gone.png"),))], sees_images=True, hears_audio=False
        )
    flac = tmp_path / "voice.flac"
    flac.write_bytes(b"fLaC")
    with pytest.raises(MediaError, match="not WAV or MP3"):
        to_openai_messages([ChatMessage("user", (AudioPart(flac),))], sees_images=False, hears_audio=True)


def test_a_vision_model_sends_the_image_to_the_server(server: ScriptedServer, tmp_path: Path) -> None:
    server.replies = [(200, completion("a face"))]
    image = write_image(tmp_path / "face.png")
    model = model_for(server, sees_images=True)
    model.complete([ChatMessage("user", (TextPart("Who?"), ImagePart(image)))])
    content = server.requests[0]["messages"][0]["content"]
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")


@pytest.mark.parametrize(
    ("model", "sees", "hears"),
    [
        ("gpt-4o-mini", True, False),
        ("gpt-4.1", True, False),
        ("gpt-5-nano", True, False),
        ("Qwen2.5-VL-7B-Instruct", True, False),
        ("llava:13b", True, False),
        ("gpt-4o-audio-preview", True, True),
        ("qwen2.5-omni-7b", True, True),
        ("smollm2", False, False),
        ("gpt-3.5-turbo", False, False),
        ("llama-3.1-8b-instruct", False, False),
    ],
)
def test_capabilities_are_guessed_from_the_model_name(model: str, sees: bool, hears: bool) -> None:
    chat = OpenAIChatModel(model)
    assert (chat.sees_images, chat.hears_audio) == (sees, hears)
    overridden = OpenAIChatModel(model, sees_images=not sees, hears_audio=not hears)
    assert (overridden.sees_images, overridden.hears_audio) == (not sees, not hears)


def test_the_schema_instruction_joins_the_system_message() -> None:
    merged = with_schema_instruction([ChatMessage("system", "Be brief."), *USER], SCHEMA)
    assert [message.role for message in merged] == ["system", "user"]
    assert merged[0].text().startswith("Be brief.\n\n")
    assert json.dumps(SCHEMA, separators=(",", ":")) in merged[0].text()


# --------------------------------------------------------------------------------------------------------------
# The registry.


@pytest.fixture
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test vanish after it."""
    monkeypatch.setattr(registry, "_providers", dict(registry._providers))


@dataclass
class FakeModel:
    name: str = "fake:model"
    sees_images: bool = False
    hears_audio: bool = False

    def complete(self, messages: Any, **kwargs: Any) -> ChatResponse:
        return ChatResponse(text="{}", model=self.name)


def test_resolve_builtin_references() -> None:
    assert resolve_provider("offline") is OFFLINE
    assert resolve_provider(" Offline ") is OFFLINE
    assert resolve_provider("offline", base_url="http://127.0.0.1:9/v1") is OFFLINE  # shared options are ignored
    model = resolve_provider("openai:llama-3.1-8b", base_url="http://127.0.0.1:9/v1", timeout_s=3, max_retries=0)
    assert isinstance(model, OpenAIChatModel)
    assert (model.name, model.base_url, model.timeout_s, model.max_retries) == (
        "openai:llama-3.1-8b",
        "http://127.0.0.1:9/v1",
        3,
        0,
    )
    assert model._client is None  # nothing contacted until the first call


def test_transformers_references_resolve_folders_and_gguf_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transformers_chat, "_require", lambda *args: None)  # runtime packages need not be here
    folder = tmp_path / "qwen-vl"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    model = resolve_provider(f"transformers:{folder}", device="cpu", max_new_tokens=64)
    assert isinstance(model, TransformersChatModel)
    assert (model.sees_images, model.hears_audio, model.max_new_tokens) == (True, False, 64)
    assert not model.loaded

    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF")
    model = resolve_provider(f"transformers:{gguf}")
    assert isinstance(model, TransformersChatModel)
    assert (model.path, model.gguf_file, model.name) == (tmp_path, "tiny.gguf", f"transformers:{gguf}")


def test_a_missing_model_path_is_a_provider_not_found_error(tmp_path: Path) -> None:
    with pytest.raises(ProviderNotFoundError, match="no such model folder"):
        resolve_provider(f"transformers:{tmp_path / 'nowhere'}")
    with pytest.raises(ProviderNotFoundError, match="no such GGUF file"):
        resolve_provider(f"transformers:{tmp_path / 'nowhere.gguf'}")
    with pytest.raises(ProviderNotFoundError, match=re.escape("has no config.json")):
        resolve_provider(f"transformers:{tmp_path}")


def test_a_missing_runtime_package_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF")
    real_find_spec = transformers_chat.find_spec
    monkeypatch.setattr(
        transformers_chat, "find_spec", lambda name: None if name == "accelerate" else real_find_spec(name)
    )
    with pytest.raises(ProviderNotFoundError, match=r"needs accelerate, .*`pip install gguf accelerate`"):
        TransformersChatModel.from_path(gguf)


def test_unknown_providers_get_a_did_you_mean() -> None:
    with pytest.raises(ProviderNotFoundError, match=re.escape("unknown provider 'opnai'. Did you mean 'openai'?")):
        resolve_provider("opnai:gpt-4o")
    with pytest.raises(ProviderNotFoundError, match=re.escape("Did you mean 'transformers'?")):
        resolve_provider("transfromers:/models/x")
    with pytest.raises(ProviderNotFoundError, match='Write "provider:model", for example "openai:gpt-4o"'):
        resolve_provider("gpt-4o")


def test_a_reference_without_its_model_part_says_how_to_write_it() -> None:
    with pytest.raises(ProviderNotFoundError) as caught:
        resolve_provider("openai")
    assert caught.value.problem == "no model given for provider 'openai'"
    assert caught.value.fix == 'Write "openai:MODEL", for example "openai:gpt-4o-mini".'
    with pytest.raises(ProviderNotFoundError, match="takes no model"):
        resolve_provider("offline:whisper")


def test_unknown_options_are_config_errors_that_list_the_accepted_ones() -> None:
    with pytest.raises(ConfigError, match=r"unexpected keyword argument 'temprature'.*structured_output"):
        resolve_provider("openai:m", temprature=0.2)
    with pytest.raises(ConfigError, match="already built"):
        resolve_provider(OFFLINE, base_url="http://x")


def test_objects_pass_through_unchanged() -> None:
    fake = FakeModel()
    assert resolve_provider(fake) is fake
    assert resolve_provider(OFFLINE) is OFFLINE
    with pytest.raises(TypeError, match="provider:model"):
        resolve_provider(42)  # type: ignore[arg-type]


@pytest.mark.usefixtures("clean_registry")
def test_register_provider_is_lazy_and_refuses_clashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "thirdparty_llm.py").write_text(
        "class Model:\n"
        "    sees_images = hears_audio = False\n"
        "    def __init__(self, model, *, temperature_floor=0.0):\n"
        "        self.name = 'mine:' + model\n"
        "        self.temperature_floor = temperature_floor\n"
        "    def complete(self, messages, **kwargs):\n"
        "        raise NotImplementedError\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    register_provider("mine", "thirdparty_llm:Model")
    assert "thirdparty_llm" not in sys.modules  # registered by dotted path: nothing imported yet
    model = resolve_provider("mine:big-model", temperature_floor=0.1)
    assert (model.name, model.temperature_floor) == ("mine:big-model", 0.1)
    with pytest.raises(ValueError, match="'mine' is already registered"):
        register_provider("mine", "thirdparty_llm.Model")
    register_provider("mine", lambda model: FakeModel(name=f"mine2:{model}"), clobber=True)
    assert resolve_provider("mine:x").name == "mine2:x"
    with pytest.raises(ValueError, match="already registered"):
        register_provider("openai", "somewhere:Else")
    for bad in ("", "Upper", "a:b", " space"):
        with pytest.raises(ValueError, match="must be non-empty"):
            register_provider(bad, FakeModel)


@pytest.mark.usefixtures("clean_registry")
def test_a_missing_sdk_is_reported_with_its_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    register_provider("needs-sdk", FakeModel, requires=("no_such_sdk_anywhere",), install="pip install no-such-sdk")
    with pytest.raises(ProviderNotFoundError, match=r"needs no_such_sdk_anywhere.*Run `pip install no-such-sdk`"):
        resolve_provider("needs-sdk:m")
    real_find_spec = registry.find_spec
    monkeypatch.setattr(registry, "find_spec", lambda name: None if name == "openai" else real_find_spec(name))
    with pytest.raises(ProviderNotFoundError, match="Run `pip install openai`"):
        resolve_provider("openai:gpt-4o")


@pytest.mark.usefixtures("clean_registry")
def test_entry_point_providers_are_registered_lazily(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ep_llm.py").write_text(
        "from codirector.agents.providers import OFFLINE\ndef make(model):\n    return OFFLINE\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    points = [
        EntryPoint(name="epmodel", value="ep_llm:make", group=registry.ENTRY_POINT_GROUP),
        EntryPoint(name="openai", value="ep_llm:make", group=registry.ENTRY_POINT_GROUP),  # may not shadow
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: points if group == registry.ENTRY_POINT_GROUP else [])
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    assert "epmodel" in known_providers()
    assert "ep_llm" not in sys.modules
    assert resolve_provider("epmodel:any") is OFFLINE
    assert known_providers()["openai"].target == "codirector.agents.providers.openai_chat:OpenAIChatModel"


def test_known_providers_is_a_read_only_view() -> None:
    view = known_providers()
    assert {"offline", "openai", "transformers"} <= set(view)
    with pytest.raises(TypeError):
        view["evil"] = view["openai"]  # type: ignore[index]


def test_importing_the_providers_imports_no_sdk() -> None:
    script = (
        "import json, sys\n"
        "import codirector.agents.providers as providers\n"
        "providers.resolve_provider('offline')\n"
        "print(json.dumps(sorted(m for m in ('openai', 'transformers', 'torch', 'httpx') if m in sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == []


@pytest.mark.usefixtures("clean_registry")
@pytest.mark.parametrize("module", ["providers", "base", "registry", "openai_chat"])
def test_docstring_examples_run(module: str) -> None:
    import codirector.agents.providers as providers

    target = providers if module == "providers" else getattr(providers, module)
    runner = doctest.DocTestRunner()
    tests = doctest.DocTestFinder().find(target, globs=vars(target))
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).attempted > 0
    assert runner.summarize(verbose=False).failed == 0
