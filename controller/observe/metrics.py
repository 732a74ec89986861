"""``/metrics``: the fleet, the passes and the store in Prometheus' text format.

``Metrics`` is what one process exposes. The fleet part comes from the last
pass when the process runs passes (``setpoint watch``: counted from what the
pass read, no extra request), else, for a process that runs none (a
dashboard), from the store, read at each scrape. A daemon that runs no pass
(a standby replica, or before its first) exposes no fleet: the leader does,
and a standby must not read every server's documents at each scrape. The
pass and store-request counters are this process's own, since it started, as
Prometheus counters are.

``exposition(store, ...)`` is the one call a web server needs: the body and
its content type.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from setpoint.controller.converge.reconcile import PassOutcome
from setpoint.controller.observe.snapshot import (
    AGENT_STATES,
    SERVER_STATES,
    FleetSnapshot,
    pass_snapshot,
    store_snapshot,
)
from setpoint.controller.rollout.batches import UNREACHABLE_AFTER_BEATS
from setpoint.store.base import Store
from setpoint.store.documents import DRIFT_STATUSES, PREFLIGHT_STATUSES
from setpoint.store.lease import Lease

# ``*_created`` series (when each counter was made) double the output and tell
# nothing a scraper needs: setpoint's processes leave them out.
disable_created_metrics()  # type: ignore[no-untyped-call]

# A pass of a small fleet takes milliseconds; one of 10,000 servers on S3, a minute.
PASS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# The ``result`` label of ``setpoint_passes_total``.
PASS_RESULTS = ("ok", "failed", "refused", "standby", "idle")


class Metrics:
    """What one process exposes; ``record_pass`` after each pass of a daemon."""

    def __init__(
        self,
        store: Store,
        lease: Lease | None = None,
        clock: Callable[[], float] = time.time,
        unreachable_after: float = UNREACHABLE_AFTER_BEATS,
        read_store: bool = True,
    ) -> None:
        self.store = store
        # Without a pass to count from: read the store (True) or expose no fleet.
        self.read_store = read_store
        self.lease = lease
        self.clock = clock
        self.unreachable_after = unreachable_after
        self.registry = CollectorRegistry(auto_describe=True)
        self.passes = Counter(
            "setpoint_passes",
            "Reconcile passes this process ran, by result (ok; failed: the store failed; "
            "refused: untrusted pointers; standby: another replica leads; idle: nothing "
            "to deploy yet).",
            ["result"],
            registry=self.registry,
        )
        for result in PASS_RESULTS:
            self.passes.labels(result)
        self.pass_duration = Histogram(
            "setpoint_pass_duration_seconds",
            "How long each reconcile pass of this process took.",
            buckets=PASS_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_FleetCollector(self))
        self._outcome: PassOutcome | None = None
        self._latest: FleetSnapshot | None = None
        self._lock = threading.Lock()

    def record_pass(self, seconds: float, result: str, outcome: PassOutcome | None) -> None:
        """One pass ended: count it, and keep the fleet it saw for the next scrapes."""
        self.passes.labels(result).inc()
        if result not in ("standby", "idle"):
            self.pass_duration.observe(seconds)
        if outcome is not None:
            self.see(outcome)
        elif result == "standby":
            with self._lock:  # what this replica saw while it led is no longer news
                self._outcome = self._latest = None

    def see(self, outcome: PassOutcome) -> None:
        """Keep ``outcome``'s pass for the next scrapes. It is counted at the first
        scrape after it, not here: a daemon passes every second, Prometheus
        scrapes every 15 or 30, and the pass loop never pays for it."""
        with self._lock:
            self._outcome, self._latest = outcome, None

    def show(self, fleet: FleetSnapshot) -> None:
        """Expose ``fleet``, counted by the caller from what it already read (a
        dashboard's shared read of the store), at the next scrapes."""
        with self._lock:
            self._outcome, self._latest = None, fleet

    def fleet(self) -> FleetSnapshot | None:
        """The last pass's fleet, else the store's as it is now (None: not read)."""
        with self._lock:
            if self._outcome is not None and self._latest is None:
                self._latest = pass_snapshot(self._outcome, self.clock(), self.unreachable_after)
            latest = self._latest
        if latest is not None or not self.read_store:
            return latest
        return store_snapshot(self.store, self.clock(), self.unreachable_after)

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text format body, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def serve(self, port: int, host: str = "127.0.0.1") -> Any:
        """Serve ``/metrics`` on ``host:port`` from a background thread (prometheus_client's
        HTTP server); returns the server, whose ``shutdown()`` stops it."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server


def exposition(
    store: Store,
    outcome: PassOutcome | None = None,
    lease: Lease | None = None,
    now: float | None = None,
) -> tuple[bytes, str]:
    """The fleet's metrics from ``store`` (or from ``outcome``, one pass's data):
    the body in Prometheus' text format and its content type."""
    metrics = Metrics(store, lease, clock=time.time if now is None else (lambda: now))
    if outcome is not None:
        metrics.see(outcome)
    return metrics.exposition()


