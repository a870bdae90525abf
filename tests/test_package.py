"""The install layout: one `codirector` namespace over the design card's top-level folders."""

from __future__ import annotations

import importlib
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from helpers import REPO


@pytest.mark.parametrize(
    ("module", "folder"),
    [
        ("codirector.schemas", "schemas"),
        ("codirector.agents", "agents"),
        ("codirector.generator", "generator"),
        ("codirector.prompts", "prompts"),
        ("codirector.evals", "evals"),
    ],
)
def test_rooms_install_under_one_namespace(module: str, folder: str) -> None:
    imported = importlib.import_module(module)
    assert Path(imported.__file__).resolve() == (REPO / folder / "__init__.py").resolve()


def test_rooms_import_without_torch() -> None:
    code = (
        "import sys, codirector.agents, codirector.schemas, codirector.evals, codirector.cli;"
        "import codirector.evals.runner, codirector.evals.compare, codirector.evals.report, codirector.evals.judges;"
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_typed_marker_and_schema_data_ship() -> None:
    assert resources.files("codirector").joinpath("py.typed").is_file()
    assert resources.files("codirector.schemas").joinpath("json", "job.schema.json").is_file()


def test_lazy_top_level_names() -> None:
    import codirector

    assert codirector.Job.__name__ == "Job"
    assert callable(codirector.load_job)
    with pytest.raises(AttributeError):
        _ = codirector.not_a_thing
