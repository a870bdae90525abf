"""Asking a chat model for a pydantic object, with a bounded repair loop that feeds the error back.

STYLE.md: "LLM output is parsed into pydantic models with bounded, recorded retries that feed the error back;
after that a typed error carrying the raw text. Never a sentinel string, never a silent fallback."
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from codirector.agents.providers.base import AudioPart, ChatMessage, ChatModel, ChatResponse, ImagePart, Part, TextPart
from codirector.agents.providers.jsontext import extract_json
from codirector.errors import AgentOutputError, ProviderError
from codirector.prompts.templates import load_prompt
from codirector.schemas.base import PromptRef, RuleViolation
from codirector.schemas.plan import ModelCall

__all__ = ["Asked", "ask", "cap_strings", "conform", "exact_length", "restrict"]

logger = logging.getLogger(__name__)
T = TypeVar("T", bound=BaseModel)


@dataclass
class Asked:
    """What `ask` cost: its calls, the errors fed back (`repairs`), the deterministic fixes, and the prompts."""

    calls: list[ModelCall] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    prompt_refs: list[PromptRef] = field(default_factory=list)


def restrict(schema: dict[str, Any], field: str, values: Sequence[str]) -> dict[str, Any]:
    """A copy of `schema` where every property named `field` (or its items, for lists) may only take `values`.

    Ids a model must copy (character ids, finding ids) become enums, so a server that constrains decoding
    to the schema can only produce existing ones; the pydantic check still runs after.
    """

    def visit(node: Any) -> Any:
        if isinstance(node, dict):
            out = {key: visit(value) for key, value in node.items()}
            props = out.get("properties")
            if isinstance(props, dict) and field in props:
                props[field] = _enum(props[field])
            return out
        if isinstance(node, list):
            return [visit(item) for item in node]
        return node

    def _enum(prop: dict[str, Any]) -> dict[str, Any]:
        if prop.get("type") == "array":
            return {**prop, "items": {"type": "string", "enum": list(values)}}
        if "anyOf" in prop:  # Optional[str]: keep the null branch
            return {**prop, "anyOf": [{"type": "string", "enum": list(values)}, {"type": "null"}]}
        return {key: value for key, value in prop.items() if key not in ("pattern", "minLength", "maxLength")} | {
            "type": "string",
            "enum": list(values),
        }

    return visit(schema)


_MAX_TEXT = 200
"""Longest free-text value asked of a model: small models under constrained decoding otherwise copy the
transcript into a string until the token limit cuts the JSON off."""


def cap_strings(schema: dict[str, Any], limit: int = _MAX_TEXT) -> dict[str, Any]:
    """A copy of `schema` where every free-text string has a maxLength (servers that constrain decoding honour it)."""
    if isinstance(schema, dict):
        out = {key: cap_strings(value, limit) for key, value in schema.items()}
        if out.get("type") == "string" and not {"enum", "const", "maxLength", "pattern"} & out.keys():
            out["maxLength"] = limit
        return out
    if isinstance(schema, list):
        return [cap_strings(item, limit) for item in schema]
    return schema


def conform(
    data: Any, schema: dict[str, Any], fixes: list[str], root: dict[str, Any] | None = None, at: str = "$"
) -> Any:
    """Deterministic repair against the schema: clamp numbers into [minimum, maximum] (which grammar-constrained
    decoding does not enforce) and cut strings to maxLength. Everything else is left for validation."""
    root = root or schema
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    for option in schema.get("anyOf", []):
        if data is not None and option.get("type") != "null":
            return conform(data, option, fixes, root, at)
    if isinstance(data, dict) and "properties" in schema:
        return {
            key: conform(value, schema["properties"][key], fixes, root, f"{at}.{key}")
            if key in schema["properties"]
            else value
            for key, value in data.items()
        }
    if isinstance(data, list) and isinstance(schema.get("items"), dict):
        return [conform(item, schema["items"], fixes, root, f"{at}[{i}]") for i, item in enumerate(data)]
    if isinstance(data, int | float) and not isinstance(data, bool) and schema.get("type") in ("integer", "number"):
        low, high = schema.get("minimum", schema.get("exclusiveMinimum")), schema.get("maximum")
        clamped = min(max(data, low), high) if low is not None and high is not None else data
        if clamped != data:
            fixes.append(f"{at}: {data} clamped to {clamped}")
        return int(clamped) if schema.get("type") == "integer" else clamped
    if isinstance(data, str) and len(data) > schema.get("maxLength", len(data)):
        fixes.append(f"{at}: cut to {schema['maxLength']} characters")
        return data[: schema["maxLength"]]
    return data


def exact_length(schema: dict[str, Any], field: str, count: int) -> dict[str, Any]:
    """A copy of `schema` whose list `field` must have exactly `count` items (one per shot, one per segment)."""
    props = dict(schema["properties"])
    props[field] = {**props[field], "minItems": count, "maxItems": count}
    return {**schema, "properties": props}


def _error_text(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or '$'}: {item['msg']}" for item in error.errors()[:8]
        )
    if isinstance(error, RuleViolation):
        return "; ".join(f"{'.'.join(str(p) for p in loc)}: {msg}" for loc, msg in error.issues[:8])
    return str(error)


def ask(
    model: ChatModel,
    prompt_id: str,
    output_type: type[T],
    *,
    expert: str,
    purpose: str,
    inputs: dict[str, Any],
    attachments: Sequence[ImagePart | AudioPart] = (),
    prepare: Callable[[Any], Any] | None = None,
    check: Callable[[T], T] | None = None,
    json_schema: dict[str, Any] | None = None,
    max_attempts: int = 3,
    round_index: int | None = None,
    prompts_dir: Path | None = None,
    max_tokens: int = 1024,
    seed: int | None = 0,
    accounting: Asked | None = None,
) -> T:
    """Render `prompt_id`, ask `model`, parse into `output_type`, and check it; repeat with the error fed back.

    Args:
        prepare: deterministic repairs on the parsed JSON before validation (e.g. clamping to the vocabulary).
        json_schema: the schema to ask for, when it is narrower than `output_type`'s (see `restrict`).
        check: extra validation (and deterministic repair) run on the parsed object; raises to reject it.
        max_attempts: calls at most, the first included.
        accounting: where the calls and prompt refs are recorded.

    Raises:
        AgentOutputError: no attempt validated; carries the last raw reply.
        ProviderError: the provider failed (not retried here: providers retry their own transport errors).
    """
    accounting = accounting if accounting is not None else Asked()
    template = load_prompt(prompt_id, prompts_dir)
    repair = load_prompt("repair", prompts_dir)
    accounting.prompt_refs += [template.ref, repair.ref]
    schema = cap_strings(json_schema or output_type.model_json_schema())
    system, user = template.render_chat(None, output_schema=json.dumps(schema, ensure_ascii=False), **inputs)
    content: tuple[Part, ...] = (TextPart(user), *attachments)
    messages = [ChatMessage("system", system), ChatMessage("user", content)]
    raw = ""
    problem = ""

    def record(attempt: int, started: float, ok: bool, response: ChatResponse | None = None) -> None:
        accounting.calls.append(
            ModelCall(
                expert=expert,
                purpose=purpose,
                provider=model.name,
                round=round_index,
                attempt=attempt,
                ok=ok,
                latency_s=(response.latency_s if response else 0.0) or time.perf_counter() - started,
                prompt_tokens=response.prompt_tokens if response else None,
                completion_tokens=response.completion_tokens if response else None,
            )
        )

    for attempt in range(1, max_attempts + 1):
        started = time.perf_counter()
        try:
            response = model.complete(messages, json_schema=schema, max_tokens=max_tokens, seed=seed)
        except ProviderError:
            record(attempt, started, False)
            raise
        raw = response.text
        try:
            data = conform(json.loads(extract_json(raw)), schema, accounting.fixes)
            parsed = output_type.model_validate(prepare(data) if prepare is not None else data)
            result = check(parsed) if check is not None else parsed
        except (ValueError, ValidationError, RuleViolation) as error:
            problem = _error_text(error)
            ok = False
        else:
            ok = True
        record(attempt, started, ok, response)
        if ok:
            return result
        logger.info("%s/%s attempt %d rejected: %s", expert, purpose, attempt, problem)
        accounting.repairs.append(f"attempt {attempt}: {problem}")
        messages += [
            ChatMessage("assistant", raw),
            ChatMessage("user", repair.render(error=problem)),
        ]
    raise AgentOutputError(
        f"{expert} expert ({model.name})",
        f"{purpose}: no valid answer after {max_attempts} attempts; last error: {problem}",
        raw,
    )
