"""Configuration precedence: explicit argument > CODIRECTOR_* environment variable > default."""

from __future__ import annotations

from pathlib import Path

import pytest

from codirector.config import Config, default_home, load_config
from codirector.errors import ConfigError


def test_default_when_nothing_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CODIRECTOR_LOG_LEVEL", raising=False)
    assert load_config().log_level == "WARNING"


def test_environment_beats_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODIRECTOR_LOG_LEVEL", "INFO")
    monkeypatch.setenv("CODIRECTOR_WHISPER_MODEL", "/models/whisper")
    config = load_config()
    assert config.log_level == "INFO"
    assert config.whisper_model == Path("/models/whisper")


def test_explicit_beats_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODIRECTOR_LOG_LEVEL", "INFO")
    assert load_config(log_level="DEBUG").log_level == "DEBUG"
    assert Config(log_level="ERROR").log_level == "ERROR"


def test_unset_explicit_values_fall_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODIRECTOR_PROGRESS", "never")
    assert load_config(progress=None).progress == "never"


def test_home_follows_xdg_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CODIRECTOR_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_home() == tmp_path / "codirector"
    assert load_config().home == tmp_path / "codirector"


def test_invalid_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODIRECTOR_PROGRESS", "sometimes")
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert caught.value.source == "CODIRECTOR_PROGRESS"


def test_invalid_explicit_value_names_the_argument() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(log_level="LOUD")
    assert caught.value.source == "log_level"


def test_unknown_setting_is_rejected() -> None:
    with pytest.raises(ConfigError):
        load_config(colour="blue")


def test_reading_config_has_no_import_side_effects() -> None:
    import subprocess
    import sys

    code = "import codirector, codirector.config, sys; print('codirector.api' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