class _FleetCollector(Collector):
    """Gauges of the fleet and counters of the store, computed at each scrape."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Any]:
        return []  # collected at scrape time; nothing to check at registration

    def collect(self) -> Iterator[Any]:
        snap = self.metrics.fleet()
        if snap is not None:
            yield from _fleet_families(snap)
        yield from _store_families(self.metrics.store)
        lease = self.metrics.lease
        if lease is not None:
            leader = GaugeMetricFamily(
                "setpoint_leader",
                "1 while this replica holds the store's lease and runs the passes, else 0.",
                labels=["replica"],
            )
            leader.add_metric([lease.holder], 1.0 if lease.held else 0.0)
            yield leader


def _fleet_families(snap: FleetSnapshot) -> Iterator[Any]:
    servers = GaugeMetricFamily(
        "setpoint_servers",
        "Servers per deployment by the state of that deployment on them (as setpoint status).",
        labels=["deployment", "state"],
    )
    for deployment, counts in sorted(snap.servers.items()):
        for state in SERVER_STATES:
            servers.add_metric([deployment, state], counts.get(state, 0))
    yield servers
    agents = GaugeMetricFamily(
        "setpoint_agents", "Agents by state (unreachable: no heartbeat).", labels=["state"]
    )
    for state in AGENT_STATES:
        agents.add_metric([state], snap.agents.get(state, 0))
    yield agents
    failed = GaugeMetricFamily(
        "setpoint_failed_digests",
        "Distinct config digests reported FAILED (and not quarantined), per deployment.",
        labels=["deployment"],
    )
    quarantined = GaugeMetricFamily(
        "setpoint_quarantined_digests",
        "Distinct config digests quarantined (not published again), per deployment.",
        labels=["deployment"],
    )
    for deployment in sorted({*snap.servers, *snap.quarantined_digests}):
        failed.add_metric([deployment], len(snap.failed_digests.get(deployment, ())))
        quarantined.add_metric([deployment], len(snap.quarantined_digests.get(deployment, ())))
    yield failed
    yield quarantined
    yield from _rollout_families(snap)
    yield from _check_families(snap)
    yield GaugeMetricFamily(
        "setpoint_invalid_servers",
        "Servers whose pointer, report or manifest cannot be read.",
        value=snap.invalid,
    )


def _check_families(snap: FleetSnapshot) -> Iterator[Any]:
    for name, text, by_deployment, states in (
        (
            "setpoint_drift",
            "Servers per deployment by the drift their agent reports for the digest given "
            "(clean, drifted, unknown; agents run with --drift-interval).",
            snap.drift,
            DRIFT_STATUSES,
        ),
        (
            "setpoint_preflight",
            "Servers per deployment by their answer to the preflight entry they are asked "
            "to check (PASSED, FAILED).",
            snap.preflight,
            PREFLIGHT_STATUSES,
        ),
    ):
        family = GaugeMetricFamily(name, text, labels=["deployment", "state"])
        for deployment, counts in sorted(by_deployment.items()):
            for state in states:
                family.add_metric([deployment, state], counts.get(state, 0))
        yield family


def _rollout_families(snap: FleetSnapshot) -> Iterator[Any]:
    rollouts = GaugeMetricFamily(
        "setpoint_rollouts",
        "Rollouts in flight by outcome (rolling, halted, rolled_back).",
        labels=["outcome"],
    )
    by_outcome = {"rolling": 0, "halted": 0, "rolled_back": 0}
    for rollout in snap.rollouts.values():
        by_outcome[rollout.outcome] = by_outcome.get(rollout.outcome, 0) + 1
    for outcome, n in by_outcome.items():
        rollouts.add_metric([outcome], n)
    yield rollouts
    batch = GaugeMetricFamily(
        "setpoint_rollout_batch",
        "The batch a rollout in flight is at (batch N of setpoint_rollout_batches).",
        labels=["deployment"],
    )
    batches = GaugeMetricFamily(
        "setpoint_rollout_batches",
        "How many batches a rollout in flight takes in all, as it stands.",
        labels=["deployment"],
    )
    for name, rollout in sorted(snap.rollouts.items()):
        batch.add_metric([name], int(rollout.progress.get("batch", rollout.batches)))
        batches.add_metric([name], int(rollout.progress.get("batches", rollout.batches)))
    yield batch
    yield batches


def _store_families(store: Store) -> Iterator[Any]:
    requests = CounterMetricFamily(
        "setpoint_store_requests",
        "Store operations of this process by kind (get, put, list, ...) and outcome "
        "(ok, not_modified, not_found, conflict, error).",
        labels=["kind", "outcome"],
    )
    for (kind, outcome), n in store.stats.outcome_counts().items():
        requests.add_metric([kind, outcome], n)
    yield requests
    wire = CounterMetricFamily(
        "setpoint_store_http_requests",
        "HTTP requests that reached the store (S3, Swift), by method; retries counted apart.",
        labels=["method"],
    )
    retries = 0
    for method, n in store.stats.wire_counts().items():
        if method == "retries":
            retries = n
        else:
            wire.add_metric([method], n)
    yield wire
    yield CounterMetricFamily(
        "setpoint_store_retries",
        "Store requests sent again after a transient error.",
        value=retries,
    )
