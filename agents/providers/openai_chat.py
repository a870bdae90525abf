"""The `openai:` provider: OpenAI or any OpenAI-compatible server (vLLM, Ollama, llama.cpp) through the openai SDK.

Servers differ in how far they can constrain output to a JSON Schema, so in ``structured_output="auto"`` mode the
model tries the strictest request first and steps down when the server refuses it, remembering what worked:

1. ``json_schema``: ``{"type": "json_schema", "json_schema": {"name", "schema", "strict": False}}`` (OpenAI, vLLM);
2. ``json_object_schema``: ``{"type": "json_object", "schema": ...}`` (llama.cpp's server constrains decoding to
   the schema this way, and answers HTTP 500 to step 1);
3. ``json_object``: JSON mode without a schema;
4. ``none``: no response_format.

Below step 1 the schema also goes into the system prompt. Those capability probes never count as retries: the
SDK's own retries are off (``max_retries=0``) and this module retries only transient faults (connection errors,
timeouts, 429, 5xx) with exponential backoff and jitter, then raises `ProviderError` with the server's words.
"""

from __future__ import annotations

import base64
import logging
import mimetypes
import os
import random
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import openai

from codirector.errors import ConfigError, MediaError, ProviderError

from .base import AudioPart, ChatMessage, ChatResponse, ImagePart, TextPart, with_schema_instruction

__all__ = ["OpenAIChatModel", "StructuredOutput", "to_openai_messages"]

logger = logging.getLogger(__name__)

StructuredOutput = Literal["auto", "json_schema", "json_object_schema", "json_object", "none"]
_LADDER: tuple[StructuredOutput, ...] = ("json_schema", "json_object_schema", "json_object", "none")

# Model names that take images or audio by default (the user can override either flag).
_SEES_IMAGES = re.compile(
    r"gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|(?<![a-z])vl|vision|llava|pixtral|internvl|minicpm-v|gemma-?3|omni"
)
_HEARS_AUDIO = re.compile(r"audio|omni")
_AUDIO_FORMATS = {".wav": "wav", ".mp3": "mp3"}
# Words a server uses when it refuses a response_format it does not implement.
_FORMAT_WORDS = ("response_format", "json_schema", "json_object", "schema")
_MAX_BACKOFF_S = 20.0


