"""Cutting the JSON value out of a model's free text: what runtimes without constrained decoding need.

Shared by the transformers provider and the director's repair loop (`codirector.agents.structured`).
"""

from __future__ import annotations

import json
import re
from typing import Literal

__all__ = ["JSONExtractionError", "extract_json"]


class JSONExtractionError(ValueError):
    """No complete JSON value could be cut out of a model's output."""


def extract_json(text: str, *, expect: Literal["object", "array"] | None = None) -> str:
    """The first complete JSON object or array in `text` (code fences and prose around it ignored).

    The scan balances brackets outside of strings, so brackets inside string values do not end the value early.
    A bracketed span that is not JSON (prose in braces, a trailing comma) is skipped as a whole, never searched
    for fragments; a span still open at the end of the text means the output was cut off, and nothing inside it
    is returned either.

    Args:
        text: a model's output.
        expect: only an object (or only an array) counts, e.g. from the schema's top-level "type".

    Raises:
        JSONExtractionError: no complete JSON value; the message says whether one was cut off.

    Example:
        >>> extract_json('Sure! ```json\\n{"a": "}", "b": [1, 2]}\\n``` Done.')
        '{"a": "}", "b": [1, 2]}'
    """
    text = re.sub(r"```[A-Za-z0-9_-]*", "", text)
    openers = {"object": "{", "array": "["}[expect] if expect else "{["
    kind = {"object": "JSON object", "array": "JSON array"}.get(expect or "", "JSON object or array")
    start = 0
    while (start := _next_opener(text, openers, start)) >= 0:
        end, closed = _balanced_end(text, start)
        if not closed and end == len(text):
            raise JSONExtractionError(
                f"no complete {kind} in the output: one opens at character {start} but never closes "
                f"(cut off by the token limit?): {_preview(text)}"
            )
        if closed:
            candidate = text[start : end + 1]
            try:
                json.loads(candidate)
            except json.JSONDecodeError:
                pass  # not JSON: skip the whole span
            else:
                return candidate
        start = end + 1
    raise JSONExtractionError(f"no {kind} in the output: {_preview(text)}")


def _next_opener(text: str, openers: str, start: int) -> int:
    positions = [index for index in (text.find(opener, start) for opener in openers) if index >= 0]
    return min(positions, default=-1)


def _balanced_end(text: str, start: int) -> tuple[int, bool]:
    """Where the bracket at `start` closes, skipping string contents.

    Returns:
        (index of the closing bracket, True); (index of a mismatched bracket, False); or (len(text), False) when
        the text ends first.
    """
    closers = {"{": "}", "[": "]"}
    stack = [closers[text[start]]]
    in_string = escaped = False
    for index in range(start + 1, len(text)):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in closers:
            stack.append(closers[char])
        elif char in "]}":
            if char != stack.pop():
                return index, False
            if not stack:
                return index, True
    return len(text), False


def _preview(text: str, limit: int = 200) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
