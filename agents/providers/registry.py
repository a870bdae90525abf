"""Turn a "provider:model" reference into a chat model, importing a provider's SDK only when it is asked for.

Built-in providers are registered by dotted path, so `import codirector.agents.providers` imports neither
`openai` nor `transformers` nor `torch`; third parties add theirs with `register_provider` or through the
entry-point group ``codirector.providers`` (each entry point loads a factory ``(model, **options) -> ChatModel``).

The registry is a private dict behind a read-only view (`known_providers`), and a name clash raises instead of
silently replacing a provider, as in fsspec's registry.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from importlib.util import find_spec
from types import MappingProxyType
from typing import Any

from codirector.errors import ConfigError, ProviderNotFoundError

from .base import OFFLINE, ChatModel, OfflineProvider, Provider

__all__ = ["ENTRY_POINT_GROUP", "ProviderSpec", "known_providers", "register_provider", "resolve_provider"]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "codirector.providers"

ProviderFactory = Callable[..., Provider]


@dataclass(frozen=True)
class ProviderSpec:
    """How to build one provider.

    Attributes:
        name: the part before the colon in "provider:model".
        target: a factory ``(model, **options) -> ChatModel``, or its dotted path ("package.module:attr" or
            "package.module.attr"), imported on first use.
        requires: import names that must be installed before the target can work (checked without importing).
        install: what to run when one of `requires` is missing.
        example: a complete reference, shown when the model part is missing.
        needs_model: whether a model part after the colon is required (False only for "offline").
    """

    name: str
    target: str | ProviderFactory
    requires: tuple[str, ...] = ()
    install: str = ""
    example: str = ""
    needs_model: bool = True


def _offline(**options: Any) -> OfflineProvider:
    """The "offline" provider's factory: there is no model to choose and nothing to configure.

    Options are ignored rather than refused: a caller that gives every expert the same options (say a base_url
    for the one expert on a server) must not fail on the experts that stay offline.
    """
    if options:
        logger.debug("offline provider: ignoring options %s", sorted(options))
    return OFFLINE


_providers: dict[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        ProviderSpec(name="offline", target=_offline, example="offline", needs_model=False),
        ProviderSpec(
            name="openai",
            target="codirector.agents.providers.openai_chat:OpenAIChatModel",
            requires=("openai",),
            install="pip install openai",
            example="openai:gpt-4o-mini",
        ),
        ProviderSpec(
            name="transformers",
            target="codirector.agents.providers.transformers_chat:TransformersChatModel.from_path",
            requires=("torch", "transformers"),
            install="pip install 'codirector[local]' (install torch for your hardware first, see the README)",
            example="transformers:/models/Qwen2.5-VL-7B-Instruct",
        ),
    )
}
_lock = threading.Lock()
_entry_points_loaded = False


def known_providers() -> Mapping[str, ProviderSpec]:
    """A read-only view of the registered providers, by name (entry-point providers included).

    Example:
        >>> sorted(known_providers())[:3]
        ['offline', 'openai', 'transformers']
    """
    _load_entry_points()
    return MappingProxyType(_providers)


def register_provider(name: str, target: str | ProviderFactory, *, clobber: bool = False, **spec: Any) -> None:
    """Register a provider under `name`.

    Args:
        name: the provider part of "provider:model"; lower case, without a colon.
        target: a factory ``(model, **options) -> ChatModel`` or its dotted path, imported on first use.
        clobber: replace an existing provider of the same name instead of raising.
        **spec: the other `ProviderSpec` fields (requires, install, example, needs_model).

    Raises:
        ValueError: the name is taken (and `clobber` is False) or is not a valid provider name.

    Example:
        >>> from codirector.agents.providers import OFFLINE
        >>> register_provider("doc-example", lambda model, **options: OFFLINE, clobber=True)
        >>> resolve_provider("doc-example:anything") is OFFLINE
        True
    """
    if not name or name != name.strip().lower() or ":" in name:
        raise ValueError(f"provider name {name!r} must be non-empty, lower case, without spaces or ':'")
    if not (callable(target) or (isinstance(target, str) and target)):
        raise ValueError(f"provider {name!r}: target must be a factory or a dotted path, got {target!r}")
    with _lock:
        if name in _providers and not clobber:
            raise ValueError(
                f"provider {name!r} is already registered (as {_providers[name].target!r}); pass clobber=True "
                "to replace it"
            )
        _providers[name] = ProviderSpec(name=name, target=target, **spec)


def resolve_provider(ref: str | ChatModel | OfflineProvider, **options: Any) -> ChatModel | OfflineProvider:
    """The provider that `ref` names; a chat model or the `OFFLINE` marker passes through unchanged.

    Args:
        ref: "offline", "openai:MODEL", "transformers:PATH" (a local folder or a .gguf file), any registered
            "provider:model", or an object that already is a provider.
        **options: keyword arguments for the provider's constructor, e.g. ``base_url``, ``api_key``,
            ``timeout_s``, ``max_retries``, ``structured_output`` for openai; ``device``, ``dtype``,
            ``max_new_tokens`` for transformers.

    Returns:
        A `ChatModel`, or `OFFLINE`. Building it imports the provider's SDK but contacts no server and loads no
        weights: that happens on the first `complete` call.

    Raises:
        ProviderNotFoundError: unknown provider (with the closest known name), missing model part, missing SDK
            package (with the install command), or a model path that does not exist.
        ConfigError: an option the provider does not take.

    Example:
        >>> resolve_provider("offline")
        OfflineProvider(name='offline')
        >>> model = resolve_provider("openai:llama", base_url="http://127.0.0.1:8080/v1")
        >>> model.name
        'openai:llama'
    """
    if isinstance(ref, OfflineProvider | ChatModel):
        if options:
            raise ConfigError(
                f"options {sorted(options)}",
                f"given with a provider object ({ref.name!r}), which is already built",
                "Pass options only with a 'provider:model' string, or configure the object itself.",
            )
        return ref
    if not isinstance(ref, str):
        raise TypeError(f"expected a 'provider:model' string or a ChatModel, got {type(ref).__name__}")

    name, sep, model = ref.strip().partition(":")
    name = name.strip().lower()
    model = model.strip()
    spec = _lookup(name, ref)
    if spec.needs_model and not model:
        raise ProviderNotFoundError(
            ref,
            f"no model given for provider {name!r}",
            f'Write "{name}:MODEL", for example "{spec.example}".',
        )
    if not spec.needs_model and sep:
        raise ProviderNotFoundError(ref, f"provider {name!r} takes no model", f'Write just "{name}".')
    missing = [module for module in spec.requires if find_spec(module) is None]
    if missing:
        raise ProviderNotFoundError(
            ref,
            f"provider {name!r} needs {', '.join(missing)}, which is not installed",
            f"Run `{spec.install}`.",
        )
    factory = _load_target(spec)
    _check_options(factory, spec, model, options)
    logger.debug("resolving %r with options %s", ref, sorted(options))
    return factory(model, **options) if spec.needs_model else factory(**options)


def _lookup(name: str, ref: str) -> ProviderSpec:
    """The spec registered as `name`, else a ProviderNotFoundError that suggests the closest known name."""
    if name not in _providers:
        _load_entry_points()
    spec = _providers.get(name)
    if spec is not None:
        return spec
    known = sorted(_providers)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        fix = f"Did you mean {close[0]!r}? Known providers: {', '.join(known)}."
    elif ":" not in ref:
        # A bare model name such as "gpt-4o" is the most common slip: show the full form.
        fix = f'Write "provider:model", for example "openai:{ref.strip()}"; known providers: {", ".join(known)}.'
    else:
        fix = f"Use one of: {', '.join(known)}, or register your own with register_provider()."
    raise ProviderNotFoundError(ref, f"unknown provider {name!r}", fix)


def _load_target(spec: ProviderSpec) -> ProviderFactory:
    """Import a spec's dotted path ("module:attr.attr" or "module.attr") and return the factory it names."""
    if callable(spec.target):
        return spec.target
    module_name, sep, qualname = spec.target.partition(":")
    if not sep:
        module_name, _, qualname = spec.target.rpartition(".")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as error:
        # A provider's own module imports its SDK lazily, so an ImportError here is a missing dependency of the
        # module itself (or a typo in a third-party registration): name it.
        raise ProviderNotFoundError(
            spec.name,
            f"cannot import {module_name!r} ({error})",
            f"Run `{spec.install}`." if spec.install else "Check the provider's registration and its dependencies.",
        ) from error
    for attribute in qualname.split("."):
        obj = getattr(obj, attribute)
    return obj


