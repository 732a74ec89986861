"""Preflight and drift with agents as real processes and the real puppet.

A change marked ``preflight: true`` is first checked on every server (puppet
--noop); a check that fails on one server halts the rollout before anything
is applied anywhere. With ``preflight: {min_pass: 60%}`` the rollout goes on
without the server whose check failed. An agent with ``--drift-interval`` reports a managed file
changed by hand, and ``on_drift: correct`` puts it back.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tooltest import require_tool

from setpoint.controller.definitions.repository import commit_all, init_repo_from_dir
from setpoint.store import Report
from setpoint.store.local import LocalStore
from tests.e2e.cli import setpoint

pytestmark = pytest.mark.e2e

SERVERS = ("s1", "s2", "s3")
COMPONENT = """\
kind: Component
inputs:
  - name: root
    type: String
  - name: message
    type: String
configs:
  - tool: puppet
    actions: [CREATE, UPDATE]
    config: |
      file { "${facts['root']}/${facts['deploy_server_id']}.motd":
        content => "${facts['message']}\\n",
      }
"""


def stack(
    root: Path, message: str, extra: str = "", preflight: str = "true", batch: int = 1
) -> str:
    return f"""\
kind: Stack
deployments:
  motd:
    component: motd
    servers: [s1, s2, s3]
    preflight: {preflight}
    update_policy: {{max_batch_size: {batch}}}
{extra}    input_values:
      root: "{root}"
      message: "{message}"
"""


def make_repo(tmp_path: Path, root: Path, extra: str = "") -> Path:
    src = tmp_path / "src"
    (src / "components/motd").mkdir(parents=True)
    (src / "stacks").mkdir()
    (src / "inventory.yaml").write_text(
        "kind: Inventory\nservers:\n" + "".join(f"  {s}: {{}}\n" for s in SERVERS)
    )
    (src / "components/motd/component.yaml").write_text(COMPONENT)
    (src / "stacks/site.yaml").write_text(stack(root, "hello", extra))
    repo = tmp_path / "repo"
    init_repo_from_dir(src, repo, "A motd managed by puppet, checked first")
    return repo


def report(store: LocalStore, server: str) -> Report:
    got = store.read_report(server)
    assert got is not None, f"{server} has not reported"
    return got


def checked(store: LocalStore, server: str, timeout: float = 60) -> Report:
    """The server's report once it has a preflight result."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = store.read_report(server)
        if got is not None and got.preflight:
            return got
        time.sleep(0.2)
    raise AssertionError(f"{server} reported no preflight within {timeout}s")


@pytest.fixture(autouse=True)
def puppet(monkeypatch: pytest.MonkeyPatch) -> None:
    found = require_tool("puppet", "apt-get install puppet")
    monkeypatch.setenv("PATH", f"{found.parent}:{Path(sys.executable).parent}:/usr/bin:/bin")


