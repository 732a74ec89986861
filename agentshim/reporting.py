"""Reporting: the server's report, built from the agent's state and written to the store.

The report is written when it differs from the last one written, and at least
once a heartbeat even when nothing changed, so that the controller can tell a
silent agent from an idle one.

Two agents given the same server name would overwrite each other's report and
fight over its deployments. Each agent process makes a random ``instance`` id
at start (kept in memory only: a restart is a new instance) and writes it into
every report. Before each write after its first, it reads the report back:
another instance there means another agent writes it too. It logs
``duplicate_agent`` and says so in the report's ``conflict`` until it has seen
only itself for DUPLICATE_CLEAR_BEATS heartbeats. Both agents find out, within
a heartbeat, and each one's report names the other. An agent that may not read
its report (capability URLs: PUT only) cannot check; its ``instance`` still
lets whoever reads the reports see two instances take turns.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import structlog

from setpoint.agentshim import __version__
from setpoint.agentshim.state import AgentState
from setpoint.store import PermissionDenied, Report, Store, StoreError
from setpoint.store.timestamps import format_timestamp

# The report is rewritten at least this often (seconds) even when nothing
# changed, so the controller can tell a silent agent (unreachable after three
# missed beats) from an idle one. One small PUT per server per beat: 288 a day.
DEFAULT_HEARTBEAT = 300.0
# A conflict (another agent writing this server's report) is reported until the
# other instance has not been seen for this many heartbeats (or for that many
# DEFAULT_HEARTBEATs when the agent does not beat).
DUPLICATE_CLEAR_BEATS = 3


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
        instance: str | None = None,
    ) -> None:
        self.server = server
        self.clock = clock
        self.heartbeat = heartbeat
        self.log = log
        self.instance = instance or secrets.token_hex(8)
        # Why the last write failed; None once one succeeds.
        self.error: str | None = None
        # Another agent writing this server's report, as the report says it.
        self.conflict: str | None = None
        self._other_seen_at: float | None = None
        self._can_read_back = True
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
            instance=self.instance,
            conflict=self.conflict,
            preflight=dict(state.preflight),
            drift=dict(state.drift),
        )

    def publish(self, store: Store, state: AgentState) -> None:
        """Write the report when it differs from the last one written, or a beat is
        due (checking first, once this agent wrote one, that no other agent does)."""
        report = self.report(state)
        now = self.clock()
        beat_due = (
            self.heartbeat is not None
            and self._published_at is not None
            and now - self._published_at >= self.heartbeat
        )
        if _content(report) == self._published and not beat_due:
            return
        if self._published is not None:
            self._check_duplicate(store)
            report = replace(report, conflict=self.conflict)
        try:
            store.write_report(report)
        except StoreError as exc:
            self.error = str(exc)
            self.log.warning("report_write_failed", error=str(exc))
            return
        self._published, self.error = _content(report), None
        self._published_at = now

    def forget_published(self) -> None:
        """Write at the next ``publish`` even if nothing changed (a new store)."""
        self._published = None

    def _check_duplicate(self, store: Store) -> None:
        """Read the report back: the last one written was ours, so another
        instance in it is another agent with this server's name."""
        if not self._can_read_back:
            return
        try:
            current = store.read_report(self.server)
        except PermissionDenied:
            # Capability URLs let an agent write its report, not read it: there
            # the controller is the one that sees two instances take turns.
            self._can_read_back = False
            self.log.info("duplicate_check_unavailable", reason="the report cannot be read back")
            return
        except StoreError:
            return  # the write that follows reports the store's trouble
        now = self.clock()
        if current is None or current.instance == self.instance:
            seen = self._other_seen_at
            clear_after = DUPLICATE_CLEAR_BEATS * (self.heartbeat or DEFAULT_HEARTBEAT)
            if seen is not None and now - seen >= clear_after:
                self.log.info("duplicate_agent_gone", instance=self.instance)
                self.conflict = self._other_seen_at = None
            return
        other = current.instance or "unknown (an agent that reports no instance)"
        conflict = (
            f"another agent also reports as {self.server!r}: instance {other} wrote this"
            f" server's report over instance {self.instance}'s; give each server its own name"
        )
        if conflict != self.conflict:
            self.log.error(
                "duplicate_agent", instance=self.instance, other=current.instance, error=conflict
            )
        self.conflict, self._other_seen_at = conflict, now


def _content(report: Report) -> dict[str, Any]:
    """What a report says, its time of writing left out."""
    body = report.to_dict()
    body.pop("updated_at")
    return body
