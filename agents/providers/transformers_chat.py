"""The `transformers:` provider: a local model in this process, from a folder or a GGUF file.

Three families, chosen from the checkpoint's ``model_type``:

- any chat causal LM (``AutoModelForCausalLM`` and its tokenizer's chat template), including GGUF files, which
  transformers de-quantizes on load; text only;
- Qwen2-VL / Qwen2.5-VL (``qwen2_vl``, ``qwen2_5_vl``): images through the processor and qwen-vl-utils;
- Qwen2.5-Omni (``qwen2_5_omni``): images and audio; only its "thinker" runs (text out), the speech talker is
  never built.

transformers has no grammar-constrained decoding here, so a JSON Schema goes into the system prompt, the reply is
started with the schema's opening bracket (a prefill: small models otherwise answer in prose), and the first
complete JSON value is cut out of the generated text (`extract_json`); the caller still validates it.
torch and transformers are imported on the first `complete` call, never at import.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Literal

from codirector.errors import ConfigError, MediaError, ProviderError, ProviderNotFoundError

from .base import AudioPart, ChatMessage, ChatResponse, ImagePart, TextPart, with_schema_instruction
from .jsontext import JSONExtractionError, extract_json

__all__ = [
    "JSONExtractionError",
    "ModelKind",
    "TransformersChatModel",
    "extract_json",
    "model_kind",
    "to_qwen_messages",
    "to_text_messages",
]

logger = logging.getLogger(__name__)

ModelKind = Literal["causal_lm", "qwen_vl", "qwen_omni"]
_DTYPES = ("auto", "float32", "float16", "bfloat16")
_QWEN_VL_CLASSES = {"qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration", "qwen2_vl": "Qwen2VLForConditionalGeneration"}


def model_kind(model_type: str) -> ModelKind:
    """The family a checkpoint's ``config.model_type`` belongs to.

    Example:
        >>> model_kind("qwen2_5_vl"), model_kind("qwen2_5_omni"), model_kind("llama")
        ('qwen_vl', 'qwen_omni', 'causal_lm')
    """
    if model_type.startswith("qwen2_5_omni"):
        return "qwen_omni"
    if model_type.startswith(("qwen2_5_vl", "qwen2_vl")):
        return "qwen_vl"
    return "causal_lm"


@dataclass
class _Loaded:
    """What the first call loads: the model and whatever turns messages into its inputs."""

    kind: ModelKind
    model: Any
    tokenizer: Any  # the tokenizer, or the processor's tokenizer for Qwen
    processor: Any | None


class TransformersChatModel:
    """A local chat model run by transformers on this machine.

    Args:
        path: a model folder (with config.json), or the folder that holds `gguf_file`.
        device: "cpu", "cuda", "cuda:1", "mps", or "auto" (spread over the available devices; needs accelerate).
        dtype: "auto", "float32", "float16" or "bfloat16"; None keeps transformers' default (GGUF files are
            de-quantized to float32).
        max_new_tokens: a cap on generated tokens, whatever `complete` is asked for.
        gguf_file: the name of a .gguf file inside `path`.

    Example:
        >>> from codirector.assets import locate
        >>> gguf = locate("smollm2-135m-instruct")
        >>> model = TransformersChatModel(gguf.parent, gguf_file=gguf.name, max_new_tokens=40)
        >>> (model.sees_images, model.hears_audio)
        (False, False)

        ``model.complete([ChatMessage("user", "Say hi")]).text`` loads the model (about 20 s on 2 CPU cores)
        and answers.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        device: str = "cpu",
        dtype: str | None = None,
        max_new_tokens: int = 1024,
        gguf_file: str | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        self.device = device
        self.dtype = dtype
        self.max_new_tokens = max_new_tokens
        self.gguf_file = gguf_file
        if dtype is not None and dtype not in _DTYPES:
            raise ConfigError("dtype", f"unknown dtype {dtype!r}", f"Use one of: {', '.join(_DTYPES)}.")
        if max_new_tokens < 1:
            raise ConfigError("max_new_tokens", f"must be at least 1, got {max_new_tokens}", "Pass a positive count.")
        if gguf_file is not None:
            source = self.path / gguf_file
            if not source.is_file():
                raise ProviderNotFoundError(source, "no such GGUF file", "Pass the path of an existing .gguf file.")
            # transformers refuses GGUF files without both of these (it checks for accelerate up front).
            _require(source, ("gguf", "accelerate"), "pip install gguf accelerate")
            # transformers reads GGUF for text-only architectures, so the family is a causal LM.
            self._kind: ModelKind = "causal_lm"
        else:
            source = self.path
            self._kind = model_kind(_read_model_type(self.path))
            if self._kind != "causal_lm":
                # qwen-vl-utils reads images through torchvision (install the build that matches your torch).
                _require(source, ("qwen_vl_utils", "torchvision"), "pip install qwen-vl-utils torchvision")
            if self._kind == "qwen_omni":
                _require(source, ("librosa",), "pip install librosa")
        self.name = f"transformers:{source}"
        self.sees_images = self._kind in ("qwen_vl", "qwen_omni")
        self.hears_audio = self._kind == "qwen_omni"
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()  # one generate at a time: experts may share the model across threads

    @classmethod
    def from_path(cls, path: str | Path, **options: Any) -> TransformersChatModel:
        """The model at `path`: a folder, or a .gguf file (loaded from its folder with ``gguf_file=``).

        This is what "transformers:PATH" resolves to.
        """
        resolved = Path(path).expanduser()
        if resolved.suffix.lower() == ".gguf":
            return cls(resolved.parent, gguf_file=resolved.name, **options)
        return cls(resolved, **options)

    def __repr__(self) -> str:
        return f"TransformersChatModel({str(self.path)!r}, gguf_file={self.gguf_file!r}, device={self.device!r})"

    @property
    def loaded(self) -> bool:
        """Whether the weights are in memory (they load on the first `complete` call, or with `load`)."""
        return self._loaded is not None

    def load(self) -> None:
        """Load the tokenizer or processor and the weights now instead of on the first call."""
        with self._lock:
            self._load_locked()

    def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int = 1024,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> ChatResponse:
        """Generate one reply; see `ChatModel.complete`.

        With a `json_schema`, the reply's `text` is the first complete JSON value in the output and
        ``extra["raw_text"]`` the whole output; when there is none, `text` is the raw output (the caller's
        validation reports it) and ``extra["json_error"]`` says why.

        Raises:
            ProviderError: the device ran out of memory.
            ProviderNotFoundError: the model cannot be loaded from its path.
            MediaError: an image or audio file is missing.
        """
        import torch

        prefill = ""
        if json_schema is not None:
            messages = with_schema_instruction(messages, json_schema)
            prefill = {"object": "{", "array": "["}.get(str(json_schema.get("type")), "")
        started = time.perf_counter()
        with self._lock:
            loaded = self._load_locked()
            inputs = self._inputs(loaded, messages, prefill)
            prompt_tokens = int(inputs["input_ids"].shape[1])
            generate_kwargs: dict[str, Any] = {"max_new_tokens": min(max_tokens, self.max_new_tokens)}
            if temperature > 0:
                generate_kwargs.update(do_sample=True, temperature=temperature)
            else:
                # Greedy, so a plan is repeatable; clear sampling knobs a checkpoint's generation config may set.
                generate_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            if loaded.tokenizer.pad_token_id is None:
                generate_kwargs["pad_token_id"] = loaded.tokenizer.eos_token_id
            if seed is not None:
                torch.manual_seed(seed)
            # Qwen2.5-Omni: only the thinker writes text; the full model's generate would also run the talker.
            generator = loaded.model.thinker if loaded.kind == "qwen_omni" else loaded.model
            try:
                with torch.inference_mode():
                    output = generator.generate(**inputs, **generate_kwargs)
            except torch.OutOfMemoryError as error:
                raise ProviderError(
                    self.name, f"out of memory on {self.device}: {error}; lower max_tokens or use a smaller dtype"
                ) from error
        new_tokens = output[0, prompt_tokens:]
        raw = (prefill + loaded.tokenizer.decode(new_tokens, skip_special_tokens=True)).strip()
        text, extra = raw, {"device": str(getattr(loaded.model, "device", self.device))}
        if json_schema is not None:
            extra["raw_text"] = raw
            expect: Literal["object", "array"] | None = json_schema.get("type") if prefill else None
            try:
                text = extract_json(raw, expect=expect)
            except JSONExtractionError as error:
                logger.warning("%s: %s", self.name, error)
                extra["json_error"] = str(error)
        return ChatResponse(
            text=text,
            model=self.name,
            prompt_tokens=prompt_tokens,
            completion_tokens=len(new_tokens),
            latency_s=time.perf_counter() - started,
            extra=extra,
        )

    def _load_locked(self) -> _Loaded:
        """Load on first use (the caller holds the lock); imports torch and transformers here, not at import."""
        if self._loaded is not None:
            return self._loaded
        import transformers

        started = time.perf_counter()
        source: dict[str, Any] = {"gguf_file": self.gguf_file} if self.gguf_file else {}
        options: dict[str, Any] = dict(source)
        if self.dtype is not None:
            options["dtype"] = self.dtype
        if self.device == "auto":
            options["device_map"] = "auto"
        try:
            config = transformers.AutoConfig.from_pretrained(self.path, **source)
            kind = model_kind(config.model_type)
            if kind == "causal_lm":
                processor = None
                tokenizer = transformers.AutoTokenizer.from_pretrained(self.path, **source)
                model = transformers.AutoModelForCausalLM.from_pretrained(self.path, config=config, **options)
                if tokenizer.chat_template is None:
                    raise ProviderNotFoundError(
                        self.name, "has no chat template (a base model?)", "Use an instruction-tuned chat model."
                    )
            else:
                processor = transformers.AutoProcessor.from_pretrained(self.path)
                tokenizer = processor.tokenizer
                if kind == "qwen_omni":
                    config.enable_audio_output = False  # text out only: the talker and token2wav are not built
                    model_class = transformers.Qwen2_5OmniForConditionalGeneration
                else:
                    model_class = getattr(transformers, _QWEN_VL_CLASSES.get(config.model_type, ""), None)
                    model_class = model_class or transformers.AutoModelForImageTextToText
                model = model_class.from_pretrained(self.path, config=config, **options)
        except (OSError, ValueError) as error:
            raise ProviderNotFoundError(
                self.name,
                f"cannot be loaded ({error})",
                "Check that the path holds a complete model (config, tokenizer, weights); codirector never downloads.",
            ) from error
        if self.device != "auto":
            model = model.to(self.device)
        model.eval()
        self._loaded = _Loaded(kind=kind, model=model, tokenizer=tokenizer, processor=processor)
        self._kind = kind
        logger.info("%s: loaded a %s model in %.1f s", self.name, kind, time.perf_counter() - started)
        return self._loaded

    def _inputs(self, loaded: _Loaded, messages: Sequence[ChatMessage], prefill: str) -> Any:
        """The model's inputs (input_ids, attention_mask, and pixel or audio features) on its device.

        `prefill` is appended after the assistant turn's opening, so generation continues from it.
        """
        if loaded.kind == "causal_lm":
            prompt = loaded.tokenizer.apply_chat_template(
                to_text_messages(messages), tokenize=False, add_generation_prompt=True
            )
            # The template already wrote any BOS token: adding special tokens again would double it.
            inputs = loaded.tokenizer(prompt + prefill, add_special_tokens=False, return_tensors="pt")
            return inputs.to(loaded.model.device)
        from qwen_vl_utils import process_vision_info

        conversation = to_qwen_messages(messages, sees_images=self.sees_images, hears_audio=self.hears_audio)
        prompt = loaded.processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        images, videos = process_vision_info(conversation)
        features: dict[str, Any] = {"text": [prompt + prefill], "images": images, "videos": videos}
        if loaded.kind == "qwen_omni":
            import librosa

            rate = loaded.processor.feature_extractor.sampling_rate
            paths = [item["audio"] for item in _media_items(conversation, "audio")]
            features["audio"] = [librosa.load(path, sr=rate)[0] for path in paths] or None
        inputs = loaded.processor(**features, padding=True, return_tensors="pt")
        return inputs.to(loaded.model.device)


