"""The counts a reconcile pass prints: failed servers, not failure lines; a
server that never reported is not converged.

Both are decided in ``PassOutcome.summary`` and ``assess``
(controller/converge/reconcile.py).
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.controller.fleet import Fleet, component, inventory

SERVERS = ["app-1", "app-2", "app-3"]


def stack(version: str) -> str:
    return f"""\
kind: Stack
deployments:
  app:
    component: app
    servers: {{group: apps}}
    input_values:
      version: "{version}"
    update_policy: {{max_batch_size: 3}}
"""


def test_two_failed_servers_are_counted_as_two(tmp_path: Path) -> None:
    fleet = Fleet(
        tmp_path,
        {
            "inventory.yaml": inventory(SERVERS, {"apps": SERVERS}),
            "components/app/component.yaml": component(),
            "stacks/s.yaml": stack("1"),
        },
    )
    try:
        for _ in range(5):
            fleet.step()
        for server in SERVERS[:2]:
            fleet.agent(server).fail_versions = {"2"}
        fleet.commit({"stacks/s.yaml": stack("2")})
        for _ in range(5):
            outcome = fleet.step()
        failed_servers = {s.server for s in outcome.servers.values() if s.failed}
        assert failed_servers == set(SERVERS[:2])
        match = re.search(r"(\d+) failed", outcome.summary())
        assert match is not None, outcome.summary()
        assert match.group(1) == "2", outcome.summary()
    finally:
        fleet.close()


def test_a_first_pass_with_no_agent_converges_no_server(tmp_path: Path) -> None:
    # web-1 and web-2 only get a deployment that waits for db-1's output: their
    # manifests are empty on the first pass, and no agent runs anywhere.
    files = {
        "inventory.yaml": inventory(["db-1", "web-1", "web-2"], {"web": ["web-1", "web-2"]}),
        "components/app/component.yaml": component(),
        "stacks/s.yaml": """\
kind: Stack
deployments:
  db:
    component: app
    servers: [db-1]
    input_values: {version: "1"}
  web:
    component: app
    servers: {group: web}
    input_values:
      version: {get_attr: [db, addr]}
""",
    }
    fleet = Fleet(tmp_path, files)
    try:
        outcome = fleet.run_pass()
        assert outcome.waiting, "web waits for db's output"
        assert outcome.summary().startswith("0/3 servers converged"), outcome.summary()
        assert not any(s.converged for s in outcome.servers.values())
    finally:
        fleet.close()


def test_a_rollout_in_batches_counts_each_waiting_server_once(tmp_path: Path) -> None:
    """Servers held for a later batch are said once (in the rollout's progress),
    and are not converged at the new commit they have not been given."""
    one_at_a_time = stack("1").replace("max_batch_size: 3", "max_batch_size: 1")
    fleet = Fleet(
        tmp_path,
        {
            "inventory.yaml": inventory(SERVERS, {"apps": SERVERS}),
            "components/app/component.yaml": component(),
            "stacks/s.yaml": one_at_a_time,
        },
    )
    try:
        for _ in range(5):
            fleet.step()
        fleet.commit({"stacks/s.yaml": one_at_a_time.replace('"1"', '"2"')})
        summary = fleet.step().summary()
        assert "batch 1/3: 0 done, 1 in progress, 2 waiting" in summary
        assert summary.count("waiting") == 1, summary
        assert summary.startswith("0/3 servers converged"), summary
    finally:
        fleet.close()


def test_counted_says_one_thing_and_many_things() -> None:
    from setpoint.controller.wording import counted

    assert [counted(1, "server"), counted(2, "server"), counted(0, "server")] == [
        "1 server",
        "2 servers",
        "0 servers",
    ]
    assert [counted(1, "batch"), counted(3, "batch"), counted(2, "address")] == [
        "1 batch",
        "3 batches",
        "2 addresses",
    ]
