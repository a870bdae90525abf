"""codirector: long-form, audio-driven avatar video. A co-reasoning director plans, a cascade renders.

Example:
    >>> import codirector
    >>> job = codirector.load_job("examples/english_portrait/job.yaml")  # doctest: +SKIP
    >>> job.characters[0].id  # doctest: +SKIP
    'host'

Names are imported lazily (PEP 562) so that `import codirector` stays cheap and the rooms (agents, generator,
evals) can import `codirector.errors` and `codirector.config` without pulling in the front door.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("codirector")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

_LAZY = {
    "Config": "codirector.config",
    "load_config": "codirector.config",
    "load_job": "codirector.api",
    "load_document": "codirector.api",
    "validate_file": "codirector.api",
    "plan": "codirector.api",
    "render": "codirector.api",
    "plan_and_render": "codirector.api",
    "RenderResult": "codirector.generator.cascade",
    "Plan": "codirector.schemas",
    "ValidationReport": "codirector.api",
    "Job": "codirector.schemas",
    "Storyline": "codirector.schemas",
    "RenderPlan": "codirector.schemas",
    "RenderManifest": "codirector.schemas",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:
    from codirector.api import (  # noqa: F401
        ValidationReport,
        load_document,
        load_job,
        plan,
        plan_and_render,
        render,
        validate_file,
    )
    from codirector.config import Config, load_config  # noqa: F401
    from codirector.generator.cascade import RenderResult  # noqa: F401
    from codirector.schemas import Job, Plan, RenderManifest, RenderPlan, Storyline  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'codirector' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
