"""The docs stay true: the README's snippet prints what it says, every job field and vocabulary term is documented,
and .ci/run runs exactly the README's test command."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
from enum import StrEnum

import pytest
from helpers import REPO
from pydantic import BaseModel

from codirector.schemas import Job, vocab

README = (REPO / "README.md").read_text()


def fenced(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_readme_python_snippet_prints_what_it_claims(monkeypatch: pytest.MonkeyPatch) -> None:
    (snippet,) = fenced(README, "python")
    claimed = [line.split("# ", 1)[1].strip() for line in snippet.splitlines() if line.startswith("print(")]
    monkeypatch.chdir(REPO)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(snippet, "README.md", "exec"), {})
    assert out.getvalue().splitlines() == claimed


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test_command = fenced(README.split("## Run the tests", 1)[1], "bash")[0].strip()
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def field_names(model: type[BaseModel]) -> set[str]:
    names = set()
    for name, field in model.model_fields.items():
        names.add(name)
        for candidate in (*getattr(field.annotation, "__args__", ()), field.annotation):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                names |= field_names(candidate)
    return names


def test_every_job_field_is_in_the_job_spec() -> None:
    spec = (REPO / "docs" / "job-spec.md").read_text()
    missing = sorted(name for name in field_names(Job) if f"`{name}`" not in spec)
    assert missing == []


def test_every_vocabulary_term_is_documented() -> None:
    doc = (REPO / "docs" / "vocabulary.md").read_text()
    enums = [value for value in vars(vocab).values() if isinstance(value, type) and issubclass(value, StrEnum)]
    missing = sorted(f"{enum.__name__}.{member.value}" for enum in enums for member in enum if member.value not in doc)
    assert missing == []


def test_lint_and_format_are_clean() -> None:
    ruff = shutil.which("ruff", path=os.path.dirname(sys.executable)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it comes with the test extra)")
    subprocess.run([ruff, "check", "--no-cache", str(REPO)], check=True, cwd=REPO)
    subprocess.run([ruff, "format", "--check", "--no-cache", str(REPO)], check=True, cwd=REPO)


def test_readme_main_command_renders_its_example(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's one install-and-run command: its `codirector ...` part runs and writes the MP4 it names."""
    from codirector.cli import run as cli_run
    from codirector.generator.videoio import probe_video

    main = fenced(README.split("## Install and run", 1)[1], "bash")[0].strip()
    invocation = main.split("&&")[-1].split()
    assert invocation[0].endswith("codirector")
    args = invocation[1:]
    output = args[args.index("-o") + 1]
    args[args.index("-o") + 1] = str(tmp_path / output)
    args = [str(REPO / a) if a.startswith("examples/") else a for a in args]
    monkeypatch.setenv("CODIRECTOR_HOME", str(tmp_path / "home"))
    assert cli_run(args) == 0
    info = probe_video(tmp_path / output)
    assert (info.video_codec, info.audio_codecs) == ("h264", ("aac",))
