"""The backend registry: lazy built-ins, entry points, clashes, and errors that say what to do."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import EntryPoint

import pytest

from codirector.errors import BackendCapabilityError, BackendNotFoundError, ConfigError
from codirector.generator import registry
from codirector.generator.backend import Backend, Capability
from codirector.generator.registry import get_backend_class, known_backends, load_backend, register_backend
from tests.backend_fakes import CrossfadeBackend


class _Unlisted(Backend):
    name = "unlisted-test"


def test_builtins_are_known_without_being_imported() -> None:
    code = (
        "import sys; from codirector.generator import known_backends; names = known_backends(); "
        "print(sorted(names), 'codirector.generator.backends.preview' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "['dit', 'preview'] False False"


def test_preview_loads_lazily_by_dotted_path() -> None:
    backend = get_backend_class("preview")
    assert backend.name == "preview"
    assert set(backend.capabilities) == set(Capability)


def test_unknown_name_says_did_you_mean() -> None:
    with pytest.raises(BackendNotFoundError, match="Did you mean 'preview'"):
        get_backend_class("preveiw")


def test_registering_a_taken_name_raises_unless_clobbered() -> None:
    register_backend("crossfade-test", CrossfadeBackend)
    register_backend("crossfade-test", CrossfadeBackend)  # the same class again is fine
    with pytest.raises(ValueError, match="already registered"):
        register_backend("crossfade-test", _Unlisted)
    with pytest.raises(ValueError, match="already registered"):
        register_backend("preview", _Unlisted)
    register_backend("crossfade-test", _Unlisted, clobber=True)
    assert get_backend_class("crossfade-test") is _Unlisted
    register_backend("crossfade-test", CrossfadeBackend, clobber=True)


def test_a_dotted_path_that_does_not_import_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    register_backend("broken-test", "codirector.generator.backends.nonexistent:Nothing")
    with pytest.raises(BackendNotFoundError, match="cannot be imported"):
        get_backend_class("broken-test")


def test_entry_points_plug_in_third_party_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    point = EntryPoint(
        name="thirdparty-test", value="tests.backend_fakes:CrossfadeBackend", group="codirector.backends"
    )
    monkeypatch.setattr(registry, "entry_points", lambda group: [point] if group == "codirector.backends" else [])
    assert "thirdparty-test" in known_backends()
    assert get_backend_class("thirdparty-test") is CrossfadeBackend


def test_an_entry_point_that_is_not_a_backend_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    point = EntryPoint(name="notabackend-test", value="pathlib:Path", group="codirector.backends")
    monkeypatch.setattr(registry, "entry_points", lambda group: [point])
    with pytest.raises(BackendNotFoundError, match="not a codirector Backend"):
        get_backend_class("notabackend-test")


def test_load_backend_builds_one_instance_per_process_and_options() -> None:
    register_backend("crossfade-test", CrossfadeBackend, clobber=True)
    assert load_backend("crossfade-test") is load_backend("crossfade-test")


def test_unknown_options_and_missing_capabilities_are_clear() -> None:
    with pytest.raises(ConfigError, match="takes no option"):
        _Unlisted(colour="blue")
    with pytest.raises(BackendCapabilityError, match=r"'unlisted-test' cannot do 'first_last_frame'.*'subclips'"):
        _Unlisted().first_last_frame(None)  # type: ignore[arg-type]
