"""One read of the fleet, shared by every page until the next one
(``dashboard.refresher`` reads it every ``refresh`` seconds).

A page (and each live update of it) would otherwise read every pointer and
report of the fleet again; browsers polling a 10,000-server store must cost the
store one read per ``refresh`` seconds, not one per browser.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from setpoint.controller.converge.status import ServerStatus, deployed_state, fleet_status
from setpoint.controller.rollout.batches import UNREACHABLE_AFTER_BEATS
from setpoint.controller.rollout.ledger import Ledger, read_ledger
from setpoint.controller.rollout.plan import Deployed
from setpoint.store.base import Store

T = TypeVar("T")


@dataclass
class Snapshot:
    """The fleet as one read found it: every server's status and the ledger."""

    statuses: list[ServerStatus]
    ledger: Ledger
    read_at: float
    by_server: dict[str, ServerStatus] = field(init=False)
    # What pages compute from this snapshot (the overview's counts, the waits),
    # kept with it: every request until the next read reuses them.
    computed: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_server = {s.server: s for s in self.statuses}

    def once(self, name: str, compute: Callable[[], T]) -> T:
        """``compute()``, computed once per snapshot under ``name``."""
        if name not in self.computed:
            self.computed[name] = compute()
        return cast(T, self.computed[name])

    @property
    def deployed(self) -> Deployed:
        """What is deployed: the newest pointer's commit and who has not
        converged on their pointers, as ``setpoint plan --store`` finds it."""
        return self.once("deployed", lambda: deployed_state(self.statuses))

    @property
    def deployed_commit(self) -> str | None:
        """The commit of the most recently published pointer (None: nothing yet)."""
        return self.deployed.commit


def read_snapshot(
    store: Store, now: float, unreachable_after: float = UNREACHABLE_AFTER_BEATS
) -> Snapshot:
    # The ledger first: a server it names is then already in the statuses read after it.
    ledger = read_ledger(store)
    statuses = fleet_status(store, now=now, unreachable_after=unreachable_after)
    return Snapshot(statuses, ledger, now)
