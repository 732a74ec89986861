"""When each applied config was last checked for drift, kept in the state dir.

``drift-checks.json`` holds, per deployment, the digest and the time it was
last checked (or applied, before its first check). With it a restarted agent
checks when a check falls due, instead of one full interval after it started,
and ``setpoint-agent --once`` run from a timer checks at all (each run is a
new process). It is written atomically, and only when a record changes (a
digest applied, a check run, a deployment gone): an idle cycle writes nothing.

It is apart from ``state.json`` because it is only a schedule: a damaged or
missing file costs at most one interval (each digest counts as applied now),
so it is started over with a warning, never an error that stops the agent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import structlog

from setpoint.agentshim.state import Layout
from setpoint.store.atomic_files import write_atomic

log = structlog.get_logger("setpoint.agent")

VERSION = 1


@dataclass(frozen=True)
class Checked:
    """A deployment's digest and when it was last checked (or applied)."""

    config: str
    at: float


def load_checks(layout: Layout) -> dict[str, Checked]:
    """The records on disk; none when there are none yet or they cannot be read."""
    path = layout.drift_checks
    try:
        doc: Any = json.loads(path.read_bytes())
        if not isinstance(doc, dict) or doc.get("version") != VERSION:
            raise ValueError(f"not a version {VERSION} document")
        return {
            str(name): Checked(str(record["config"]), float(record["at"]))
            for name, record in doc["deployments"].items()
        }
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("drift_schedule_unreadable", path=str(path), error=str(exc))
        return {}


def save_checks(layout: Layout, checks: dict[str, Checked]) -> None:
    doc = {
        "version": VERSION,
        "deployments": {
            name: {"config": c.config, "at": c.at} for name, c in sorted(checks.items())
        },
    }
    try:
        write_atomic(layout.drift_checks, json.dumps(doc, sort_keys=True).encode())
    except OSError as exc:
        # The next change writes it again; until then a restart checks later, no more.
        log.warning("drift_schedule_unwritable", path=str(layout.drift_checks), error=str(exc))
