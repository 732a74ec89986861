"""Timestamps in documents: UTC, ISO 8601, a ``Z``.

Pointers (``published_at``), reports (``updated_at``), the Heat-agent records
and commit records all carry them; one formatter writes them (the controller
with microseconds, the agent with milliseconds, commit times in whole
seconds, as each always has), one parser reads any of them, in the layer both
the controller and the agent import.
"""

from __future__ import annotations

from datetime import UTC, datetime

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
"""What ``format_timestamp`` writes by default (``strftime`` style)."""


def format_timestamp(ts: float, digits: int = 6) -> str:
    """Unix time ``ts`` as ``2026-01-01T00:00:00.000000Z``, with ``digits`` (0 to 6)
    digits of the second's fraction, truncated (0: no fraction, no dot)."""
    if not 0 <= digits <= 6:
        raise ValueError(f"digits must be 0 to 6, not {digits}")
    when = datetime.fromtimestamp(ts, UTC)
    whole = when.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{when.microsecond:06d}"[:digits]
    return f"{whole}.{fraction}Z" if digits else f"{whole}Z"


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
