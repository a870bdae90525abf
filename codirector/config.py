"""The one typed configuration object.

Precedence, highest first: an explicit argument (``Config(log_level="DEBUG")`` or a CLI option), then a
``CODIRECTOR_*`` environment variable (``CODIRECTOR_LOG_LEVEL=DEBUG``), then the default below. Nothing is
read at import time: a `Config` is built when something asks for one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from codirector.errors import ConfigError

__all__ = ["Config", "LogLevel", "ProgressMode", "default_home", "load_config"]

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
ProgressMode = Literal["auto", "always", "never"]


def default_home() -> Path:
    """Where codirector keeps caches and assembled models: ``$XDG_CACHE_HOME/codirector``."""
    cache_root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_root) / "codirector"


class Config(BaseSettings):
    """Settings shared by the CLI and the Python API.

    Example:
        >>> from codirector.config import Config
        >>> Config(log_level="DEBUG").log_level
        'DEBUG'
    """

    model_config = SettingsConfigDict(env_prefix="CODIRECTOR_", extra="forbid", validate_default=True)

    home: Path = Field(
        default_factory=default_home,
        description="Cache folder: assembled model files and reusable intermediate artifacts.",
    )
    log_level: LogLevel = Field("WARNING", description="Level of codirector's own log messages.")
    progress: ProgressMode = Field(
        "auto", description="Progress bars: 'auto' shows them only when stderr is a terminal."
    )
    ffmpeg: Path | None = Field(
        None,
        description="An ffmpeg binary to use; default: the one imageio-ffmpeg ships, else ffmpeg on PATH.",
    )
    whisper_model: Path | None = Field(
        None,
        description="A CTranslate2 Whisper model folder for the offline audio expert; default: a packaged model.",
    )


def load_config(**overrides: Any) -> Config:
    """Build a `Config`, turning invalid values into a `ConfigError` that names the setting.

    Overrides whose value is None are ignored, so CLI options that were not given fall through to the
    environment and the defaults.
    """
    explicit = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Config(**explicit)
    except ValidationError as error:
        first = error.errors()[0]
        name = ".".join(str(part) for part in first["loc"]) or "config"
        source = name if name in explicit else f"CODIRECTOR_{name.upper()}"
        raise ConfigError(source, first["msg"], "Set it to an allowed value (see `codirector --help`).") from None
