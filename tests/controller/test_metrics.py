"""``/metrics``: parsed with prometheus_client's own parser, from a real store
with a halted rollout, a quarantine and a silent agent, and from the daemon."""

from __future__ import annotations

import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from setpoint.controller.converge.reconcile import PassOutcome
from setpoint.controller.gitops.commitgate import CommitGate
from setpoint.controller.gitops.source import LocalSource
from setpoint.controller.gitops.watch import Watcher
from setpoint.controller.observe.metrics import Metrics, exposition
from setpoint.store.lease import Lease
from setpoint.store.local import LocalStore
from tests.controller.fleet import Fleet, component, inventory

SERVERS = [f"app-{i}" for i in range(1, 7)]


def stack(version: str) -> str:
    return textwrap.dedent(
        f"""\
        kind: Stack
        deployments:
          app:
            component: app
            servers: {{group: apps}}
            input_values:
              version: "{version}"
            update_policy: {{max_batch_size: 2}}
        """
    )


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(body: bytes) -> Samples:
    """Every sample as (name, sorted labels) -> value, through prometheus_client's parser."""
    out: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, tuple(sorted(labels.items()))]


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    made = Fleet(
        tmp_path,
        {
            "inventory.yaml": inventory(SERVERS, {"apps": SERVERS}),
            "components/app/component.yaml": component(),
            "stacks/s.yaml": stack("1"),
        },
        LocalStore(tmp_path / "store"),
    )
    yield made
    made.close()


def halted(fleet: Fleet) -> PassOutcome:
    """Version 1 everywhere, then version 2 halted: batch 2 fails on app-3 and app-4."""
    for _ in range(3):
        fleet.step()
    for server in ("app-3", "app-4"):
        fleet.agent(server).fail_versions = {"2"}
    fleet.commit({"stacks/s.yaml": stack("2")})
    for _ in range(6):
        outcome = fleet.step()
    assert "rollout halted" in outcome.failed[0]
    return outcome


def test_the_store_metrics_show_a_halted_rollout_and_its_quarantine(fleet: Fleet) -> None:
    halted(fleet)
    body, content_type = exposition(fleet.store, now=fleet.now)
    assert content_type.startswith("text/plain; version=")
    got = parse(body)
    states = ("complete", "in_progress", "pending", "failed", "quarantined", "deleting")
    assert {s: value(got, "setpoint_servers", deployment="s/app", state=s) for s in states} == {
        "complete": 4,  # batch 1 on version 2, and the two never reached still on version 1
        "quarantined": 2,  # batch 2 failed: version 2 is held back there
        "pending": 0,
        "in_progress": 0,
        "failed": 0,
        "deleting": 0,
    }
    assert value(got, "setpoint_quarantined_digests", deployment="s/app") == 1
    assert value(got, "setpoint_failed_digests", deployment="s/app") == 0
    assert value(got, "setpoint_rollouts", outcome="halted") == 1
    assert value(got, "setpoint_rollouts", outcome="rolling") == 0
    assert value(got, "setpoint_rollout_batch", deployment="s/app") == 2
    assert value(got, "setpoint_agents", state="current") == 6
    assert value(got, "setpoint_invalid_servers") == 0
    # This exposition read the store: its requests are counted by kind and outcome.
    assert value(got, "setpoint_store_requests_total", kind="list", outcome="ok") >= 1
    assert value(got, "setpoint_store_requests_total", kind="get", outcome="ok") >= 6
    assert ("setpoint_leader", ()) not in got  # no replicas, no leader


def test_one_pass_gives_the_same_fleet_as_the_store(fleet: Fleet) -> None:
    outcome = halted(fleet)
    outcome = fleet.run_pass()  # the reports the last agents' cycle wrote
    from_pass = parse(exposition(fleet.store, outcome, now=fleet.now)[0])
    from_store = parse(exposition(fleet.store, now=fleet.now)[0])
    fleet_metrics = ("setpoint_servers", "setpoint_agents", "setpoint_rollout", "setpoint_quar")
    assert {k: v for k, v in from_pass.items() if k[0].startswith(fleet_metrics)} == {
        k: v for k, v in from_store.items() if k[0].startswith(fleet_metrics)
    }


