"""Render backends by name: built-ins registered lazily by dotted path, third parties through entry points.

The registry follows fsspec's: a private dict of loaded classes behind a read-only view, built-ins known by
import path with an install hint (nothing heavy is imported until a backend is asked for), the entry-point group
`codirector.backends` for other packages, and a name clash raises instead of silently replacing a backend.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import json
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Any

from codirector.errors import BackendNotFoundError
from codirector.generator.backend import Backend

__all__ = ["ENTRY_POINT_GROUP", "get_backend_class", "known_backends", "load_backend", "register_backend", "registry"]

ENTRY_POINT_GROUP = "codirector.backends"

# name -> (dotted path, what to install when the import fails)
_BUILTINS: dict[str, tuple[str, str]] = {
    "preview": ("codirector.generator.backends.preview:PreviewBackend", "pip install codirector"),
    "dit": (
        "codirector.generator.backends.dit:DitBackend",
        'install torch for your hardware (README, "torch: CPU or CUDA"), then pip install "codirector[dit]"',
    ),
}
_registry: dict[str, type[Backend]] = {}
registry = MappingProxyType(_registry)  # the backends loaded so far, read-only


def register_backend(name: str, backend: type[Backend] | str, *, clobber: bool = False) -> None:
    """Register a backend class (or a "module:Class" path, imported on first use) under `name`.

    Raises:
        ValueError: `name` is taken by another backend and `clobber` is False.
    """
    current = _registry.get(name) or _BUILTINS.get(name, (None, ""))[0]
    if current is not None and current != backend and not clobber:
        raise ValueError(f"a backend named {name!r} is already registered ({current}); pass clobber=True to replace it")
    if isinstance(backend, str):
        _BUILTINS[name] = (backend, f"install the package that provides {backend}")
        _registry.pop(name, None)
    else:
        _registry[name] = backend
    _load_class.cache_clear()


def _entry_points() -> dict[str, Any]:
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def known_backends() -> list[str]:
    """Every backend name that can be asked for: built-ins, registered ones and entry points."""
    return sorted({*_BUILTINS, *_registry, *_entry_points()})


@functools.cache
def _load_class(name: str) -> type[Backend]:
    if name in _registry:
        return _registry[name]
    if name in _BUILTINS:
        path, hint = _BUILTINS[name]
        module_name, _, attribute = path.partition(":")
        try:
            backend = getattr(importlib.import_module(module_name), attribute)
        except ImportError as error:
            raise BackendNotFoundError(
                f"backend {name!r}", f"cannot be imported ({error})", f"To use it, {hint}."
            ) from None
    elif name in (points := _entry_points()):
        backend = points[name].load()
    else:
        close = difflib.get_close_matches(name, known_backends(), n=1)
        hint = f"Did you mean {close[0]!r}? " if close else ""
        raise BackendNotFoundError(
            f"backend {name!r}", "is not registered", f"{hint}Known backends: {', '.join(known_backends())}."
        )
    if not (isinstance(backend, type) and issubclass(backend, Backend)):
        raise BackendNotFoundError(
            f"backend {name!r}", f"{backend!r} is not a codirector Backend subclass", "Fix the registration."
        )
    _registry[name] = backend
    return backend


def get_backend_class(name: str) -> type[Backend]:
    """The backend class registered under `name`, imported on first use.

    Raises:
        BackendNotFoundError: no such backend (with a "did you mean"), or its extra is not installed.
    """
    return _load_class(name)


@functools.lru_cache(maxsize=4)
def _cached_backend(name: str, options_json: str) -> Backend:
    return get_backend_class(name)(**json.loads(options_json))


def load_backend(name: str, **options: Any) -> Backend:
    """A backend instance, built once per process for the same name and options (so a worker keeps its model
    resident across tasks: one model per GPU worker, KlingAvatar 2.0 sec. 3.1's parallel sub-clips)."""
    return _cached_backend(name, json.dumps(options, sort_keys=True, default=str))
