"""A real agent process under faults: killed with SIGKILL mid-hook, and a store gone for a while.

- Killed while its hook runs, then restarted: the config runs again (its
  success was never recorded) and the report ends COMPLETE.
- The store's directory unusable for a while (every request an I/O error):
  the agent keeps running, and reports the new generation once it is back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from setpoint.controller.converge.publish import PointerPolicy
from setpoint.controller.converge.reconcile import Reconciler
from setpoint.controller.definitions.repository import GitRepo, commit_all, init_repo_from_dir
from setpoint.store.documents import Report
from setpoint.store.local import LocalStore
from setpoint.store.signing import SigningKey
from tests.controller.fleet import inventory

pytestmark = pytest.mark.e2e

SERVER = "web-1"


def component(runs: Path, sleep: float) -> str:
    return f"""\
kind: Component
inputs:
  - name: version
    type: String
configs:
  - tool: script
    actions: [CREATE, UPDATE]
    config: |
      #!/bin/sh
      echo "$version" >> {runs}
      sleep {sleep}
timeout: 60
"""


def stack(version: str) -> str:
    return f"""\
kind: Stack
deployments:
  app:
    component: app
    servers: [{SERVER}]
    input_values:
      version: "{version}"
"""


class OneServer:
    """A repository, a signing controller in-process, and ``setpoint-agent`` processes."""

    def __init__(self, root: Path, sleep: float) -> None:
        self.root = root
        self.runs = root / "runs"
        src = root / "src"
        for rel, text in {
            "inventory.yaml": inventory([SERVER], {}),
            "components/app/component.yaml": component(self.runs, sleep),
            "stacks/s.yaml": stack("1"),
        }.items():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_text(text)
        self.repo_path = root / "repo"
        init_repo_from_dir(src, self.repo_path, "initial")
        self.repo = GitRepo.open(self.repo_path)
        self.store_dir = root / "store"
        self.store = LocalStore(self.store_dir)
        self.key = SigningKey.generate("ctl")
        self.reconciler = Reconciler(self.repo, self.store, policy=PointerPolicy(self.key))
        self.procs: list[subprocess.Popen[bytes]] = []

    def start_agent(self) -> subprocess.Popen[bytes]:
        log = (self.root / "agent.log").open("ab")
        cmd = [
            sys.executable, "-m", "setpoint.agentshim", "--store", str(self.store_dir),
            "--server", SERVER, "--state-dir", str(self.root / "agent"),
            "--trusted-key", str(self.key.public()),
            "--interval", "0.1", "--retry-backoff", "0.2", "--max-attempts", "3",
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append(proc)
        return proc

    def runs_of(self) -> list[str]:
        return self.runs.read_text().split() if self.runs.exists() else []

    def report(self) -> Report | None:
        return self.store.read_report(SERVER)

    def log(self) -> str:
        path = self.root / "agent.log"
        return path.read_text() if path.exists() else ""

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.repo.close()


@pytest.fixture
def one(tmp_path: Path) -> Iterator[OneServer]:
    fleet = OneServer(tmp_path, sleep=1.5)
    yield fleet
    fleet.close()


def wait_for(what: str, ready: Callable[[], bool], fleet: OneServer, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; agent log:\n{fleet.log()}")
        time.sleep(0.05)


def completes(fleet: OneServer, generation: int) -> Callable[[], bool]:
    def ready() -> bool:
        report = fleet.report()
        if report is None or report.generation != generation:
            return False
        got = report.deployments.get("s/app")
        return got is not None and got.status == "COMPLETE"

    return ready


def test_an_agent_killed_during_its_hook_runs_the_config_again_after_a_restart(
    one: OneServer,
) -> None:
    outcome = one.reconciler.run_pass()
    generation = outcome.published.pointers[SERVER].generation
    agent = one.start_agent()
    wait_for("the hook to start", lambda: one.runs_of() == ["1"], one)
    agent.send_signal(signal.SIGKILL)
    agent.wait(timeout=10)
    report = one.report()
    assert (
        report is None
        or report.deployments.get("s/app") is None
        or (report.deployments["s/app"].status == "IN_PROGRESS")
    )
    one.start_agent()
    wait_for("COMPLETE after the restart", completes(one, generation), one)
    assert one.runs_of() == ["1", "1"]  # run again: its success was never recorded
    report = one.report()
    assert report is not None
    assert report.error is None
    assert report.deployments["s/app"].attempts == 2  # the killed run counts as one
    assert one.reconciler.run_pass().converged


def test_an_agent_keeps_running_while_its_store_is_gone_and_reports_once_it_is_back(
    one: OneServer,
) -> None:
    first = one.reconciler.run_pass().published.pointers[SERVER].generation
    agent = one.start_agent()
    wait_for("the first run", completes(one, first), one)
    # The store's directory goes away, and an unusable path stands in its place
    # (a mount gone bad): every request of the agent fails with an I/O error.
    away = one.root / "store-away"
    os.rename(one.store_dir, away)
    one.store_dir.write_text("not a directory\n")
    # Meanwhile the controller publishes a new generation where the store now is.
    (one.repo_path / "stacks" / "s.yaml").write_text(stack("2"))
    commit_all(one.repo_path, "version 2")
    moved = Reconciler(one.repo, LocalStore(away), policy=PointerPolicy(one.key))
    second = moved.run_pass().published.pointers[SERVER].generation
    assert second > first
    # Several polls meet the missing store: the agent lived through the first to
    # log the second (waiting on the log, not on a sleep a slow machine outlasts).
    wait_for(
        "two polls to meet the missing store", lambda: one.log().count("store_error") >= 2, one
    )
    assert agent.poll() is None, one.log()  # still running
    one.store_dir.unlink()
    os.rename(away, one.store_dir)
    wait_for("the new generation's report", completes(one, second), one)
    assert agent.poll() is None
    assert one.runs_of() == ["1", "2"]
    assert one.reconciler.run_pass().converged
