"""How the templates print digests, commits, ages and durations."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from markupsafe import Markup, escape

from setpoint.controller.converge.status import format_age
from setpoint.controller.wording import commits_named
from setpoint.store.digest import short


def commit(sha: str | None) -> str:
    return sha[:12] if sha else "-"


def pointer_commits(counts: Mapping[str, int]) -> Markup:
    """Which commits the pointers name, in ``setpoint plan --store``'s words,
    each commit in ``<code>`` (escaped: a pointer is read unverified)."""
    return Markup(commits_named(counts, lambda sha: f"<code>{escape(sha[:12])}</code>"))


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def state_class(state: str) -> str:
    """A CSS class for a state: ``FAILED (quarantined)`` -> ``st-failed-quarantined``."""
    words = "".join(c if c.isalnum() else " " for c in state.lower()).split()
    return "st-" + "-".join(words)


FILTERS: dict[str, Callable[..., Any]] = {
    "short": short,
    "commit": commit,
    "pointer_commits": pointer_commits,
    "seconds": seconds,
    "age": format_age,
    "state_class": state_class,
}
