"""Cluster contextualization: one deployment on a group that reads its own
output over the group (every member needs every member's address).

The members converge in rounds; a join never hands a running member fewer
peers than it had (the newcomer's entry is absent until it reported), and a
leave takes the entry out of every map once, under the group's update policy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.simulate import SimAgent, input_values
from setpoint.controller.cli.common import INVALID, OK
from setpoint.controller.cli.main import main
from setpoint.controller.rollout.ledger import read_ledger
from setpoint.store.base import Store
from setpoint.store.local import LocalStore
from tests.controller.fleet import Fleet, inventory

MEMBER = """\
kind: Component
inputs:
  - name: PEERS
    type: Json
    default: {}
outputs:
  - name: addr
configs:
  - tool: script
    actions: [CREATE, UPDATE, DELETE]
    config: "#!/bin/sh\\n"
"""


def cluster_stack(converge: bool = True, policy: str = "") -> str:
    return (
        "kind: Stack\n"
        "deployments:\n"
        "  member:\n"
        "    component: member\n"
        "    servers: {group: cluster}\n"
        + ("    converge: true\n" if converge else "")
        + policy
        + "    input_values: {PEERS: {get_attr: [member, addr]}}\n"
    )


def addr_of(server: str, digest: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"addr": f"10.0.0.{server[1:]}"}


def cluster_files(members: list[str], stack: str, component: str = MEMBER) -> dict[str, str]:
    return {
        "inventory.yaml": inventory(members, {"cluster": members}),
        "components/member/component.yaml": component,
        "stacks/cluster.yaml": stack,
    }


class Cluster:
    """A fleet whose agents report ``addr`` and remember the PEERS of every run."""

    def __init__(self, tmp_path: Path, files: dict[str, str], store: Store | None = None):
        self.fleet = Fleet(tmp_path, files, store)
        for server in ["m1", "m2", "m3", "m4"]:
            self.fleet.agents[server] = SimAgent(
                server, self.fleet.store, self.fleet.clock, outputs_for=addr_of
            )

    def runs(self, server: str) -> list[tuple[str, dict[str, Any]]]:
        """(action, PEERS) of every CREATE and UPDATE ``server`` ran, in order."""
        store = self.fleet.store
        return [
            (action, input_values(store.get_json_blob(digest))["PEERS"])
            for action, _name, digest in self.fleet.agents[server].ran
            if action in ("CREATE", "UPDATE")
        ]

    def converge(self, passes: int = 12) -> int:
        """Passes until converged (fails the test if it never does)."""
        for n in range(1, passes + 1):
            outcome = self.fleet.step()
            assert outcome.failed == []
            if outcome.converged:
                return n
        raise AssertionError(f"the cluster did not converge: {outcome.waiting}")

    def move(self, members: list[str]) -> None:
        self.fleet.commit({"inventory.yaml": inventory(members, {"cluster": members})})


def addrs(*servers: str) -> dict[str, str]:
    return {s: f"10.0.0.{s[1:]}" for s in servers}


def test_validate_accepts_a_deployment_reading_itself_over_its_group(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = Fleet(tmp_path, cluster_files(["m1", "m2", "m3"], cluster_stack()))
    fleet.close()
    assert main(["validate", "--repo", str(fleet.repo_path)]) == OK, capsys.readouterr().out


def test_reading_itself_without_converge_is_one_error_saying_how_to_declare_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = Fleet(tmp_path, cluster_files(["m1", "m2", "m3"], cluster_stack(converge=False)))
    fleet.close()
    assert main(["validate", "--repo", str(fleet.repo_path), "--json"]) == INVALID
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert [(p["file"], p["line"], p["field"]) for p in problems] == [
        ("stacks/cluster.yaml", 3, "deployments.member")
    ]
    assert problems[0]["message"] == (
        "dependency cycle: cluster/member -> cluster/member (it reads its own output); "
        "say converge: true to converge it in rounds"
    )


def test_three_members_converge_each_listing_all_three(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, cluster_files(["m1", "m2", "m3"], cluster_stack()))
    try:
        cluster.converge()
        for server in ("m1", "m2", "m3"):
            # Nobody reported in round 1: the map is empty, never a partial guess.
            assert cluster.runs(server) == [("CREATE", {}), ("UPDATE", addrs("m1", "m2", "m3"))]
        record = next(iter(read_ledger(cluster.fleet.store).cycles.values()))
        assert record["round"] == 2
    finally:
        cluster.fleet.close()


def test_a_join_never_hands_a_running_member_fewer_peers(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, cluster_files(["m1", "m2", "m3"], cluster_stack()))
    try:
        cluster.converge()
        cluster.move(["m1", "m2", "m3", "m4"])
        cluster.converge()
        for server in ("m1", "m2", "m3"):
            # One more run, with the newcomer's entry: no UPDATE {} before it.
            assert cluster.runs(server)[2:] == [("UPDATE", addrs("m1", "m2", "m3", "m4"))]
        # The newcomer runs first with the members that reported, then with itself too.
        assert cluster.runs("m4") == [
            ("CREATE", addrs("m1", "m2", "m3")),
            ("UPDATE", addrs("m1", "m2", "m3", "m4")),
        ]
        record = next(iter(read_ledger(cluster.fleet.store).cycles.values()))
        assert record["round"] == 2  # a join costs two rounds
    finally:
        cluster.fleet.close()


def test_a_leave_takes_the_entry_out_once_one_member_at_a_time(tmp_path: Path) -> None:
    policy = "    update_policy: {max_batch_size: 1}\n"
    cluster = Cluster(
        tmp_path, cluster_files(["m1", "m2", "m3", "m4"], cluster_stack(policy=policy))
    )
    try:
        cluster.converge()
        before = {s: len(cluster.runs(s)) for s in ("m1", "m3", "m4")}
        cluster.move(["m1", "m3", "m4"])
        in_flight: list[list[str]] = []
        batches: list[tuple[int, int]] = []
        for _ in range(12):
            outcome = cluster.fleet.run_pass()
            assert outcome.failed == []
            in_flight.append(sorted(outcome.published.changed))
            rollout = outcome.rollouts.get("cluster/member")
            if rollout is not None:
                batches.append((rollout["progress"]["batch"], rollout["progress"]["batches"]))
            if outcome.converged:
                break
            cluster.fleet.agents_cycle()
            cluster.fleet.now += 1
        assert outcome.converged
        for server in ("m1", "m3", "m4"):
            assert cluster.runs(server)[before[server] :] == [("UPDATE", addrs("m1", "m3", "m4"))]
        m2_ran = [(action, name) for action, name, _ in cluster.fleet.agents["m2"].ran]
        assert ("DELETE", "cluster/member") in m2_ran
        # One member changed per pass (update_policy), m2's removal with the first,
        # in one rollout of three batches.
        assert [c for c in in_flight if c] == [["m1", "m2"], ["m3"], ["m4"]]
        assert batches == [(1, 3), (2, 3), (3, 3)]
    finally:
        cluster.fleet.close()


def test_a_declared_entry_default_stands_in_for_a_member_not_reported(tmp_path: Path) -> None:
    component = MEMBER.replace("    default: {}\n", "    default: {}\n    entry_default: pending\n")
    cluster = Cluster(tmp_path, cluster_files(["m1", "m2", "m3"], cluster_stack(), component))
    try:
        cluster.converge()
        assert cluster.runs("m1") == [
            ("CREATE", {"m1": "pending", "m2": "pending", "m3": "pending"}),
            ("UPDATE", addrs("m1", "m2", "m3")),
        ]
    finally:
        cluster.fleet.close()


def test_entry_default_on_an_input_that_is_no_map_names_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    component = MEMBER.replace("    default: {}\n", "    default: {}\n    entry_default: x\n")
    component = component.replace("type: Json", "type: String").replace("default: {}", "default: a")
    fleet = Fleet(tmp_path, cluster_files(["m1"], cluster_stack(), component))
    fleet.close()
    assert main(["validate", "--repo", str(fleet.repo_path), "--json"]) == INVALID
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert [(p["file"], p["line"], p["field"], p["message"]) for p in problems] == [
        (
            "components/member/component.yaml",
            6,
            "inputs[0].entry_default",
            "entry_default: only a Json input holds a map of members (type is String)",
        )
    ]


def addr_and_peer_count(server: str, digest: str, body: dict[str, Any]) -> dict[str, Any]:
    """An output that changes with the input (as a member that reports its view
    of the cluster): it takes a round more to settle."""
    return {"addr": f"10.0.0.{server[1:]}/{len(input_values(body)['PEERS'])}"}


def test_a_round_rolled_out_in_batches_finishes_while_outputs_change(tmp_path: Path) -> None:
    policy = "    update_policy: {max_batch_size: 1}\n"
    cluster = Cluster(tmp_path, cluster_files(["m1", "m2", "m3"], cluster_stack(policy=policy)))
    for agent in cluster.fleet.agents.values():
        agent.outputs_for = addr_and_peer_count
    try:
        cluster.converge(passes=30)
        settled = {s: f"10.0.0.{s[1:]}/3" for s in ("m1", "m2", "m3")}
        for server in ("m1", "m2", "m3"):
            # Each round reaches every member with the outputs of the round before,
            # even though m1's output changed while m2 and m3 waited for their batch.
            assert cluster.runs(server) == [
                ("CREATE", {}),
                ("UPDATE", {s: f"10.0.0.{s[1:]}/0" for s in ("m1", "m2", "m3")}),
                ("UPDATE", settled),
            ]
        record = next(iter(read_ledger(cluster.fleet.store).cycles.values()))
        assert record["round"] == 3
    finally:
        cluster.fleet.close()


def test_plan_shows_the_members_a_join_or_a_leave_reruns_and_their_new_entries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    component = MEMBER.replace("    default: {}\n", "    default: {}\n    secret: true\n")
    cluster = Cluster(tmp_path, cluster_files(["m1", "m2", "m3"], cluster_stack(), component))
    store_dir = tmp_path / "store"  # the reports, where `plan --store` reads them

    def plan(*args: str) -> str:
        for server in ("m1", "m2", "m3", "m4"):
            report = cluster.fleet.store.read_report(server)
            if report is not None:
                LocalStore(store_dir).write_report(report)
        capsys.readouterr()
        repo = str(cluster.fleet.repo_path)
        code = main(["plan", "--repo", repo, "HEAD~1", "HEAD", "--store", str(store_dir), *args])
        assert code == 0
        return capsys.readouterr().out

    def members() -> dict[str, dict[str, Any]]:
        (deployment,) = json.loads(plan("--format", "json"))["deployments"]
        return {s["server"]: s for s in deployment["servers"]}

    try:
        cluster.converge()
        cluster.move(["m1", "m2", "m3", "m4"])
        text = plan("--no-diff")
        assert "  UPDATE (known after apply) m1, m2, m3: " in text
        assert "            re-runs once m4 reported\n" in text
        assert "            PEERS gains m4: <known after apply> (cluster/member.addr)\n" in text
        assert "  1. cluster/member: [m4] then [m1, m2, m3]\n" in text
        joined = members()
        assert joined["m1"]["entries"] == [
            {
                "input": "PEERS",
                "reads": "cluster/member.addr",
                "server": "m4",
                "change": "joins",
                "value": None,
            }
        ]
        assert (joined["m1"]["action"], joined["m1"]["new"]) == ("UPDATE", None)
        assert joined["m4"]["action"] == "CREATE"

        cluster.converge()
        cluster.move(["m1", "m3", "m4"])
        text = plan("--no-diff")
        assert "            PEERS loses m2: ******** (cluster/member.addr)\n" in text
        assert "  1. cluster/member: [m1, m2, m3, m4]\n" in text  # m2 leaves with the change
        assert "10.0.0.2" not in plan()  # secret: masked in the notes and in the diff
        left = members()
        assert [(e["server"], e["change"], e["value"]) for e in left["m3"]["entries"]] == [
            ("m2", "leaves", "********")
        ]
        assert (left["m3"]["action"], left["m2"]["action"]) == ("UPDATE", "DELETE")
    finally:
        cluster.fleet.close()


def test_plan_against_the_store_shows_the_rerun_of_members_a_join_left_on_their_commit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """m4 joins: its CREATE is published, but m1-m3's configs stay the same until
    m4 reported, so their pointers still name the commit before the join. The
    plan against the store (the newest pointer: the join) still says they re-run."""
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    store = LocalStore(store_dir)
    cluster = Cluster(tmp_path, cluster_files(["m1", "m2", "m3"], cluster_stack()), store)
    try:
        cluster.converge()
        cluster.move(["m1", "m2", "m3", "m4"])
        cluster.fleet.run_pass()
        commits = {s: p.commit for s in ("m1", "m2", "m3", "m4") if (p := store.read_pointer(s))}
        assert commits["m4"] != commits["m1"] == commits["m2"] == commits["m3"]
        capsys.readouterr()
        repo = str(cluster.fleet.repo_path)
        code = main(["plan", "--repo", repo, "--store", str(store_dir), "--format", "json"])
        assert code == 0
        result = json.loads(capsys.readouterr().out)
        assert result["base"] == commits["m4"]
        (deployment,) = result["deployments"]
        members = {s["server"]: s for s in deployment["servers"]}
        for server in ("m1", "m2", "m3"):
            assert (members[server]["action"], members[server]["after_joiners"]) == (
                "UPDATE",
                True,
            )
            assert [(e["server"], e["change"]) for e in members[server]["entries"]] == [
                ("m4", "joins")
            ]
        assert deployment["batches"] == [["m1", "m2", "m3"]]  # m4's CREATE is out already
    finally:
        cluster.fleet.close()


def test_a_head_reading_its_computes_keeps_every_reported_one_while_a_compute_joins(
    tmp_path: Path,
) -> None:
    """The two-deployment form (HPC head and computes) gets the same join rule."""
    stack = (
        "kind: Stack\n"
        "deployments:\n"
        "  head:\n"
        "    component: member\n"
        "    servers: [m1]\n"
        "    converge: true\n"
        "    input_values: {PEERS: {get_attr: [compute, addr]}}\n"
        "  compute:\n"
        "    component: member\n"
        "    servers: {group: cluster}\n"
        "    converge: true\n"
        "    input_values: {PEERS: {m1: {get_attr: [head, addr]}}}\n"
    )
    files = cluster_files(["m1", "m2", "m3"], stack)
    files["inventory.yaml"] = inventory(["m1", "m2", "m3", "m4"], {"cluster": ["m2", "m3"]})
    cluster = Cluster(tmp_path, files)
    try:
        cluster.converge()
        assert cluster.runs("m1")[-1] == ("UPDATE", addrs("m2", "m3"))
        before = len(cluster.runs("m1"))
        joined = inventory(["m1", "m2", "m3", "m4"], {"cluster": ["m2", "m3", "m4"]})
        cluster.fleet.commit({"inventory.yaml": joined})
        cluster.converge()
        # The head ran once more, with the newcomer: never with an emptied map.
        assert cluster.runs("m1")[before:] == [("UPDATE", addrs("m2", "m3", "m4"))]
    finally:
        cluster.fleet.close()


def test_a_member_whose_last_run_failed_keeps_its_entry_in_the_others_maps(
    tmp_path: Path,
) -> None:
    cluster = Cluster(tmp_path, cluster_files(["m1", "m2", "m3"], cluster_stack()))
    try:
        cluster.converge()
        # A change fails on m2: its report now says FAILED, with no outputs.
        cluster.fleet.agents["m2"].fail_deployments = ["cluster/member"]
        broken = MEMBER.replace('config: "#!/bin/sh\\n"', 'config: "#!/bin/sh\\n# v2\\n"')
        cluster.fleet.commit({"components/member/component.yaml": broken})
        for _ in range(4):
            cluster.fleet.step()
        report = cluster.fleet.store.read_report("m2")
        assert report is not None
        assert report.deployments["cluster/member"].status == "FAILED"
        # The fix lands together with a join: m2's address is still known.
        cluster.fleet.agents["m2"].fail_deployments = []
        fixed = MEMBER.replace('config: "#!/bin/sh\\n"', 'config: "#!/bin/sh\\n# v3\\n"')
        cluster.fleet.commit(
            {
                "components/member/component.yaml": fixed,
                "inventory.yaml": inventory(
                    ["m1", "m2", "m3", "m4"], {"cluster": ["m1", "m2", "m3", "m4"]}
                ),
            }
        )
        cluster.converge()
        for server in ("m1", "m2", "m3", "m4"):
            sizes = [len(peers) for _action, peers in cluster.runs(server)]
            assert sizes == sorted(sizes), f"{server} ran with fewer peers than it had: {sizes}"
            assert cluster.runs(server)[-1][1] == addrs("m1", "m2", "m3", "m4")
    finally:
        cluster.fleet.close()
