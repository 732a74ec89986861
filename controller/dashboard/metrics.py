"""``/metrics`` of the dashboard: the fleet counted from the snapshot its pages
share, so that a scrape costs the store no request of its own.

The numbers are those ``setpoint watch --metrics-port`` exposes
(``observe.metrics``), counted from ``fleet_status`` as ``setpoint status``
counts them (``observe.snapshot.status_snapshot``).
"""

from __future__ import annotations

from setpoint.controller.dashboard.app import MetricsSource
from setpoint.controller.dashboard.snapshot import Snapshot
from setpoint.controller.observe.metrics import Metrics
from setpoint.controller.observe.snapshot import status_snapshot
from setpoint.controller.rollout.batches import UNREACHABLE_AFTER_BEATS
from setpoint.store.base import Store


def fleet_metrics(
    store: Store, unreachable_after: float = UNREACHABLE_AFTER_BEATS
) -> MetricsSource:
    """What ``create_app(metrics=...)`` mounts: the fleet of each snapshot (counted
    once per snapshot), and this process's requests to ``store``."""
    metrics = Metrics(store, unreachable_after=unreachable_after, read_store=False)

    def scrape(snapshot: Snapshot) -> tuple[bytes, str]:
        fleet = snapshot.once(
            "metrics", lambda: status_snapshot(snapshot.statuses, snapshot.ledger)
        )
        metrics.show(fleet)
        return metrics.exposition()

    return scrape
