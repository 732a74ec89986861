"""A fleet on disk for the dashboard's tests: a real definitions repository with
git notes, a local store written by a real reconciler and simulated agents, and
in it a rollout in flight, a failure, a quarantine and an unreachable agent.

- ``shop/web`` on 12 web servers: version 2 rolls out 4 at a time with an hour
  between batches, so batch 1 of 3 is done and 8 servers wait.
- ``shop/db`` on 3 database servers takes a secret password; it fails on
  ``db-02`` (quarantined), whose report, as an agent that does not mask would
  write it, carries the password in its output.
- ``cache-01``'s agent beats every 30s and stopped an hour ago: unreachable.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from setpoint.controller.gitops.notes import Notebook
from setpoint.controller.gitops.recording import Recorder
from setpoint.store.base import Store
from setpoint.store.local import LocalStore
from setpoint.store.timestamps import format_timestamp
from tests.controller.fleet import Fleet, component, inventory

SECRET = "s3cr3t-Tr0ub4dor-and-3"
WEB = [f"web-{i:02d}" for i in range(1, 13)]
DBS = ["db-01", "db-02", "db-03"]
CACHE = ["cache-01"]
SERVERS = WEB + DBS + CACHE

DB_COMPONENT = """\
kind: Component
inputs:
  - name: version
    type: String
  - name: password
    type: String
    secret: true
outputs:
  - name: addr
configs:
  - tool: script
    actions: [CREATE, UPDATE, DELETE]
    config: "#!/bin/sh\\necho configuring the database\\n"
"""

POLICY = "    update_policy: {max_batch_size: 4, pause_time: 3600}\n"


def stack(web_version: str) -> str:
    return f"""\
kind: Stack
deployments:
  web:
    component: web
    servers: {{group: webs}}
    input_values:
      version: "{web_version}"
{POLICY}  db:
    component: db
    servers: {{group: dbs}}
    input_values:
      version: "1"
      password: "{SECRET}"
  cache:
    component: web
    servers: {{group: caches}}
    input_values:
      version: "1"
"""


@dataclass(frozen=True)
class FleetOnDisk:
    repo: Path
    store: Path  # the local store's directory (nothing there when built in another store)
    first: str  # the commit of version 1
    second: str  # the commit of version 2, rolling out
    third: str  # a commit on the branch, not deployed yet


def build_fleet(root: Path, store: Store | None = None) -> FleetOnDisk:
    """The fleet, in ``store`` (default: a local store at ``root/store``)."""
    store = store if store is not None else LocalStore(root / "store")
    fleet = Fleet(
        root,
        {
            "inventory.yaml": inventory(SERVERS, {"webs": WEB, "dbs": DBS, "caches": CACHE}),
            "components/web/component.yaml": component(),
            "components/db/component.yaml": DB_COMPONENT,
            "stacks/shop.yaml": stack("1"),
        },
        store=store,
    )
    try:
        return _deploy(fleet, root)
    finally:
        fleet.close()


def _deploy(fleet: Fleet, root: Path) -> FleetOnDisk:
    fleet.now = time.time() - 7200
    fleet.agent("db-02").fail_deployments = {"shop/db"}
    fleet.agent("cache-01").heartbeat = 30.0
    recorder = Recorder(Notebook(str(fleet.repo_path)), None, fleet.clock)
    first = fleet.repo.resolve("HEAD")
    recorder.update(fleet.step(5.0))
    # db-02's failure, as its agent reports it, reaches the ledger (quarantine, rollout).
    _unmasked_report(fleet.store, "db-02")
    for _ in range(3):
        recorder.update(fleet.step(5.0))
    fleet.agents["cache-01"].silent = True  # its agent stops: no more heartbeats
    second = fleet.commit({"stacks/shop.yaml": stack("2")}, "web: version 2")
    fleet.now = time.time() - 600
    for _ in range(2):
        recorder.update(fleet.step(5.0))
    third = fleet.commit({"stacks/shop.yaml": stack("3")}, "web: version 3")
    _unmasked_report(fleet.store, "db-02")
    return FleetOnDisk(fleet.repo_path, root / "store", first, second, third)


def _unmasked_report(store: Store, server: str) -> None:
    """Rewrite ``server``'s report as an agent that does not mask would: the
    secret in the reason and the stream tails."""
    report = store.read_report(server)
    assert report is not None
    got = report.deployments["shop/db"]
    leaked = dataclasses.replace(
        got,
        stdout_tail=f"connecting with password {SECRET}\nconnection refused\n",
        stderr_tail=f"error: authentication failed for {SECRET}\n",
        reason=f"script exited with status 3 (password {SECRET})",
        exit_code=3,
        attempts=1,
        started_at=format_timestamp(time.time() - 65.0, digits=3),
        finished_at=format_timestamp(time.time() - 62.5, digits=3),
    )
    store.write_report(
        dataclasses.replace(report, deployments={**report.deployments, "shop/db": leaked})
    )


def fail_now(store: Store, server: str, deployment: str) -> None:
    """``server``'s agent reports its current config of ``deployment`` FAILED and
    will try again: a failure no pass has quarantined."""
    report = store.read_report(server)
    assert report is not None
    failed = dataclasses.replace(
        report.deployments[deployment], status="FAILED", exit_code=1, reason="exit status 1"
    )
    store.write_report(
        dataclasses.replace(report, deployments={**report.deployments, deployment: failed})
    )
