"""Preflight and drift through the controller, with real in-process agents.

The component is a script with its own CHECK config (the standard action a
script checks with): it fails where a ``broken-<server>`` marker exists, and
otherwise says what it would write. Agents are ``Agent`` objects over a memory
store, each cycle run by the test; the controller is a ``Reconciler``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from setpoint.agentshim.agent import Agent
from setpoint.controller.cli.common import FAILED
from setpoint.controller.cli.main import main
from setpoint.controller.converge.preflight import await_answers, preflight_passed
from setpoint.controller.converge.preflight_requests import (
    delete_request,
    read_requests,
    write_request,
)
from setpoint.controller.converge.reconcile import PassOutcome, Reconciler
from setpoint.controller.converge.status import fleet_status
from setpoint.controller.definitions.repository import GitRepo, commit_all, init_repo_from_dir
from setpoint.controller.fleet.gc import gc
from setpoint.controller.gitops.notes import CONVERGED, DeployRecord
from setpoint.controller.gitops.recording import update_record
from setpoint.controller.observe.events import pass_events
from setpoint.controller.observe.metrics import exposition
from setpoint.store.base import Store
from setpoint.store.documents import Manifest
from setpoint.store.lease import Lease, LeaseLost
from setpoint.store.local import LocalStore
from setpoint.store.memory import MemoryStore
from setpoint.store.signing import SigningKey

SERVERS = ("s1", "s2", "s3")
COMPONENT = """\
kind: Component
inputs:
  - name: root
    type: String
  - name: content
    type: String
configs:
  - tool: script
    actions: [CREATE, UPDATE]
    config: |
      #!/bin/sh
      printf '%s\\n' "$content" > "$root/$deploy_server_id"
  - tool: script
    actions: [CHECK]
    config: |
      #!/bin/sh
      if [ -e "$root/broken-$deploy_server_id" ]; then echo "disk full" >&2; exit 1; fi
      if [ "$(cat "$root/$deploy_server_id" 2>/dev/null)" != "$content" ]; then
        echo "$root/$deploy_server_id would hold $content"
      fi
