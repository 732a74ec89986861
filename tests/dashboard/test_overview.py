"""The overview's counts and the shared snapshot, on a fleet a real reconciler
and simulated agents wrote to a local store."""

from __future__ import annotations

import time
from collections import Counter

from setpoint.controller.dashboard.overview import (
    CONVERGED,
    QUARANTINED,
    UNREACHABLE,
    WAITING,
    overview,
)
from setpoint.controller.dashboard.refresher import SnapshotRefresher
from setpoint.controller.dashboard.snapshot import read_snapshot
from setpoint.store.local import LocalStore
from tests.dashboard.dashfleet import FleetOnDisk


def test_each_deployment_counts_its_servers_by_state(fleet_on_disk: FleetOnDisk) -> None:
    store = LocalStore(fleet_on_disk.store)
    snapshot = read_snapshot(store, now=time.time())
    view = overview(snapshot)
    assert overview(snapshot) is view  # counted once per snapshot, whatever the requests
    rows = {row.name: row for row in view.rows}
    assert rows["shop/web"].counts == Counter({WAITING: 8, CONVERGED: 4})
    assert rows["shop/web"].waiting_on == Counter({"pause_time: next batch at +3600s": 8})
    assert rows["shop/db"].counts == Counter({QUARANTINED: 1, WAITING: 2})
    assert rows["shop/cache"].counts == Counter({UNREACHABLE: 1})
    assert rows["shop/web"].commits == Counter({fleet_on_disk.second: 4, fleet_on_disk.first: 8})
    assert view.servers_in(frozenset({QUARANTINED, UNREACHABLE})) == [
        ("cache-01", UNREACHABLE),
        ("db-02", QUARANTINED),
    ]
    web = rows["shop/web"].rollout
    assert web is not None
    assert (web.progress["batch"], web.progress["batches"]) == (1, 3)
    assert view.deployed == fleet_on_disk.second
    assert view.commits == Counter({fleet_on_disk.first: 12, fleet_on_disk.second: 4})


def test_the_next_read_is_due_refresh_seconds_after_the_last(
    fleet_on_disk: FleetOnDisk,
) -> None:
    now = [1000.0]
    refresher = SnapshotRefresher(
        LocalStore(fleet_on_disk.store), refresh=2.0, clock=lambda: now[0]
    )
    assert refresher.read() == 1002.0


def test_a_fleet_slow_to_read_is_read_at_most_a_third_of_the_time(
    fleet_on_disk: FleetOnDisk,
) -> None:
    now = [1000.0]
    store = LocalStore(fleet_on_disk.store)
    slow = store.list_servers

    def list_servers() -> list[str]:
        now[0] += 5.0  # the read takes 5 s
        return slow()

    store.list_servers = list_servers  # type: ignore[method-assign]
    refresher = SnapshotRefresher(store, refresh=2.0, clock=lambda: now[0])
    assert refresher.read() == 1005.0 + 10.0
