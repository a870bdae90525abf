"""The spatio-temporal cascade (KlingAvatar 2.0 sec. 3.1): stages, backends, executors and media IO.

It reads a `codirector.schemas.RenderPlan` and writes a video with a `codirector.schemas.RenderManifest`. It never
imports the director. torch is imported only inside the backends that need it. Names load lazily (PEP 562).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_LAZY = {
    "Backend": "codirector.generator.backend",
    "Capability": "codirector.generator.backend",
    "CASCADE": "codirector.generator.cascade",
    "RenderResult": "codirector.generator.cascade",
    "render_plan": "codirector.generator.cascade",
    "get_backend_class": "codirector.generator.registry",
    "known_backends": "codirector.generator.registry",
    "load_backend": "codirector.generator.registry",
    "register_backend": "codirector.generator.registry",
    "make_executor": "codirector.generator.executors",
}

__all__ = list(_LAZY)

if TYPE_CHECKING:
    from codirector.generator.backend import Backend, Capability  # noqa: F401
    from codirector.generator.cascade import CASCADE, RenderResult, render_plan  # noqa: F401
    from codirector.generator.executors import make_executor  # noqa: F401
    from codirector.generator.registry import (  # noqa: F401
        get_backend_class,
        known_backends,
        load_backend,
        register_backend,
    )


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'codirector.generator' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
