"""``setpoint serve``'s ``/metrics`` over a real OpenStack Swift: the dashboard's
fleet (a rollout in flight, a quarantine, an unreachable agent) written there
by a real reconciler, one more failure reported, then scraped from a serve
process and parsed with prometheus_client. The gauges say what ``setpoint
status`` says, and the HTTP requests that reached Swift are counted: those of
one read of the fleet, however often it is scraped within ``--refresh``."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from setpoint.controller.observe.snapshot import metric_state
from setpoint.store.url import open_store
from tests.browser_fixtures import ServeFactory
from tests.dashboard.dashfleet import build_fleet, fail_now
from tests.dashboard.scrape import scrape, servers

pytestmark = pytest.mark.e2e


def test_metrics_of_a_fleet_on_swift_agree_with_status(
    tmp_path: Path, swift_env: Any, serve: ServeFactory
) -> None:
    url = f"swift://metrics-{uuid.uuid4().hex[:10]}"
    store = open_store(url)
    store.set_temp_url_key(1, "metrics-secret")  # type: ignore[attr-defined]  # agents' URLs
    build_fleet(tmp_path, store)
    fail_now(store, "web-01", "shop/web")
    served = serve("--store", url, "--refresh", "600")

    _, _, first = scrape(served.url + "/metrics")
    assert servers(first, "shop/db", "quarantined") == 1
    assert servers(first, "shop/web", "failed") == 1
    assert first[("setpoint_failed_digests", (("deployment", "shop/web"),))] == 1
    assert first[("setpoint_quarantined_digests", (("deployment", "shop/db"),))] == 1
    assert first[("setpoint_agents", (("state", "unreachable"),))] == 1
    assert first[("setpoint_rollout_batch", (("deployment", "shop/web"),))] == 1
    assert first[("setpoint_rollout_batches", (("deployment", "shop/web"),))] == 3

    # Every (deployment, state) pair counts what 'setpoint status' shows, no more.
    status = subprocess.run(
        [sys.executable, "-m", "setpoint.controller.cli", "status", "--store", url, "--json"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    shown = Counter(
        (d["name"].split("@", 1)[0], metric_state(d["status"]))
        for s in json.loads(status.stdout)["servers"]
        for d in s["deployments"]
    )
    gauges = {
        (labels[0][1], labels[1][1]): value
        for (name, labels), value in first.items()
        if name == "setpoint_servers" and value
    }
    assert gauges == shown

    # Swift answered the HTTP requests of the fleet's read, counted; a scrape
    # within --refresh counts the read the pages share and asks Swift nothing.
    gets = ("setpoint_store_http_requests_total", (("method", "GET"),))
    assert first[gets] > 0
    _, _, second = scrape(served.url + "/metrics")
    assert second[gets] == first[gets]
