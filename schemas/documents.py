"""Files users keep: which kinds exist, their exported JSON Schemas, and loading with located errors.

Validation runs in two passes. The exported JSON Schema (Draft 2020-12) checks structure first, exactly as any
other tool reading our files would; the pydantic model then checks the cross-field rules a JSON Schema cannot
express (shots tile the timeline, speakers have audio). Every error carries a JSON path such as
``$.shots[2].start_s``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as JsonSchemaError
from jsonschema.exceptions import best_match
from pydantic import ValidationError

from codirector.errors import InputFileError, SchemaValidationError, ValidationIssue
from codirector.schemas.base import Document, Loc, RuleViolation
from codirector.schemas.evals import EvalRun, EvalSuite
from codirector.schemas.job import Job
from codirector.schemas.manifest import RenderManifest
from codirector.schemas.plan import Plan
from codirector.schemas.reasoning import CoReasoningRecord
from codirector.schemas.render_plan import RenderPlan
from codirector.schemas.reports import AudioReport, VisualReport
from codirector.schemas.storyline import Storyline

__all__ = [
    "DOCUMENT_TYPES",
    "JSON_SCHEMA_DIALECT",
    "detect_kind",
    "document_sha256",
    "dump_document",
    "export_json_schemas",
    "json_path",
    "json_schema",
    "load_document",
    "packaged_json_schema",
    "read_data",
    "validate_data",
    "write_text_atomic",
]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

DOCUMENT_TYPES: Mapping[str, type[Document]] = MappingProxyType(
    {
        model.KIND: model
        for model in (
            Job,
            AudioReport,
            VisualReport,
            CoReasoningRecord,
            Storyline,
            RenderPlan,
            RenderManifest,
            Plan,
            EvalSuite,
            EvalRun,
        )
    }
)
"""Every file kind, by the value of its ``kind`` field."""

# Files named like these are recognised without a `kind` field; anything else defaults to a job, the one
# kind people write by hand.
_KIND_BY_STEM = {
    "storyline": "storyline",
    "plan": "plan",
    "render_plan": "render_plan",
    "manifest": "render_manifest",
    "co_reasoning": "co_reasoning",
    "suite": "eval_suite",
    "run": "eval_run",
}


class _YamlLoader(yaml.SafeLoader):
    """Safe YAML without implicit timestamps: dates stay strings, as JSON and the schemas expect."""


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def json_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema (Draft 2020-12) of a file kind, generated from its pydantic model."""
    model = DOCUMENT_TYPES[kind]
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"codirector/{kind}.schema.json",
        **model.model_json_schema(mode="validation"),
    }


def _schema_text(kind: str) -> str:
    return json.dumps(json_schema(kind), indent=2, ensure_ascii=False) + "\n"


