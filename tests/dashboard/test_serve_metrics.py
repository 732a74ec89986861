"""``setpoint serve`` exposes ``/metrics``: the fleet as the store has it at each
scrape, parsed with prometheus_client's own parser, behind the same token as
the pages."""

from __future__ import annotations

import dataclasses
import urllib.request
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from setpoint.store.local import LocalStore
from tests.browser_fixtures import ServeFactory
from tests.dashboard.dashfleet import SECRET, build_fleet
from tests.dashboard.test_serve import get

TOKEN = "metrics-t0ken"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> tuple[str, Samples, set[str]]:
    """The content type, every sample (name and sorted labels -> value), and the
    names of the families that carry a HELP text."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        content_type = response.headers["Content-Type"]
        body = response.read().decode("utf-8")
    assert SECRET not in body
    samples: Samples = {}
    documented: set[str] = set()
    for family in text_string_to_metric_families(body):
        if family.documentation:
            documented.add(family.name)
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return content_type, samples, documented


def fail_now(store: LocalStore, server: str, deployment: str) -> None:
    """``server``'s agent reports its current config of ``deployment`` FAILED, as
    it does before the next pass quarantines it."""
    report = store.read_report(server)
    assert report is not None
    failed = dataclasses.replace(
        report.deployments[deployment], status="FAILED", exit_code=1, reason="exit status 1"
    )
    store.write_report(
        dataclasses.replace(report, deployments={**report.deployments, deployment: failed})
    )


def test_serve_exposes_the_fleets_metrics_read_at_each_scrape(
    tmp_path: Path, serve: ServeFactory
) -> None:
    fleet = build_fleet(tmp_path)
    served = serve("--store", str(fleet.store), "--token", TOKEN)
    assert get(served.url + "/metrics")[0] == 401  # the pages' token guards it too

    content_type, before, documented = scrape(served.url + "/metrics")
    assert content_type == CONTENT_TYPE_LATEST  # the format prometheus_client wrote
    assert {"setpoint_servers", "setpoint_agents", "setpoint_rollout_batch"} <= documented
    # db-02 failed and is quarantined; web rolls out batch 1 of 3; cache-01 is unreachable.
    assert before[("setpoint_servers", (("deployment", "shop/db"), ("state", "quarantined")))] == 1
    assert before[("setpoint_servers", (("deployment", "shop/db"), ("state", "complete")))] == 2
    assert before[("setpoint_quarantined_digests", (("deployment", "shop/db"),))] == 1
    assert before[("setpoint_failed_digests", (("deployment", "shop/web"),))] == 0
    assert before[("setpoint_agents", (("state", "unreachable"),))] == 1
    assert before[("setpoint_rollout_batch", (("deployment", "shop/web"),))] == 1
    assert before[("setpoint_rollout_batches", (("deployment", "shop/web"),))] == 3
    assert before[("setpoint_rollouts", (("outcome", "rolling"),))] == 1

    fail_now(LocalStore(fleet.store), "web-01", "shop/web")
    _, after, _ = scrape(served.url + "/metrics")
    assert after[("setpoint_servers", (("deployment", "shop/web"), ("state", "failed")))] == 1
    assert after[("setpoint_servers", (("deployment", "shop/web"), ("state", "complete")))] == 11
    assert after[("setpoint_failed_digests", (("deployment", "shop/web"),))] == 1
    # The process's own store requests: counters that only grow between scrapes.
    reads = ("setpoint_store_requests_total", (("kind", "get"), ("outcome", "ok")))
    assert after[reads] > before[reads] > 0
