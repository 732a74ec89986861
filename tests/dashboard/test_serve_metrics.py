"""``setpoint serve`` exposes ``/metrics``: the fleet counted from the read its
pages share, parsed with prometheus_client's own parser, behind the same token
as the pages; the same numbers as reading the store for them."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from setpoint.controller.converge.status import fleet_status
from setpoint.controller.observe.snapshot import status_snapshot, store_snapshot
from setpoint.controller.rollout.ledger import read_ledger
from setpoint.store.local import LocalStore
from tests.browser_fixtures import ServeFactory
from tests.dashboard.dashfleet import SECRET, build_fleet, fail_now
from tests.dashboard.scrape import scrape, servers
from tests.dashboard.test_serve import get

TOKEN = "metrics-t0ken"


def test_serve_exposes_the_fleets_metrics_as_fresh_as_its_pages(
    tmp_path: Path, serve: ServeFactory
) -> None:
    fleet = build_fleet(tmp_path)
    served = serve("--store", str(fleet.store), "--token", TOKEN, "--refresh", "0")
    assert get(served.url + "/metrics")[0] == 401  # the pages' token guards it too

    content_type, body, before = scrape(served.url + "/metrics", TOKEN)
    assert content_type == CONTENT_TYPE_LATEST  # the format prometheus_client wrote
    assert SECRET not in body
    documented = {f.name for f in text_string_to_metric_families(body) if f.documentation}
    assert {"setpoint_servers", "setpoint_agents", "setpoint_rollout_batch"} <= documented
    # db-02 failed and is quarantined; web rolls out batch 1 of 3; cache-01 is unreachable.
    assert servers(before, "shop/db", "quarantined") == 1
    assert servers(before, "shop/db", "complete") == 2
    assert before[("setpoint_quarantined_digests", (("deployment", "shop/db"),))] == 1
    assert before[("setpoint_failed_digests", (("deployment", "shop/web"),))] == 0
    assert before[("setpoint_agents", (("state", "unreachable"),))] == 1
    assert before[("setpoint_rollout_batch", (("deployment", "shop/web"),))] == 1
    assert before[("setpoint_rollout_batches", (("deployment", "shop/web"),))] == 3
    assert before[("setpoint_rollouts", (("outcome", "rolling"),))] == 1

    fail_now(LocalStore(fleet.store), "web-01", "shop/web")
    deadline = time.monotonic() + 30  # the next read of the fleet (--refresh 0) sees it
    while True:
        _, _, after = scrape(served.url + "/metrics", TOKEN)
        if servers(after, "shop/web", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert servers(after, "shop/web", "failed") == 1
    assert servers(after, "shop/web", "complete") == 11
    assert after[("setpoint_failed_digests", (("deployment", "shop/web"),))] == 1
    # The process's own store requests: counters that only grow between scrapes.
    reads = ("setpoint_store_requests_total", (("kind", "get"), ("outcome", "ok")))
    assert after[reads] > before[reads] > 0


def test_metrics_of_the_pages_read_are_those_of_reading_the_store(tmp_path: Path) -> None:
    fleet = build_fleet(tmp_path)
    store = LocalStore(fleet.store)
    fail_now(store, "web-01", "shop/web")
    now = time.time()
    counted = status_snapshot(fleet_status(store, now=now), read_ledger(store))
    assert counted == store_snapshot(store, now)
    assert counted.servers["shop/web"]["failed"] == 1
    assert counted.quarantined_digests["shop/db"]
    assert counted.agents["unreachable"] == 1
