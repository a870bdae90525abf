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

from codirector.agents.providers.base import AudioPart, ChatMessage, ChatModel, ImagePart, Part, TextPart
from codirector.agents.providers.jsontext import extract_json
from codirector.errors import AgentOutputError, ProviderError
from codirector.prompts.templates import load_prompt
from codirector.schemas.base import PromptRef, RuleViolation
from codirector.schemas.plan import ModelCall

__all__ = ["Asked", "ask"]

logger = logging.getLogger(__name__)
T = TypeVar("T", bound=BaseModel)


@dataclass
class Asked:
    """What one `ask` cost: its calls, repairs and the prompts it used."""

    calls: list[ModelCall] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    prompt_refs: list[PromptRef] = field(default_factory=list)


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
    system, user = template.render_chat(output_type, **inputs)
    content: tuple[Part, ...] = (TextPart(user), *attachments)
    messages = [ChatMessage("system", system), ChatMessage("user", content)]
    schema = output_type.model_json_schema()
    raw = ""
    problem = ""
    for attempt in range(1, max_attempts + 1):
        started = time.perf_counter()
        try:
            response = model.complete(messages, json_schema=schema, max_tokens=max_tokens, seed=seed)
        except ProviderError:
            accounting.calls.append(
                ModelCall(
                    expert=expert,
                    purpose=purpose,
                    provider=model.name,
                    round=round_index,
                    attempt=attempt,
                    ok=False,
                    latency_s=time.perf_counter() - started,
                )
            )
            raise
        raw = response.text
        try:
            data = json.loads(extract_json(raw))
            parsed = output_type.model_validate(prepare(data) if prepare is not None else data)
            result = check(parsed) if check is not None else parsed
        except (ValueError, ValidationError, RuleViolation) as error:
            problem = _error_text(error)
            ok = False
        else:
            ok = True
        accounting.calls.append(
            ModelCall(
                expert=expert,
                purpose=purpose,
                provider=model.name,
                round=round_index,
                attempt=attempt,
                ok=ok,
                latency_s=response.latency_s or time.perf_counter() - started,
                prompt_tokens=response.prompt_tokens,
                completion_tokens=response.completion_tokens,
            )
        )
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
