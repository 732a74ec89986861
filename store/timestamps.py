"""Timestamps in documents: UTC, ISO 8601, microseconds, a ``Z``.

Pointers (``published_at``), reports (``updated_at``) and the Heat-agent
records all carry them; one format written, one parser read, in the layer both
the controller and the agent import.
"""

from __future__ import annotations

from datetime import UTC, datetime

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def format_timestamp(ts: float) -> str:
    """Unix time ``ts`` as ``2026-01-01T00:00:00.000000Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(value: str | None) -> float | None:
    """Unix time of an ISO 8601 timestamp (``Z`` or an offset, any precision, so the
    agent's milliseconds too); None when absent or unreadable, for a document
    written by someone else must not stop the reader."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