class OpenAIChatModel:
    """A chat model behind the OpenAI chat-completions API.

    Args:
        model: the model name the server knows ("gpt-4o-mini", or anything for a one-model llama.cpp server).
        base_url: the API root, e.g. "http://127.0.0.1:8080/v1"; None means OPENAI_BASE_URL or api.openai.com.
        api_key: None means OPENAI_API_KEY; local servers (any `base_url`) get a placeholder when neither is set.
        timeout_s: per-request timeout in seconds.
        max_retries: retries after a transient failure (connection error, timeout, HTTP 429 or 5xx).
        structured_output: how a `json_schema` reaches the server: "auto" (strictest that works, learned on the
            first structured call) or one fixed mode: "json_schema", "json_object_schema", "json_object", "none".
        sees_images: send `ImagePart`s; None guesses from the model name (gpt-4o, gpt-4.1, gpt-5, *vl*, llava...).
        hears_audio: send `AudioPart`s as input_audio; None guesses from the name (*audio*, *omni*).
        retry_backoff_s: the first retry's delay before jitter; it doubles with each retry.

    Example:
        >>> model = OpenAIChatModel("smollm2", base_url="http://127.0.0.1:8080/v1")
        >>> (model.name, model.sees_images, model.hears_audio)
        ('openai:smollm2', False, False)
        >>> OpenAIChatModel("gpt-4o-audio-preview").hears_audio
        True

        With a server running, ``model.complete([ChatMessage("user", "Say hi")]).text`` returns its reply.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        structured_output: StructuredOutput = "auto",
        sees_images: bool | None = None,
        hears_audio: bool | None = None,
        retry_backoff_s: float = 0.5,
    ) -> None:
        if structured_output not in get_args(StructuredOutput):
            raise ConfigError(
                "structured_output",
                f"unknown mode {structured_output!r}",
                f"Use one of: {', '.join(get_args(StructuredOutput))}.",
            )
        if timeout_s <= 0 or max_retries < 0 or retry_backoff_s < 0:
            raise ConfigError(
                "openai options",
                f"timeout_s={timeout_s}, max_retries={max_retries}, retry_backoff_s={retry_backoff_s}",
                "Use timeout_s > 0, max_retries >= 0 and retry_backoff_s >= 0.",
            )
        self.model = model
        self.name = f"openai:{model}"
        lowered = model.lower()
        self.sees_images = bool(_SEES_IMAGES.search(lowered)) if sees_images is None else sees_images
        self.hears_audio = bool(_HEARS_AUDIO.search(lowered)) if hears_audio is None else hears_audio
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.structured_output = structured_output
        self.retry_backoff_s = retry_backoff_s
        self._api_key = api_key
        self._client: openai.OpenAI | None = None
        self._lock = threading.Lock()
        # What this client has learned about its server, so later calls skip refused requests.
        self._mode: StructuredOutput = "json_schema" if structured_output == "auto" else structured_output
        self._token_param = "max_tokens"
        self._send_temperature = True

    def __repr__(self) -> str:
        return f"OpenAIChatModel({self.model!r}, base_url={self.base_url!r}, structured_output={self._mode!r})"

    @property
    def structured_mode(self) -> StructuredOutput:
        """The mode structured calls use now: in "auto" mode, what the server accepted last (or will be tried)."""
        return self._mode

    def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> ChatResponse:
        """Run one chat completion; see `ChatModel.complete`.

        Raises:
            ProviderError: unreachable or timing out after the retries, an HTTP error (with the server's message),
                a refused structured-output mode (fixed modes only), or a refusal by the model.
            MediaError: an image or audio file cannot be read or has an unsupported format.
        """
        client = self._get_client()
        started = time.perf_counter()
        retries = 0
        while True:
            mode = self._mode if json_schema is not None else None
            request = self._request(messages, json_schema, mode, max_tokens, temperature, seed)
            try:
                completion = client.chat.completions.create(**request)
            except openai.APIStatusError as error:
                if mode is not None and self._step_down(mode, error):
                    continue
                if self._adapt_parameters(error):
                    continue
                status = error.status_code
                # A refused response_format is an answer, not a fault: retrying it would get the same answer.
                refused_format = mode not in (None, "none") and _is_format_rejection(error)
                if (status == 429 or status >= 500) and not refused_format and retries < self.max_retries:
                    self._wait_before_retry(retries, error)
                    retries += 1
                    continue
                raise ProviderError(self.name, self._describe_status(error, mode, retries)) from error
            except openai.APIConnectionError as error:  # APITimeoutError is a subclass
                if retries < self.max_retries:
                    self._wait_before_retry(retries, error)
                    retries += 1
                    continue
                what = "timed out" if isinstance(error, openai.APITimeoutError) else "could not connect"
                raise ProviderError(
                    self.name,
                    f"{what} ({error}) at {self._url()} after {retries + 1} attempt(s) "
                    f"with a {self.timeout_s:g} s timeout; check that the server is running and reachable",
                ) from error
            except openai.APIResponseValidationError as error:
                raise ProviderError(
                    self.name, f"{self._url()} sent a reply that is not a chat completion: {error}"
                ) from error
            break
        return self._response(completion, mode, retries, time.perf_counter() - started)

    def _get_client(self) -> openai.OpenAI:
        """The SDK client, built on first use so that constructing the model reads no environment."""
        with self._lock:
            if self._client is None:
                api_key = self._api_key or os.environ.get("OPENAI_API_KEY")
                if not api_key:
                    if self.base_url is None and not os.environ.get("OPENAI_BASE_URL"):
                        raise ConfigError(
                            "OPENAI_API_KEY",
                            f"no API key for {self.name}",
                            "Set OPENAI_API_KEY, pass api_key=..., or pass base_url= for a local server.",
                        )
                    api_key = "no-key"  # local OpenAI-compatible servers ignore it, but the SDK requires one
                # max_retries=0: the SDK would otherwise retry the capability probes (HTTP 500 from llama.cpp).
                self._client = openai.OpenAI(
                    api_key=api_key, base_url=self.base_url, timeout=self.timeout_s, max_retries=0
                )
            return self._client

    def _url(self) -> str:
        return str(self._client.base_url) if self._client is not None else str(self.base_url)

    def _request(
        self,
        messages: Sequence[ChatMessage],
        json_schema: dict[str, Any] | None,
        mode: StructuredOutput | None,
        max_tokens: int,
        temperature: float,
        seed: int | None,
    ) -> dict[str, Any]:
        """The keyword arguments of `chat.completions.create` for one attempt."""
        if json_schema is not None and mode != "json_schema":
            # Below a server-enforced schema the model only knows the schema if the prompt tells it.
            messages = with_schema_instruction(messages, json_schema)
        request: dict[str, Any] = {
            "model": self.model,
            "messages": to_openai_messages(messages, sees_images=self.sees_images, hears_audio=self.hears_audio),
            self._token_param: max_tokens,
        }
        if self._send_temperature:
            request["temperature"] = temperature
        if seed is not None:
            request["seed"] = seed
        if json_schema is not None and mode is not None and mode != "none":
            request["response_format"] = response_format(mode, json_schema)
        return request

    def _step_down(self, mode: StructuredOutput, error: openai.APIStatusError) -> bool:
        """In "auto" mode, move to the next structured-output mode when the server refused this one."""
        if self.structured_output != "auto" or not _is_format_rejection(error):
            return False
        position = _LADDER.index(mode)
        if position == len(_LADDER) - 1:
            return False
        with self._lock:
            if self._mode == mode:  # another thread may have stepped down already
                self._mode = _LADDER[position + 1]
        logger.info(
            "%s: the server refused structured output %r (HTTP %s: %s); trying %r",
            self.name,
            mode,
            error.status_code,
            _server_message(error)[:200],
            self._mode,
        )
        return True

    def _adapt_parameters(self, error: openai.APIStatusError) -> bool:
        """Learn from a 400 that names a parameter this model refuses (OpenAI's reasoning models), once each."""
        if error.status_code != 400:
            return False
        message = _server_message(error).lower()
        if self._token_param == "max_tokens" and "max_completion_tokens" in message:
            self._token_param = "max_completion_tokens"
        elif self._send_temperature and "temperature" in message and "support" in message:
            self._send_temperature = False  # only the default temperature is allowed: omit it
        else:
            return False
        logger.info("%s: adapting the request to the server: %s", self.name, message[:200])
        return True

    def _wait_before_retry(self, retries: int, error: openai.APIError) -> None:
        """Sleep an exponentially growing, jittered delay (or the server's Retry-After, if longer)."""
        delay = min(self.retry_backoff_s * 2**retries, _MAX_BACKOFF_S)
        delay = delay / 2 + random.uniform(0, delay / 2)  # jitter: parallel experts do not retry in lockstep
        if isinstance(error, openai.APIStatusError):
            retry_after = error.response.headers.get("retry-after", "")
            if retry_after.replace(".", "", 1).isdigit():
                delay = max(delay, min(float(retry_after), _MAX_BACKOFF_S))
        logger.warning(
            "%s: %s at %s; retry %d of %d in %.2f s",
            self.name,
            _short(error),
            self._url(),
            retries + 1,
            self.max_retries,
            delay,
        )
        time.sleep(delay)

    def _describe_status(self, error: openai.APIStatusError, mode: StructuredOutput | None, retries: int) -> str:
        """The ProviderError message for an HTTP error: status, the server's words, where, and what to try."""
        message = (
            f"HTTP {error.status_code} from {self._url()} after {retries + 1} attempt(s): {_server_message(error)}"
        )
        if mode is not None and self.structured_output != "auto" and _is_format_rejection(error):
            message += f"; the server may not support structured_output={mode!r}: try structured_output='auto'"
        elif error.status_code == 401:
            message += "; check the API key (api_key= or OPENAI_API_KEY)"
        elif error.status_code == 404:
            message += f"; check the model name {self.model!r} and the base_url"
        return message

    def _response(self, completion: Any, mode: StructuredOutput | None, retries: int, latency_s: float) -> ChatResponse:
        if not completion.choices:
            raise ProviderError(self.name, f"{self._url()} returned no choices")
        choice = completion.choices[0]
        refusal = getattr(choice.message, "refusal", None)
        if choice.message.content is None and refusal:
            raise ProviderError(self.name, f"the model refused: {refusal}")
        if choice.finish_reason == "length":
            logger.warning("%s: the reply was cut off at the token limit", self.name)
        usage = completion.usage
        return ChatResponse(
            text=choice.message.content or "",
            model=self.name,
            prompt_tokens=usage.prompt_tokens if usage is not None else None,
            completion_tokens=usage.completion_tokens if usage is not None else None,
            latency_s=latency_s,
            extra={
                "finish_reason": choice.finish_reason,
                "structured_output": mode,
                "retries": retries,
                "served_model": completion.model,
            },
        )


def response_format(mode: StructuredOutput, json_schema: dict[str, Any]) -> dict[str, Any]:
    """The `response_format` request field for one structured-output mode (not "none" or "auto")."""
    if mode == "json_schema":
        # OpenAI wants a name of [A-Za-z0-9_-]{1,64}; strict=False because strict mode refuses common schema
        # features (optional fields, defaults) that pydantic emits.
        name = re.sub(r"[^A-Za-z0-9_-]", "_", str(json_schema.get("title", "response")))[:64] or "response"
        return {"type": "json_schema", "json_schema": {"name": name, "schema": json_schema, "strict": False}}
    if mode == "json_object_schema":
        return {"type": "json_object", "schema": json_schema}
    if mode == "json_object":
        return {"type": "json_object"}
    raise ValueError(f"no response_format for structured-output mode {mode!r}")


def to_openai_messages(
    messages: Sequence[ChatMessage], *, sees_images: bool, hears_audio: bool
) -> list[dict[str, Any]]:
    """Messages in the chat-completions format: images as image_url data URLs, audio as input_audio parts.

    Parts the model cannot take are dropped (the caller sends a description or transcript as text instead).
    A message left with text only is sent as a plain string, which every compatible server accepts.

    Example:
        >>> to_openai_messages([ChatMessage("user", "hi")], sees_images=False, hears_audio=False)
        [{'role': 'user', 'content': 'hi'}]
    """
    converted: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message.content, str):
            converted.append({"role": message.role, "content": message.content})
            continue
        parts: list[dict[str, Any]] = []
        for part in message.content:
            if isinstance(part, TextPart):
                parts.append({"type": "text", "text": part.text})
            elif isinstance(part, ImagePart) and sees_images and message.role == "user":
                parts.append({"type": "image_url", "image_url": {"url": image_data_url(part.path)}})
            elif isinstance(part, AudioPart) and hears_audio and message.role == "user":
                parts.append({"type": "input_audio", "input_audio": audio_payload(part.path)})
            else:
                # The API takes media only in user messages, and only models that see or hear use them.
                logger.debug("dropping %s from a %s message", type(part).__name__, message.role)
        if all(part["type"] == "text" for part in parts):
            converted.append({"role": message.role, "content": "\n".join(part["text"] for part in parts)})
        else:
            converted.append({"role": message.role, "content": parts})
    return converted


def image_data_url(path: Path) -> str:
    """A ``data:image/...;base64,`` URL of an image file, its type taken from the suffix."""
    mime, _ = mimetypes.guess_type(Path(path).name)
    if mime is None or not mime.startswith("image/"):
        raise MediaError(path, "is not an image type a chat model takes", "Use a .png, .jpg, .webp or .gif file.")
    return f"data:{mime};base64,{base64.b64encode(_read(path)).decode('ascii')}"


def audio_payload(path: Path) -> dict[str, str]:
    """The ``input_audio`` object of an audio file: base64 data and its format (wav or mp3)."""
    audio_format = _AUDIO_FORMATS.get(Path(path).suffix.lower())
    if audio_format is None:
        raise MediaError(path, "is not WAV or MP3, the formats input_audio takes", "Convert the audio to WAV.")
    return {"data": base64.b64encode(_read(path)).decode("ascii"), "format": audio_format}


def _read(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise MediaError(path, f"cannot be read ({error.strerror})", "Check that the file exists.") from error


def _server_message(error: openai.APIStatusError) -> str:
    """The server's own words: the SDK keeps the body's "error" object (or the whole body) in `error.body`."""
    body = error.body
    if isinstance(body, dict):
        for key in ("message", "detail", "error"):
            value = body.get(key)
            if value:
                return value if isinstance(value, str) else str(value)
    if isinstance(body, str) and body:
        return body
    return error.response.text or error.message


def _is_format_rejection(error: openai.APIStatusError) -> bool:
    """Whether an HTTP error is the server refusing a response_format it does not implement."""
    if error.status_code not in (400, 422, 500):
        return False
    message = _server_message(error).lower()
    return any(word in message for word in _FORMAT_WORDS)


def _short(error: openai.APIError) -> str:
    if isinstance(error, openai.APIStatusError):
        return f"HTTP {error.status_code} ({_server_message(error)[:120]})"
    return type(error).__name__
