"""structlog setup for the agent: key-value events on stderr, console or JSON."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

FORMATS = ("console", "json")


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    # Resolved at each call, so a replaced sys.stderr (tests, daemons) is honoured.
    return structlog.PrintLogger(sys.stderr)


def configure(fmt: str = "console", level: int = logging.INFO) -> None:
    """Route the agent's events to stderr as ``console`` lines or ``json`` objects."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r} (known: {', '.join(FORMATS)})")
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if fmt == "json":
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
