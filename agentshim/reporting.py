"""Reporting: the server's report, built from the agent's state and written to the store.

The report is written when it differs from the last one written, and at least
once a heartbeat even when nothing changed, so that the controller can tell a
silent agent from an idle one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import structlog

from setpoint.agentshim import __version__
from setpoint.agentshim.state import AgentState
from setpoint.store import Report, Store, StoreError
from setpoint.store.timestamps import format_timestamp

# The report is rewritten at least this often (seconds) even when nothing
# changed, so the controller can tell a silent agent (unreachable after three
# missed beats) from an idle one. One small PUT per server per beat: 288 a day.
DEFAULT_HEARTBEAT = 300.0


def iso(t: float) -> str:
    """ISO 8601 UTC with milliseconds and a ``Z``: the agent's precision."""
    return format_timestamp(t, digits=3)


class Reporter:
    """Writes one server's report; remembers what it last wrote, and whether it could."""

    def __init__(
        self,
        server: str,
        clock: Callable[[], float],
        heartbeat: float | None,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self.server = server
        self.clock = clock
        self.heartbeat = heartbeat
        self.log = log
        # Why the last write failed; None once one succeeds.
        self.error: str | None = None
        self._published: dict[str, Any] | None = None
        self._published_at: float | None = None

    def report(self, state: AgentState) -> Report:
        return Report(
            server=self.server,
            generation=state.generation,
            manifest=state.manifest,
            updated_at=iso(self.clock()),
            deployments={
                name: replace(d.report, state=d.state, token=d.token)
                for name, d in state.deployments.items()
                if d.report is not None
            },
            error=state.error,
            agent_version=__version__,
            heartbeat=self.heartbeat,
        )

    def publish(self, store: Store, state: AgentState) -> None:
        """Write the report when it differs from the last one written."""
        report = self.report(state)
        body = report.to_dict()
        body.pop("updated_at")
        now = self.clock()
        beat_due = (
            self.heartbeat is not None
            and self._published_at is not None
            and now - self._published_at >= self.heartbeat
        )
        if body == self._published and not beat_due:
            return
        try:
            store.write_report(report)
        except StoreError as exc:
            self.error = str(exc)
            self.log.warning("report_write_failed", error=str(exc))
            return
        self._published, self.error = body, None
        self._published_at = now

    def forget_published(self) -> None:
        """Write at the next ``publish`` even if nothing changed (a new store)."""
        self._published = None
