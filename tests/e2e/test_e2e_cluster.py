"""A cluster whose members each list every member's address, with agents as
real processes: bring-up, a join and a leave.

Every run appends the PEERS it was given to a file per server, so the test
sees each input a member ever ran with, not only the last.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from setpoint.controller.definitions.model import DEFAULT_CONVERGE_ROUNDS
from setpoint.controller.definitions.repository import commit_all, init_repo_from_dir
from setpoint.controller.rollout.ledger import read_ledger
from setpoint.store.local import LocalStore

pytestmark = pytest.mark.e2e

MEMBER = """\
kind: Component
description: A cluster member that must know every member's address.
inputs:
  - name: PEERS
    type: Json
    default: {}
outputs:
  - name: addr
configs:
  - tool: script
    actions: [CREATE, UPDATE]
    config: |
      #!/bin/sh
      printf '%s %s\\n' "$deploy_action" "$PEERS" >> RUNS/"$deploy_server_id".log
      printf '10.0.0.%s' "${deploy_server_id#m}" > "$heat_outputs_path.addr"
"""

STACK = """\
kind: Stack
deployments:
  member:
    component: member
    servers: {group: cluster}
    converge: true
    update_policy: {max_batch_size: 1}
    input_values: {PEERS: {get_attr: [member, addr]}}
"""


def inventory(members: list[str]) -> str:
    servers = "".join(f"  {m}: {{}}\n" for m in members)
    return f"kind: Inventory\nservers:\n{servers}groups:\n  cluster: [{', '.join(members)}]\n"


def setpoint(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "setpoint.controller.cli", "--log-level", "warning", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def addrs(*members: str) -> dict[str, str]:
    return {m: f"10.0.0.{m[1:]}" for m in members}


class Runs:
    """The (action, PEERS) of every run each member's script made."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def of(self, member: str) -> list[tuple[str, dict[str, str]]]:
        path = self.folder / f"{member}.log"
        if not path.exists():
            return []
        runs = []
        for line in path.read_text().splitlines():
            action, peers = line.split(" ", 1)
            runs.append((action, json.loads(peers)))
        return runs


def test_a_cluster_converges_grows_and_shrinks_without_losing_peers(
    tmp_path: Path, start_agents: Callable[..., object]
) -> None:
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    src = tmp_path / "src"
    (src / "components/member").mkdir(parents=True)
    (src / "stacks").mkdir()
    (src / "components/member/component.yaml").write_text(MEMBER.replace("RUNS/", f"{runs_dir}/"))
    (src / "stacks/cluster.yaml").write_text(STACK)
    (src / "inventory.yaml").write_text(inventory(["m1", "m2", "m3"]))
    repo = tmp_path / "repo"
    init_repo_from_dir(src, repo, "A three-member cluster")
    store_dir = tmp_path / "store"
    store = LocalStore(store_dir)
    runs = Runs(runs_dir)
    reconcile = (
        "reconcile", "--repo", str(repo), "--store", str(store_dir),
        "--wait", "--timeout", "120", "--interval", "0.1", "--json",
    )  # fmt: skip

    def converge() -> int:
        """Reconcile until converged; the rounds the cycle took."""
        result = setpoint(*reconcile)
        assert result.returncode == 0, result.stdout + result.stderr
        assert json.loads(result.stdout)["converged"] is True
        (record,) = read_ledger(store).cycles.values()
        assert record["round"] <= DEFAULT_CONVERGE_ROUNDS
        return int(record["round"])

    start_agents(store_dir, ("m1", "m2", "m3"))
    assert converge() == 2  # everyone with nothing, then everyone with all three
    for member in ("m1", "m2", "m3"):
        assert runs.of(member)[-1] == ("UPDATE", addrs("m1", "m2", "m3"))
    before_join = {m: len(runs.of(m)) for m in ("m1", "m2", "m3")}

    (repo / "inventory.yaml").write_text(inventory(["m1", "m2", "m3", "m4"]))
    commit_all(repo, "m4 joins the cluster")
    start_agents(store_dir, ("m4",))
    assert converge() == 2  # the newcomer with the three, then everyone with four
    for member in ("m1", "m2", "m3", "m4"):
        assert runs.of(member)[-1][1] == addrs("m1", "m2", "m3", "m4"), member
        sizes = [len(peers) for _action, peers in runs.of(member)]
        assert sizes == sorted(sizes), f"{member} ran with fewer peers than it had: {sizes}"
    for member in ("m1", "m2", "m3"):
        # One more run each, with the newcomer: never an emptied map in between.
        assert runs.of(member)[before_join[member] :] == [("UPDATE", addrs("m1", "m2", "m3", "m4"))]
    assert runs.of("m4") == [
        ("CREATE", addrs("m1", "m2", "m3")),
        ("UPDATE", addrs("m1", "m2", "m3", "m4")),
    ]

    before_leave = {m: len(runs.of(m)) for m in ("m1", "m3", "m4")}
    (repo / "inventory.yaml").write_text(inventory(["m1", "m3", "m4"]))
    commit_all(repo, "m2 leaves the cluster")
    assert converge() == 1
    for member in ("m1", "m3", "m4"):
        # The entry leaves every map once: one run each, listing the three left.
        assert runs.of(member)[before_leave[member] :] == [("UPDATE", addrs("m1", "m3", "m4"))]
    report = store.read_report("m2")
    assert report is not None
    assert "cluster/member" not in report.deployments  # its DELETE ran
