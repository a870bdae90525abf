"""Logging set-up for applications; the library itself only calls ``logging.getLogger(__name__)``."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

__all__ = ["configure_logging"]

_PACKAGE_LOGGER = "codirector"
logging.getLogger(_PACKAGE_LOGGER).addHandler(logging.NullHandler())


def configure_logging(level: str = "WARNING") -> None:
    """Send codirector's log records to stderr through rich, at `level`. Safe to call more than once."""
    logger = logging.getLogger(_PACKAGE_LOGGER)
    logger.setLevel(level)
    for handler in list(logger.handlers):
        if isinstance(handler, RichHandler):
            logger.removeHandler(handler)
    handler = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger.addHandler(handler)