def test_a_failed_digest_not_yet_quarantined_and_an_unreachable_agent(fleet: Fleet) -> None:
    for server in SERVERS:
        fleet.agent(server).heartbeat = 10.0
    for _ in range(3):
        fleet.step()
    fleet.agent("app-6").silent = True
    fleet.agent("app-1").fail_versions = {"2"}
    fleet.commit({"stacks/s.yaml": stack("2")})
    fleet.run_pass()  # batch 1 (app-1, app-2) given version 2
    fleet.now += 60
    fleet.agents_cycle()  # app-1 reports it FAILED; app-6 says nothing
    got = parse(exposition(fleet.store, now=fleet.now)[0])  # before a pass quarantines it
    assert value(got, "setpoint_servers", deployment="s/app", state="failed") == 1
    assert value(got, "setpoint_failed_digests", deployment="s/app") == 1
    assert value(got, "setpoint_agents", state="unreachable") == 1
    assert value(got, "setpoint_rollouts", outcome="rolling") == 1


def test_the_leader_gauge_names_the_replica(fleet: Fleet) -> None:
    lease = Lease(fleet.store, "ctl-a", ttl=30, clock=fleet.clock)
    assert lease.try_acquire()
    other = Lease(fleet.store, "ctl-b", ttl=30, clock=fleet.clock)
    assert not other.try_acquire()
    leading = parse(exposition(fleet.store, lease=lease)[0])
    standing_by = parse(exposition(fleet.store, lease=other)[0])
    assert value(leading, "setpoint_leader", replica="ctl-a") == 1
    assert value(standing_by, "setpoint_leader", replica="ctl-b") == 0


def test_the_daemon_serves_its_passes_on_http(fleet: Fleet) -> None:
    metrics = Metrics(fleet.store, clock=fleet.clock)
    server = metrics.serve(0)
    try:
        watcher = Watcher(
            LocalSource(str(fleet.repo_path), "HEAD"),
            fleet.store,
            CommitGate(str(fleet.repo_path)),
            clock=fleet.clock,
            metrics=metrics,
        )
        for _ in range(3):
            watcher.step()
            fleet.agents_cycle()
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            assert response.headers["Content-Type"].startswith("text/plain")
            got = parse(response.read())
    finally:
        server.shutdown()
        server.server_close()
    assert value(got, "setpoint_passes_total", result="ok") == 3
    assert value(got, "setpoint_passes_total", result="failed") == 0
    assert value(got, "setpoint_pass_duration_seconds_count") == 3
    # The fleet as the last pass saw it: six servers given version 1, reports read.
    assert value(got, "setpoint_servers", deployment="s/app", state="complete") == 6
    assert value(got, "setpoint_store_requests_total", kind="put_if_absent", outcome="ok") >= 1


def test_a_replica_that_stands_by_leaves_the_fleet_to_the_leader(fleet: Fleet) -> None:
    """What a replica saw while it led goes stale once another leads: it exposes
    its own counters and no fleet, and never reads the store to make one up."""
    replica = Lease(fleet.store, "ctl-b", ttl=30, clock=fleet.clock)
    metrics = Metrics(fleet.store, replica, clock=fleet.clock, read_store=False)
    assert ("setpoint_servers", (("deployment", "s/app"), ("state", "complete"))) not in parse(
        metrics.exposition()[0]
    )  # nothing passed yet
    metrics.record_pass(0.2, "ok", fleet.step())  # while it led
    assert value(parse(metrics.exposition()[0]), "setpoint_servers", deployment="s/app",
                 state="pending") == len(SERVERS)  # fmt: skip
    metrics.record_pass(0.0, "standby", None)  # another replica took over
    fleet.store.stats.reset()
    got = parse(metrics.exposition()[0])
    assert not [k for k in got if k[0].startswith(("setpoint_servers", "setpoint_agents"))]
    assert value(got, "setpoint_passes_total", result="standby") == 1
    assert value(got, "setpoint_leader", replica="ctl-b") == 0
    assert fleet.store.stats.total == 0
