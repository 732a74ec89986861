"""A server that leaves the inventory: counted until its DELETE configs ran, then
shown as retired and not counted; ``setpoint forget`` removes it from the store."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from setpoint.controller.cli.common import FAILED, OK, UNAVAILABLE
from setpoint.controller.cli.main import main
from setpoint.controller.converge.status import fleet_status, format_table
from setpoint.controller.definitions.repository import commit_all, init_repo_from_dir
from setpoint.store.local import LocalStore
from tests.controller.fleet import Fleet, component, inventory

SERVERS = ["app-1", "app-2", "app-3"]
STACK = """\
kind: Stack
deployments:
  app:
    component: app
    servers: {group: apps}
    input_values: {version: "1"}
"""


def files(servers: list[str]) -> dict[str, str]:
    return {
        "inventory.yaml": inventory(servers, {"apps": servers}),
        "components/app/component.yaml": component(),
        "stacks/s.yaml": STACK,
    }


def test_a_server_removed_from_the_inventory_stops_being_counted(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, files(SERVERS))
    try:
        for _ in range(3):
            outcome = fleet.step()
        assert outcome.summary().startswith("3/3 servers converged"), outcome.summary()
        left = fleet.commit({"inventory.yaml": inventory(SERVERS[:2], {"apps": SERVERS[:2]})})
        fleet.step()  # app-3 is given an empty manifest, and its agent answers it
        outcome = fleet.run_pass()
        assert outcome.summary().startswith("2/2 servers converged"), outcome.summary()
        assert outcome.converged

        # The machine is gone: no heartbeat. It is retired, not a server in trouble.
        for server in ("app-1", "app-3"):
            report = fleet.store.read_report(server)
            assert report is not None
            fleet.store.write_report(replace(report, heartbeat=10.0))
        fleet.now += 3600
        statuses = {s.server: s for s in fleet_status(fleet.store, now=fleet.now)}
        assert statuses["app-3"].retired == left
        assert not statuses["app-3"].troubled
        assert statuses["app-1"].troubled  # unreachable too, and still in the inventory
        table = format_table(list(statuses.values()))
        assert "app-3   (inventory)" in table
        assert "left the inventory; 'setpoint forget app-3' removes it" in table
        assert statuses["app-3"].to_dict()["retired"] == left
    finally:
        fleet.close()


def test_forget_removes_a_retired_server_and_refuses_one_still_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src"
    for rel, text in files(SERVERS).items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    repo = tmp_path / "repo"
    init_repo_from_dir(src, repo, "three servers")
    store_dir = tmp_path / "store"
    store = str(store_dir)
    assert main(["reconcile", "--repo", str(repo), "--store", store]) == OK
    (repo / "inventory.yaml").write_text(inventory(SERVERS[:2], {"apps": SERVERS[:2]}))
    commit_all(repo, "app-3 leaves")
    assert main(["reconcile", "--repo", str(repo), "--store", store]) == OK
    capsys.readouterr()

    forget = ["forget", "--repo", str(repo), "--store", store]
    # Still in the inventory: refused, and nothing is deleted (not even app-3).
    assert main([*forget, "app-3", "app-2"]) == FAILED
    err = capsys.readouterr().err
    assert "cannot forget 'app-2': it is in inventory.yaml at" in err
    assert "--force" in err
    assert LocalStore(store_dir).list_servers() == SERVERS

    assert main([*forget, "app-3", "--json"]) == OK
    doc = json.loads(capsys.readouterr().out)
    assert doc == {"forgotten": {"app-3": ["agents/app-3/pointer"]}}
    assert LocalStore(store_dir).list_servers() == SERVERS[:2]
    # The next pass does not bring it back; status no longer lists it.
    assert main(["reconcile", "--repo", str(repo), "--store", store]) == OK
    assert LocalStore(store_dir).list_servers() == SERVERS[:2]
    assert main(["status", "--store", store]) == OK
    assert "app-3" not in capsys.readouterr().out

    # Gone already: said, exit 1. --force forgets a listed one (the next pass republishes it).
    assert main([*forget, "app-3"]) == FAILED
    assert "no server 'app-3' in this store" in capsys.readouterr().err
    assert main(["forget", "app-2", "--force", "--store", store]) == OK
    assert capsys.readouterr().out == "forgot app-2: deleted agents/app-2/pointer\n"
    assert main(["forget", "app-1", "--store", str(tmp_path / "nope"), "--force"]) == UNAVAILABLE