def test_a_preflight_failing_on_one_server_applies_nothing_anywhere(
    tmp_path: Path, start_agents: Callable[..., object], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "managed"
    root.mkdir()
    repo = make_repo(tmp_path, root)
    store_dir = tmp_path / "store"
    start_agents(store_dir, ("s1", "s2"))
    # s3 has no puppet: its check fails, as a missing tool would on a real server.
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    start_agents(store_dir, ("s3",))

    wait = ("--wait", "--timeout", "90", "--interval", "0.2", "--json")
    result = setpoint("reconcile", "--repo", str(repo), "--store", str(store_dir), *wait)
    assert result.returncode == 1, result.stdout + result.stderr
    failed = json.loads(result.stdout)["failed"]
    assert any(
        "site/motd: preflight failed on s3 (puppet not found on this server" in f
        and "nothing of it applied" in f
        for f in failed
    ), failed

    # The halt came with s3's answer; s1 and s2 may still be checking.
    store = LocalStore(store_dir)
    for server in ("s1", "s2"):
        got = checked(store, server)
        assert got.deployments == {}
        assert got.preflight["site/motd"].status == "PASSED"
        assert f"File[{root}/{server}.motd]/ensure" in got.preflight["site/motd"].changes
    assert report(store, "s3").preflight["site/motd"].status == "FAILED"
    # Nothing was applied anywhere: no server wrote its file.
    assert list(root.iterdir()) == []

    status = setpoint("status", "--store", str(store_dir))
    assert "s3 site/motd: preflight FAILED" in status.stdout, status.stdout
    assert "puppet not found on this server" in status.stdout


def test_min_pass_rolls_out_where_the_check_passed_and_leaves_the_rest_as_it_was(
    tmp_path: Path,
    start_agents: Callable[..., list[subprocess.Popen[bytes]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "managed"
    root.mkdir()
    # One batch for all: the first deployment costs one round of puppet runs.
    repo = make_repo(tmp_path, root)
    (repo / "stacks/site.yaml").write_text(stack(root, "hello", preflight="false", batch=3))
    commit_all(repo, "No checks for the first deployment")
    store_dir = tmp_path / "store"
    start_agents(store_dir, ("s1", "s2"))
    (s3,) = start_agents(store_dir, ("s3",))
    wait = ("--wait", "--timeout", "90", "--interval", "0.2", "--json")
    result = setpoint("reconcile", "--repo", str(repo), "--store", str(store_dir), *wait)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {p.name: p.read_text() for p in root.iterdir()} == {
        f"{s}.motd": "hello\n" for s in SERVERS
    }

    # s3 loses its puppet: its check of the next change fails.
    s3.terminate()
    s3.wait(timeout=10)
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))
    start_agents(store_dir, ("s3",))
    changed = stack(root, "goodbye", preflight="{min_pass: 60%}", batch=3)
    (repo / "stacks/site.yaml").write_text(changed)
    commit_all(repo, "A new message, where its check passes")
    result = setpoint("reconcile", "--repo", str(repo), "--store", str(store_dir), *wait)
    # --wait stops at the pass that leaves s3 out: a failure to report.
    assert result.returncode == 1, result.stdout + result.stderr
    assert json.loads(result.stdout)["failed"] == [
        "site/motd: preflight failed on s3 (puppet not found on this server "
        "(install puppet or puppet-agent)); "
        "left out of the rollout (min_pass 60%: 2 of 3 servers passed)"
    ]

    # The rollout started on s1 and s2; s3 keeps what it ran.
    deadline = time.monotonic() + 60
    written: dict[str, str] = {}
    while time.monotonic() < deadline:
        written = {p.name: p.read_text() for p in root.iterdir()}
        if written["s1.motd"] == written["s2.motd"] == "goodbye\n":
            break
        time.sleep(0.2)
    assert written == {"s1.motd": "goodbye\n", "s2.motd": "goodbye\n", "s3.motd": "hello\n"}
    store = LocalStore(store_dir)
    assert report(store, "s3").preflight["site/motd"].status == "FAILED"

    status = setpoint("status", "--store", str(store_dir))
    assert "s3 site/motd: preflight FAILED" in status.stdout, status.stdout
    assert (
        "waiting: site/motd on s3: preflight failed (puppet not found on this server "
        "(install puppet or puppet-agent)): left out of the rollout"
    ) in status.stdout
    # Its row: desired and reported are still the first deployment's digest.
    rows = {
        row[0]: row
        for row in map(str.split, status.stdout.splitlines())
        if row[1:2] == ["site/motd"]
    }
    assert rows["s3"][2] == rows["s3"][3] != rows["s1"][2] == rows["s2"][3]


def test_preflight_then_rollout_then_drift_put_back(
    tmp_path: Path, start_agents: Callable[..., object]
) -> None:
    root = tmp_path / "managed"
    root.mkdir()
    repo = make_repo(tmp_path, root, "    on_drift: correct\n")
    store_dir = tmp_path / "store"
    start_agents(store_dir, SERVERS, "--drift-interval", "1")

    wait = ("--wait", "--timeout", "90", "--interval", "0.2")
    result = setpoint("reconcile", "--repo", str(repo), "--store", str(store_dir), *wait)
    assert result.returncode == 0, result.stdout + result.stderr
    for server in SERVERS:
        assert (root / f"{server}.motd").read_text() == "hello\n"

    store = LocalStore(store_dir)
    changed = root / "s2.motd"
    changed.write_text("changed by hand\n")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        drift = report(store, "s2").drift.get("site/motd")
        if drift is not None and drift.status == "drifted":
            break
        time.sleep(0.2)
    assert drift is not None
    assert drift.status == "drifted"
    assert "content" in drift.changes

    # on_drift: correct: the next pass asks s2 to run the UPDATE once more.
    result = setpoint("reconcile", "--repo", str(repo), "--store", str(store_dir), *wait)
    assert result.returncode == 0, result.stdout + result.stderr
    assert changed.read_text() == "hello\n"
    assert (root / "s1.motd").read_text() == "hello\n"


def test_plan_preflight_shows_what_each_server_would_change(
    tmp_path: Path, start_agents: Callable[..., object]
) -> None:
    root = tmp_path / "managed"
    root.mkdir()
    repo = make_repo(tmp_path, root)
    store_dir = tmp_path / "store"
    start_agents(store_dir, SERVERS)
    wait = ("--wait", "--timeout", "90", "--interval", "0.2")
    result = setpoint("reconcile", "--repo", str(repo), "--store", str(store_dir), *wait)
    assert result.returncode == 0, result.stdout + result.stderr

    (repo / "stacks/site.yaml").write_text(stack(root, "goodbye"))
    commit_all(repo, "A new message")
    args = (
        "plan", "HEAD~1", "HEAD", "--repo", str(repo), "--store", str(store_dir),
        "--preflight", "--preflight-timeout", "90",
    )  # fmt: skip
    plan = setpoint(*args, timeout=180)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "preflight of" in plan.stdout
    assert "on 3 servers: 3 passed, 0 failed, 0 without an answer" in plan.stdout
    for server in SERVERS:
        assert f"{server} site/motd: PASSED" in plan.stdout
        assert f"File[{root}/{server}.motd]/content" in plan.stdout
        assert "-hello\n  +goodbye\n" in plan.stdout
        # Nothing applied: every server still has the deployed message.
        assert (root / f"{server}.motd").read_text() == "hello\n"
    # Its answers in, the plan deleted its request: no pass publishes the checks again.
    assert LocalStore(store_dir).list_controller_docs("preflight-") == []

    # A second plan asks every server afresh: s1 changed since.
    (root / "s1.motd").write_text("edited by hand\n")
    again = setpoint(*args, timeout=180)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "-edited by hand\n  +goodbye\n" in again.stdout
