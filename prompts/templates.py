"""Prompt templates as files: YAML front matter (id, version, declared inputs) over a Jinja2 body.

STYLE.md: one prompt per file under ``prompts/<agent>/<purpose>.md``; Jinja2 with StrictUndefined, so a missing
input is an error and never an empty string; the JSON shape a model must answer in is injected from the
pydantic model (`output_schema`), never written by hand. Every run records each template's id, version and
hash (`PromptRef`), so an eval result can be attributed to the exact prompt text that produced it.

A chat prompt's body has ``## system`` and ``## user`` sections; a text template (the offline director writes
shot prompts from these) has neither and renders to one string. A folder given as `prompts_dir` overrides
the packaged templates file by file: that is how a user iterates on prompts (`codirector eval run --prompts`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import yaml
from pydantic import BaseModel

from codirector.errors import InputFileError
from codirector.schemas.base import PromptRef

__all__ = ["PromptTemplate", "current_ref", "load_prompt", "load_prompt_data", "packaged_prompts_dir"]

_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n(.*)\Z", re.DOTALL)
_SECTION = re.compile(r"^## (system|user)\s*$", re.MULTILINE)
_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)
_ENV.filters["tojson"] = lambda value: json.dumps(value, ensure_ascii=False)
_ENV.filters["sentence"] = lambda value: str(value)[:1].upper() + str(value)[1:]  # capitalize() lowercases names


def packaged_prompts_dir() -> Path:
    """The folder of the templates that ship with codirector."""
    return Path(str(resources.files("codirector.prompts")))


@dataclass(frozen=True)
class PromptTemplate:
    """One parsed template file.

    Example:
        >>> template = load_prompt("text_expert/shot_prompt")
        >>> template.id, sorted(template.inputs)[:2]
        ('text_expert/shot_prompt', ['actions', 'camera'])
    """

    id: str
    version: str
    inputs: frozenset[str]
    body: str
    sha256: str
    path: Path

    @property
    def ref(self) -> PromptRef:
        return PromptRef(id=self.id, version=self.version, sha256=self.sha256)

    def _check_inputs(self, values: dict[str, Any]) -> None:
        missing = sorted(self.inputs - values.keys())
        unknown = sorted(values.keys() - self.inputs)
        if missing or unknown:
            raise InputFileError(
                self.path,
                f"prompt {self.id!r} declares inputs {sorted(self.inputs)}; missing {missing}, undeclared {unknown}",
                "Make the template's front-matter `inputs` match what the code passes.",
            )

    def _render(self, text: str, values: dict[str, Any]) -> str:
        try:
            return _ENV.from_string(text).render(**values).strip()
        except jinja2.TemplateError as error:
            raise InputFileError(
                self.path, f"prompt {self.id!r} does not render: {error}", "Fix the template."
            ) from None

    def render(self, **values: Any) -> str:
        """Render a text template (no sections) with exactly its declared inputs; empty lines are dropped."""
        self._check_inputs(values)
        return "\n".join(line for line in self._render(self.body, values).splitlines() if line.strip())

    def render_chat(self, output_type: type[BaseModel] | None = None, **values: Any) -> tuple[str, str]:
        """Render a chat template to (system, user). `output_type`'s JSON Schema fills `output_schema`."""
        if output_type is not None:
            values["output_schema"] = json.dumps(output_type.model_json_schema(), ensure_ascii=False)
        self._check_inputs(values)
        pieces = _SECTION.split(self.body)
        sections = dict(zip(pieces[1::2], pieces[2::2], strict=True))
        if set(sections) != {"system", "user"}:
            raise InputFileError(self.path, "a chat prompt needs '## system' and '## user' sections", "Add them.")
        return self._render(sections["system"], values), self._render(sections["user"], values)


def _find(relative: str, prompts_dir: Path | None) -> Path:
    for folder in (prompts_dir, packaged_prompts_dir()):
        if folder is not None and (folder / relative).is_file():
            return folder / relative
    raise InputFileError(
        relative,
        "no such prompt file" + (f" in {prompts_dir} or the packaged prompts" if prompts_dir else ""),
        "Check the prompt id; packaged prompts are listed under codirector/prompts.",
    )


@cache
def _parse(path: Path, mtime_ns: int) -> PromptTemplate:
    text = path.read_text(encoding="utf-8")
    match = _FRONT_MATTER.match(text)
    if match is None:
        raise InputFileError(path, "a prompt file starts with YAML front matter between '---' lines", "Add it.")
    meta = yaml.safe_load(match.group(1)) or {}
    if not isinstance(meta, dict) or not {"id", "version", "inputs"} <= meta.keys():
        raise InputFileError(path, "front matter needs id, version and inputs", "Add the missing keys.")
    return PromptTemplate(
        id=str(meta["id"]),
        version=str(meta["version"]),
        inputs=frozenset(meta["inputs"] or ()),
        body=match.group(2),
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        path=path,
    )


def load_prompt(prompt_id: str, prompts_dir: Path | None = None) -> PromptTemplate:
    """Load ``<prompt_id>.md`` from `prompts_dir` if it has one, else from the packaged prompts."""
    path = _find(f"{prompt_id}.md", prompts_dir)
    return _parse(path, path.stat().st_mtime_ns)


def load_prompt_data(name: str, prompts_dir: Path | None = None) -> tuple[Any, PromptRef]:
    """Load a YAML data file that belongs with the prompts (lexicons, few-shot examples), with its ref.

    Data files carry the same front matter keys as templates at their top level (id, version).
    """
    path = _find(f"{name}.yaml", prompts_dir)
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not {"id", "version"} <= data.keys():
        raise InputFileError(path, "a prompt data file needs top-level id and version", "Add them.")
    ref = PromptRef(id=str(data["id"]), version=str(data["version"]), sha256=hashlib.sha256(text.encode()).hexdigest())
    return data, ref


def current_ref(prompt_id: str, prompts_dir: Path | None = None) -> PromptRef | None:
    """The ref `prompt_id` has now (a template's or a data file's), as a plan would record it; None if it is gone.

    An eval reuses a cached plan when every prompt the plan recorded still has the same hash (evals/cache.py).
    """
    for suffix in (".md", ".yaml"):
        try:
            _find(prompt_id + suffix, prompts_dir)
        except InputFileError:
            continue
        if suffix == ".md":
            return load_prompt(prompt_id, prompts_dir).ref
        return load_prompt_data(prompt_id, prompts_dir)[1]
    return None
