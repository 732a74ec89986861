"""What the parts of one agent share: its server, state, store, clock and this cycle.

The pointer follower, the converger, the hook runs and the ledger each hold the
same ``AgentContext``, so that a move to another store, or a new cycle, is seen
by all of them at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from setpoint.agentshim.cycle import CycleResult
from setpoint.agentshim.reporting import Reporter
from setpoint.agentshim.state import AgentState, Layout, save_state
from setpoint.store import Store


@dataclass
class AgentContext:
    """One agent's shared state; ``store`` changes when the fleet moves, ``result``
    with every cycle, ``stop`` when the loop is given its own event."""

    server: str
    layout: Layout
    state: AgentState
    store: Store
    clock: Callable[[], float]
    stop: threading.Event
    reporter: Reporter
    log: structlog.typing.FilteringBoundLogger
    result: CycleResult

    def save(self) -> None:
        """Record the state on disk."""
        save_state(self.layout, self.state)

    def commit(self) -> None:
        """Record the state on disk, then tell the store."""
        self.save()
        self.reporter.publish(self.store, self.state)