def _check_options(factory: ProviderFactory, spec: ProviderSpec, model: str, options: dict[str, Any]) -> None:
    """Refuse options the factory does not take, as a user error that lists the ones it does."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # builtins and some C callables have no signature: let the call decide
        return
    try:
        if spec.needs_model:
            signature.bind(model, **options)
        else:
            signature.bind(**options)
    except TypeError as error:
        accepted = [
            parameter.name
            for parameter in signature.parameters.values()
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY
        ]
        raise ConfigError(
            f"options for provider {spec.name!r}",
            str(error),
            f"Pass only these options: {', '.join(accepted) or 'none'}.",
        ) from error


def _load_entry_points() -> None:
    """Register third-party providers from the ``codirector.providers`` entry-point group, once.

    Entry points are recorded by their dotted path (``ep.value``), so nothing is imported until one is used; a
    name a built-in already has is skipped with a warning rather than replacing the built-in.
    """
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    with _lock:
        if _entry_points_loaded:
            return
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            if entry_point.name in _providers:
                logger.warning(
                    "entry point %r for provider %r ignored: the name is taken", entry_point.value, entry_point.name
                )
                continue
            _providers[entry_point.name] = ProviderSpec(name=entry_point.name, target=entry_point.value)
        _entry_points_loaded = True
