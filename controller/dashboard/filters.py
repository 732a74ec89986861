"""How the templates print digests, commits, ages and durations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from setpoint.controller.converge.status import format_age
from setpoint.store.digest import short


def commit(sha: str | None) -> str:
    return sha[:12] if sha else "-"


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def state_class(state: str) -> str:
    """A CSS class for a state: ``FAILED (quarantined)`` -> ``st-failed-quarantined``."""
    words = "".join(c if c.isalnum() else " " for c in state.lower()).split()
    return "st-" + "-".join(words)


FILTERS: dict[str, Callable[..., Any]] = {
    "short": short,
    "commit": commit,
    "seconds": seconds,
    "age": format_age,
    "state_class": state_class,
}