"""


def stack(root: Path, content: str, extra: str = "", preflight: str = "true") -> str:
    return (
        "kind: Stack\n"
        "deployments:\n"
        "  app:\n"
        "    component: app\n"
        "    servers: [s1, s2, s3]\n"
        f"    preflight: {preflight}\n"
        f"{extra}"
        "    input_values:\n"
        f'      root: "{root}"\n'
        f'      content: "{content}"\n'
    )


class Site:
    """A repository, a memory store, a reconciler and an agent per server."""

    def __init__(
        self, tmp_path: Path, extra: str = "", preflight: str = "true", store: Store | None = None
    ) -> None:
        self.root = tmp_path / "managed"
        self.root.mkdir()
        self.extra = extra
        self.preflight = preflight
        src = tmp_path / "src"
        (src / "components/app").mkdir(parents=True)
        (src / "stacks").mkdir()
        (src / "inventory.yaml").write_text(
            "kind: Inventory\nservers:\n" + "".join(f"  {s}: {{}}\n" for s in SERVERS)
        )
        (src / "components/app/component.yaml").write_text(COMPONENT)
        (src / "stacks/site.yaml").write_text(stack(self.root, "v1", extra, preflight))
        self.repo_path = tmp_path / "repo"
        init_repo_from_dir(src, self.repo_path, "v1")
        self.repo = GitRepo.open(self.repo_path)
        self.store = store or MemoryStore("site")
        self.now = 1_700_000_000.0
        self.reconciler = Reconciler(self.repo, self.store, clock=lambda: self.now)
        self.agents = {
            s: Agent(
                self.store,
                s,
                tmp_path / "agents" / s,
                max_attempts=1,
                clock=lambda: self.now,
                drift_interval=60.0,
            )
            for s in SERVERS
        }

    def change(self, content: str) -> None:
        (self.repo_path / "stacks/site.yaml").write_text(
            stack(self.root, content, self.extra, self.preflight)
        )
        commit_all(self.repo_path, content)

    def step(self) -> PassOutcome:
        """A controller pass, then a cycle of every agent."""
        outcome = self.reconciler.run_pass()
        for agent in self.agents.values():
            agent.run_once()
        self.now += 1
        return outcome

    def generations(self) -> dict[str, int]:
        pointers = {s: self.store.read_pointer(s) for s in SERVERS}
        return {s: p.generation for s, p in pointers.items() if p is not None}

    def written(self) -> dict[str, str]:
        return {p.name: p.read_text() for p in sorted(self.root.iterdir())}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    yield s
    s.repo.close()


def test_no_batch_starts_before_every_server_passed_its_check(site: Site) -> None:
    first = site.step()
    # The first pass only asks for checks: nothing is applied yet.
    assert all("preflight: waiting for the check" in w.reason for w in first.waiting)
    assert site.written() == {}
    for server in SERVERS:
        got = site.store.read_report(server)
        assert got is not None
        check = got.preflight["site/app"]
        assert check.status == "PASSED"
        assert check.changes == f"{site.root}/{server} would hold v1"
    site.step()
    assert site.written() == dict.fromkeys(SERVERS, "v1\n")
    assert site.step().converged


def test_a_check_failing_on_one_server_halts_with_nothing_applied(site: Site) -> None:
    site.step()
    site.step()
    assert site.written() == dict.fromkeys(SERVERS, "v1\n")
    (site.root / "broken-s2").write_text("")
    site.change("v2")
    site.step()
    outcome = site.step()
    assert outcome.failed == [
        "site/app: preflight failed on s2 (script exited with status 1); rollout halted "
        "(nothing of it applied)"
    ]
    assert not outcome.converged
    failed = [e for e in pass_events(outcome, site.now) if e.kind == "preflight_failed"]
    assert [(e.deployment, e.server) for e in failed] == [("site/app", "s2")]
    assert failed[0].summary == "site/app: preflight failed on s2: script exited with status 1"
    body = exposition(site.store, outcome, now=site.now)[0].decode()
    assert 'setpoint_preflight{deployment="site/app",state="FAILED"} 1.0' in body
    assert 'setpoint_preflight{deployment="site/app",state="PASSED"} 2.0' in body
    site.step()
    assert site.written() == {"broken-s2": "", **dict.fromkeys(SERVERS, "v1\n")}
    status = {s.server: s for s in fleet_status(site.store, now=site.now)}
    assert status["s2"].troubled
    assert status["s2"].check_lines()[0].startswith("s2 site/app: preflight FAILED (")

    # Once the server is fixed, the failed check passes when it is checked again
    # (after a backoff), and the rollout goes on.
    (site.root / "broken-s2").unlink()
    site.now += 10
    for _ in range(4):
        site.step()
    assert site.written() == dict.fromkeys(SERVERS, "v2\n")


def test_min_pass_starts_the_rollout_without_the_servers_whose_check_failed(
    tmp_path: Path,
) -> None:
    site = Site(tmp_path, preflight="{min_pass: 60%}")
    try:
        site.step()
        site.step()
        (site.root / "broken-s2").write_text("")
        site.change("v2")
        site.step()  # the checks are asked for
        outcome = site.step()  # 2 of 3 passed: 60% is 2, the rollout starts without s2
        left_out = (
            "site/app: preflight failed on s2 (script exited with status 1); "
            "left out of the rollout (min_pass 60%: 2 of 3 servers passed)"
        )
        assert outcome.failed == [left_out]
        assert not outcome.desired.failures  # no rollout stopped
        why = {w.server: w.reason for w in outcome.waiting}
        assert (
            why["s2"] == "preflight failed (script exited with status 1): left out of the rollout"
        )
        site.step()
        assert site.written() == {"broken-s2": "", "s1": "v2\n", "s2": "v1\n", "s3": "v2\n"}
        outcome = site.step()
        assert not outcome.converged
        assert outcome.failed == [left_out]
        assert "1 rollout without servers whose preflight failed" in outcome.summary()
        status = {s.server: s for s in fleet_status(site.store, now=site.now)}
        assert status["s2"].troubled
        assert status["s2"].check_lines()[0].startswith("s2 site/app: preflight FAILED (")

        # Fixed by hand, s2 passes its check again (after a backoff) and is given v2.
        (site.root / "broken-s2").unlink()
        site.now += 10
        for _ in range(4):
            outcome = site.step()
        assert site.written() == dict.fromkeys(SERVERS, "v2\n")
        assert site.step().converged
    finally:
        site.repo.close()


def test_min_pass_halts_when_fewer_servers_can_pass(tmp_path: Path) -> None:
    site = Site(tmp_path, preflight="{min_pass: 2}")
    try:
        site.step()
        site.step()
        for server in ("s1", "s3"):
            (site.root / f"broken-{server}").write_text("")
        site.change("v2")
        site.step()
        outcome = site.step()
        assert outcome.failed == [
            "site/app: preflight failed on s1 (script exited with status 1), "
            "s3 (script exited with status 1); rollout halted (nothing of it applied; "
            "min_pass 2: 1 of 3 servers passed)"
        ]
        site.step()
        assert [site.written()[s] for s in SERVERS] == ["v1\n"] * 3
    finally:
        site.repo.close()


def test_drift_is_reported_and_corrected_once(tmp_path: Path) -> None:
    site = Site(tmp_path, "    on_drift: correct\n")
    try:
        for _ in range(3):
            site.step()
        assert site.written() == dict.fromkeys(SERVERS, "v1\n")
        (site.root / "s3").write_text("edited by hand\n")
        site.now += 70  # a drift check is due
        site.step()
        got = site.store.read_report("s3")
        assert got is not None
        assert (got.drift["site/app"].status, got.drift["site/app"].count) == ("drifted", 1)
        assert site.written()["s3"] == "edited by hand\n"  # reported, not yet corrected
        # The commit's record keeps the drift its servers report, after it converged.
        record = DeployRecord("c", "default", CONVERGED, started_at=0.0, finished_at=1.0)
        outcome = site.reconciler.run_pass()
        assert outcome.servers["s3"].drifted == ["site/app"]
        assert "1 drifted" in outcome.summary()
        drifted = [e for e in pass_events(outcome, site.now) if e.kind == "drifted"]
        assert [(e.deployment, e.server, e.details["count"]) for e in drifted] == [
            ("site/app", "s3", 1)
        ]
        body = exposition(site.store, outcome, now=site.now)[0].decode()
        assert 'setpoint_drift{deployment="site/app",state="drifted"} 1.0' in body
        assert 'setpoint_drift{deployment="site/app",state="unknown"} 0.0' in body
        update_record(record, outcome, site.now)
        assert record.drifted == {"s3": ["site/app"]}
        assert record.summary().endswith("; 1 server drifted")
        for agent in site.agents.values():
            agent.run_once()

        # That pass asked s3 for the UPDATE once more, and s3 ran it.
        assert site.written() == dict.fromkeys(SERVERS, "v1\n")
        site.now += 70
        site.step()
        got = site.store.read_report("s3")
        assert got is not None
        assert got.drift["site/app"].status == "clean"
        # Clean again: the correction asked for stays asked, nothing is republished.
        generations = site.generations()
        site.step()
        assert site.generations() == generations
    finally:
        site.repo.close()


def test_an_agent_without_a_heartbeat_fails_its_check_rather_than_stall(site: Site) -> None:
    for _ in range(3):
        site.step()
    site.change("v2")
    site.now += 1000  # more than three of the agents' 300 s heartbeats
    for server in ("s1", "s2"):  # s3 has gone silent
        site.agents[server].run_once()
    outcome = site.reconciler.run_pass()
    assert outcome.failed == [
        "site/app: preflight failed on s3 (the agent is unreachable (no heartbeat): no answer); "
        "rollout halted (nothing of it applied)"
    ]


def published_checks(site: Site) -> dict[str, tuple[str, ...]]:
    """Each server's preflight entries as its pointer's manifest names them."""
    out = {}
    for server in SERVERS:
        pointer = site.store.read_pointer(server)
        assert pointer is not None
        manifest = Manifest.from_dict(site.store.get_json_blob(pointer.manifest, "manifest"))
        out[server] = tuple(e.name for e in manifest.preflight)
    return out


def plan_beside_a_watch(site: Site) -> Reconciler:
    """The site converged on v1 under a controller that stays on v1 (the branch
    it watches), and a commit v2 (a pull request's head) for a plan to check."""
    for _ in range(3):
        site.step()
    watched = site.repo.resolve("HEAD")
    site.reconciler = Reconciler(site.repo, site.store, rev=watched, clock=lambda: site.now)
    site.change("v2")
    return Reconciler(site.repo, site.store, clock=lambda: site.now)


@pytest.mark.parametrize("pointers", [True, False], ids=["plan-publishes", "watch-publishes"])
def test_a_plan_preflight_stays_published_through_a_running_controller(
    tmp_path: Path, pointers: bool
) -> None:
    site = Site(tmp_path, preflight="false")
    try:
        plan = plan_beside_a_watch(site)
        request = plan.publish_preflight(timeout=30.0, pointers=pointers)
        # The running controller's pass comes before any agent answered.
        site.reconciler.run_pass()
        assert published_checks(site) == dict.fromkeys(SERVERS, ("site/app",))
        for agent in site.agents.values():
            agent.run_once()
        answers = await_answers(site.store, request.checks, timeout=0)
        assert preflight_passed(answers)
        changes = {s: a["site/app"].changes for s, a in answers.items() if a["site/app"]}
        assert changes == {s: f"{site.root}/{s} would hold v2" for s in SERVERS}

        # The plan is done: its request goes, and the next pass drops the checks.
        delete_request(site.store, request)
        assert site.reconciler.run_pass().converged
        assert published_checks(site) == dict.fromkeys(SERVERS, ())
        assert site.written() == dict.fromkeys(SERVERS, "v1\n")
    finally:
        site.repo.close()


def test_an_expired_or_forged_request_is_not_published(tmp_path: Path) -> None:
    site = Site(tmp_path, preflight="false")
    try:
        plan = plan_beside_a_watch(site)
        request = plan.publish_preflight(timeout=30.0, pointers=False)
        site.now += 30 + 61  # the plan was killed: its request outlived its margin
        site.reconciler.run_pass()
        assert published_checks(site) == dict.fromkeys(SERVERS, ())
        # A signing controller merges only a request a key it trusts signed.
        key, other = SigningKey.generate("ctl"), SigningKey.generate("intruder")
        trusted = {"ctl": key.public()}
        write_request(site.store, request, other)
        assert read_requests(site.store, trusted, site.now - 60).live == []
        write_request(site.store, request, key)
        live = read_requests(site.store, trusted, site.now - 60).live
        assert [r.token for r in live] == [request.token]
    finally:
        site.repo.close()


def test_the_pass_deletes_an_expired_request_it_skipped(tmp_path: Path) -> None:
    """A plan killed while it waited leaves its request: the next pass that
    finds it expired deletes it, with one delete, and an idle pass none."""
    site = Site(tmp_path, preflight="false")
    try:
        plan = plan_beside_a_watch(site)
        request = plan.publish_preflight(timeout=30.0, pointers=False)
        site.reconciler.run_pass()  # live: merged, kept
        site.reconciler.run_pass()
        assert site.store.read_controller_doc(request.name) is not None
        site.now += 30 + 61
        deletes = site.store.stats.requests["delete"]
        site.reconciler.run_pass()
        assert site.store.stats.requests["delete"] == deletes + 1
        assert site.store.list_controller_docs("preflight-") == []
        site.reconciler.run_pass()  # nothing expired: no delete
        assert site.store.stats.requests["delete"] == deletes + 1
        assert published_checks(site) == dict.fromkeys(SERVERS, ())
    finally:
        site.repo.close()


def test_gc_keeps_what_a_plan_asks_to_check_until_its_request_goes(tmp_path: Path) -> None:
    site = Site(tmp_path, preflight="false")
    try:
        plan = plan_beside_a_watch(site)
        request = plan.publish_preflight(timeout=30.0, pointers=False)
        (asked,) = {e.config for entries in request.checks.values() for e in entries}
        site.reconciler.run_pass()
        delete_request(site.store, request)
        site.reconciler.run_pass()  # no pointer names the v2 config any more
        request = plan.publish_preflight(timeout=30.0, pointers=False)
        gc(site.store, grace=0, clock=lambda: site.now)  # mark
        gc(site.store, grace=0, clock=lambda: site.now)  # sweep
        assert not site.store.find_missing([asked])
        # Expired (its plan was killed): gc deletes the request, then its blobs.
        site.now += 30 + 61
        gc(site.store, grace=0, clock=lambda: site.now)
        assert site.store.read_controller_doc(request.name) is None
        gc(site.store, grace=0, clock=lambda: site.now)
        assert site.store.find_missing([asked]) == {asked}
    finally:
        site.repo.close()


def test_reconcile_once_exits_failed_on_a_preflight_halt_without_a_stale_batch_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = "    update_policy: {max_batch_size: 1}\n"
    site = Site(tmp_path, policy, store=LocalStore(tmp_path / "store"))
    try:
        for _ in range(6):
            site.step()
        assert site.written() == dict.fromkeys(SERVERS, "v1\n")
        site.change("v2")
        site.step()  # the checks
        rolling = site.step()  # batch 1 of 3
        assert "site/app batch 1/3" in rolling.summary()
        (site.root / "broken-s3").write_text("")
        site.change("v3")  # before v2 finished: its checks, and s3's fails
        site.step()
        capsys.readouterr()
        code = main(
            ["reconcile", "--repo", str(site.repo_path), "--store", str(tmp_path / "store")]
        )
        out = capsys.readouterr().out
        assert code == FAILED
        assert "batch" not in out.splitlines()[0]
        assert "1 rollout stopped" in out.splitlines()[0]
        assert "FAILED: site/app: preflight failed on s3 (script exited with status 1)" in out
    finally:
        site.repo.close()


def test_only_the_leader_deletes_an_expired_request(tmp_path: Path) -> None:
    site = Site(tmp_path, preflight="false")
    try:
        plan = plan_beside_a_watch(site)
        deposed = Lease(site.store, "ctl-a", ttl=10.0, clock=lambda: site.now)
        assert deposed.try_acquire()
        site.reconciler.lease = deposed
        request = plan.publish_preflight(timeout=30.0, pointers=False)
        site.reconciler.run_pass()
        site.now += 30 + 61  # the plan was killed, and ctl-a stopped renewing
        leader = Lease(site.store, "ctl-b", ttl=10.0, clock=lambda: site.now)
        assert leader.try_acquire()
        with pytest.raises(LeaseLost):
            site.reconciler.run_pass()
        assert site.store.read_controller_doc(request.name) is not None
        site.reconciler.lease = leader
        site.reconciler.run_pass()
        assert site.store.read_controller_doc(request.name) is None
    finally:
        site.repo.close()
