"""A rolling update that fails, rolled back, with agents as real processes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from setpoint.controller.definitions.repository import commit_all
from setpoint.controller.rollout.ledger import read_ledger
from setpoint.store.documents import DeploymentReport
from setpoint.store.local import LocalStore
from tests.e2e.cli import setpoint

pytestmark = pytest.mark.e2e


def reported(store: LocalStore, server: str) -> dict[str, DeploymentReport]:
    report = store.read_report(server)
    assert report is not None, f"{server} has not reported"
    return report.deployments


def test_failed_batch_rolls_back_to_what_succeeded(
    example_repo: Path, tmp_path: Path, start_agents: Callable[..., object]
) -> None:
    store_dir = tmp_path / "store"
    start_agents(store_dir, ("db-1", "web-1", "web-2"), "--max-attempts", "2")
    wait = ("--wait", "--timeout", "60", "--interval", "0.1")
    first = setpoint("reconcile", "--repo", str(example_repo), "--store", str(store_dir), *wait)
    assert first.returncode == 0, first.stdout + first.stderr
    store = LocalStore(store_dir)
    before = {s: reported(store, s)["web/motd"].config for s in ("db-1", "web-1", "web-2")}

    stack = example_repo / "stacks/web.yaml"
    stack.write_text(
        stack.read_text().replace(
            "      message: Managed by setpoint\n",
            "      message: Managed by setpoint\n"
            "    update_policy: {max_batch_size: 1}\n"
            "    on_failure: rollback\n",
        )
    )
    motd = example_repo / "components/motd/component.yaml"
    motd.write_text(motd.read_text().replace("printf '%s (%s)\\n'", "exit 7; printf '%s (%s)\\n'"))
    commit_all(example_repo, "Roll out a broken motd one server at a time")
    result = setpoint(
        "reconcile", "--repo", str(example_repo), "--store", str(store_dir), *wait, "--json"
    )
    assert result.returncode == 1, result.stdout + result.stderr
    outcome = json.loads(result.stdout)
    assert any("web/motd: failed on db-1" in f and "rolled back" in f for f in outcome["failed"])

    # Every server ends on the digest that succeeded on it: db-1 went back to
    # it (a new generation), web-1 and web-2 were never given the broken one.
    again = setpoint("reconcile", "--repo", str(example_repo), "--store", str(store_dir), *wait)
    assert again.returncode == 1  # still failed: quarantined until a fix or a retry
    for server, digest in before.items():
        got = reported(store, server)["web/motd"]
        assert (got.config, got.status) == (digest, "COMPLETE"), server
    ledger = read_ledger(store)
    assert ledger.rollouts["web/motd"].outcome == "rolled_back"
    assert list(ledger.quarantine["web/motd"]) == ["db-1"]
    status = setpoint("status", "--store", str(store_dir))
    assert "web/motd: batch 1 of 3, rolled back" in status.stdout
    assert "quarantined: web/motd on db-1" in status.stdout