def to_text_messages(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    """Messages for a text-only chat template: each message's text parts, media dropped.

    Example:
        >>> to_text_messages([ChatMessage("user", (TextPart("a"), ImagePart(Path("x.png")), TextPart("b")))])
        [{'role': 'user', 'content': 'a\\nb'}]
    """
    return [{"role": message.role, "content": message.text()} for message in messages]


def to_qwen_messages(messages: Sequence[ChatMessage], *, sees_images: bool, hears_audio: bool) -> list[dict[str, Any]]:
    """Messages in Qwen's content-list format (Qwen2.5-VL, Qwen2.5-Omni chat templates and qwen-vl-utils).

    Images become ``{"type": "image", "image": "/abs/path"}``, audio ``{"type": "audio", "audio": "/abs/path"}``;
    parts the model cannot take are dropped (the caller sends a description or transcript as text instead).

    Raises:
        MediaError: an image or audio file that would be sent does not exist.

    Example:
        >>> to_qwen_messages([ChatMessage("system", "Be brief.")], sees_images=True, hears_audio=False)
        [{'role': 'system', 'content': [{'type': 'text', 'text': 'Be brief.'}]}]
    """
    converted: list[dict[str, Any]] = []
    for message in messages:
        parts = (TextPart(message.content),) if isinstance(message.content, str) else message.content
        content: list[dict[str, str]] = []
        for part in parts:
            if isinstance(part, TextPart):
                content.append({"type": "text", "text": part.text})
            elif isinstance(part, ImagePart) and sees_images:
                content.append({"type": "image", "image": _existing(part.path)})
            elif isinstance(part, AudioPart) and hears_audio:
                content.append({"type": "audio", "audio": _existing(part.path)})
            else:
                logger.debug("dropping %s: the model cannot take it", type(part).__name__)
        converted.append({"role": message.role, "content": content})
    return converted


def _media_items(conversation: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [item for message in conversation for item in message["content"] if item.get("type") == kind]


def _existing(path: Path) -> str:
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise MediaError(path, "does not exist", "Check the path of the image or audio file.")
    return str(resolved)


def _read_model_type(path: Path) -> str:
    """``model_type`` from a model folder's config.json, read without importing transformers."""
    config = path / "config.json"
    if not path.is_dir():
        raise ProviderNotFoundError(
            path,
            "no such model folder",
            "Pass a local folder with config.json or a .gguf file; codirector never downloads weights.",
        )
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type", "")
    except FileNotFoundError as error:
        raise ProviderNotFoundError(path, "has no config.json", "Pass the folder of a transformers model.") from error
    except (OSError, json.JSONDecodeError) as error:
        raise ProviderNotFoundError(config, f"cannot be read ({error})", "Check the model folder.") from error
    return str(model_type)


def _require(source: Path, modules: tuple[str, ...], install: str) -> None:
    missing = [module for module in modules if find_spec(module) is None]
    if missing:
        raise ProviderNotFoundError(
            source, f"loading this model needs {', '.join(missing)}, which is not installed", f"Run `{install}`."
        )