def export_json_schemas(directory: str | Path) -> list[Path]:
    """Write ``<kind>.schema.json`` for every file kind into `directory`, atomically; returns the paths."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in DOCUMENT_TYPES:
        path = target / f"{kind}.schema.json"
        write_text_atomic(path, _schema_text(kind))
        written.append(path)
    return written


@cache
def packaged_json_schema(kind: str) -> dict[str, Any]:
    """The committed schema shipped inside the package (what `codirector validate` checks against)."""
    text = resources.files("codirector.schemas").joinpath("json", f"{kind}.schema.json").read_text("utf-8")
    return json.loads(text)


def read_data(path: str | Path) -> Any:
    """Parse a YAML or JSON file into plain data, with a user error that names the file and the line."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "no such file", "Check the path.")
    if path.is_dir():
        raise InputFileError(path, "is a folder, not a file", "Give the path of a .yaml or .json file.")
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError:
        raise InputFileError(path, "is not UTF-8 text", "Give a YAML or JSON text file.") from None
    except OSError as error:
        raise InputFileError(path, f"cannot be read ({error.strerror})", "Check its permissions.") from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise InputFileError(
                path,
                f"malformed JSON at line {error.lineno}, column {error.colno}: {error.msg}",
                "Fix the syntax (a JSON linter shows where).",
            ) from None
    try:
        return yaml.load(text, Loader=_YamlLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise InputFileError(
            path, f"malformed YAML{where}: {problem}", "Fix the syntax (check indentation and quotes)."
        ) from None


def detect_kind(data: Any, path: str | Path | None = None) -> str:
    """The kind of a parsed document: its ``kind`` field, else its file name, else 'job'."""
    if isinstance(data, dict) and isinstance(data.get("kind"), str) and data["kind"] in DOCUMENT_TYPES:
        return data["kind"]
    if path is not None:
        stem = Path(path).name.split(".")[0]
        if stem in _KIND_BY_STEM:
            return _KIND_BY_STEM[stem]
    return "job"


def json_path(loc: Loc) -> str:
    """``('shots', 2, 'start_s')`` -> ``$.shots[2].start_s``."""
    text = "$"
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.isidentifier():
            text += f".{part}"
        else:
            text += f"[{json.dumps(part)}]"
    return text


def _schema_issues(data: Any, kind: str) -> list[ValidationIssue]:
    validator = Draft202012Validator(packaged_json_schema(kind))
    issues = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        specific = _most_specific(error)
        issues.append(ValidationIssue(specific.json_path, specific.message))
    return issues


def _most_specific(error: JsonSchemaError) -> JsonSchemaError:
    """For `X | None` fields the top error only says "not valid under any of the given schemas"; the
    sub-error of the non-null branch says why."""
    if not error.context:
        return error
    branches = [e for e in error.context if not (e.validator == "type" and e.validator_value == "null")]
    return best_match(branches or error.context) or error


def _model_issues(error: ValidationError) -> list[ValidationIssue]:
    issues = []
    for item in error.errors():
        loc: Loc = tuple(item["loc"])
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, RuleViolation):
            issues += [ValidationIssue(json_path(loc + sub_loc), message) for sub_loc, message in cause.issues]
        else:
            message = item["msg"].removeprefix("Value error, ")
            issues.append(ValidationIssue(json_path(loc), message))
    return issues


def validate_data(
    data: Any, kind: str, *, source: str | Path = "<data>", base_dir: str | Path | None = None
) -> Document:
    """Validate parsed data as a document of `kind`; raises `SchemaValidationError` listing every issue.

    Args:
        data: the parsed YAML or JSON.
        kind: a key of `DOCUMENT_TYPES`.
        source: how to name the input in errors (usually its path).
        base_dir: folder that relative paths in the document resolve against (a job file's folder).
    """
    if kind not in DOCUMENT_TYPES:
        raise InputFileError(source, f"unknown document kind {kind!r}", f"Use one of: {', '.join(DOCUMENT_TYPES)}.")
    issues = _schema_issues(data, kind)
    if issues:
        raise SchemaValidationError(source, kind, issues)
    context = {"base_dir": Path(base_dir)} if base_dir is not None else None
    try:
        return DOCUMENT_TYPES[kind].model_validate(data, context=context)
    except ValidationError as error:
        raise SchemaValidationError(source, kind, _model_issues(error)) from None


def load_document(path: str | Path, kind: str | None = None) -> Document:
    """Read, recognise and validate any codirector file; relative paths resolve against its folder.

    Example:
        >>> from codirector.schemas import load_document
        >>> job = load_document("examples/english_portrait/job.yaml")  # doctest: +SKIP
    """
    path = Path(path)
    data = read_data(path)
    kind = kind or detect_kind(data, path)
    return validate_data(data, kind, source=path, base_dir=path.parent.resolve())


def document_sha256(document: Document) -> str:
    """Hash of a document's canonical JSON (sorted keys): equal content, equal hash, whatever the file format."""
    text = json.dumps(document.model_dump(mode="json"), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def dump_document(document: Document, path: str | Path) -> Path:
    """Write a document as JSON (or YAML for a .yaml/.yml path), atomically."""
    path = Path(path)
    data = document.model_dump(mode="json")
    if path.suffix.lower() in {".yaml", ".yml"}:
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    else:
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    write_text_atomic(path, text)
    return path


def write_text_atomic(path: Path, text: str) -> None:
    """Write through a temporary file in the same folder and rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        # mkstemp makes the file private (0600); a document is an ordinary file: the umask's usual mode
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp_name, 0o666 & ~umask)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
