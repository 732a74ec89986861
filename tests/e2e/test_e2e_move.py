"""``setpoint move`` with agents as real processes: local store to local store."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from setpoint.controller.definitions.repository import commit_all
from setpoint.store.local import LocalStore
from tests.e2e.cli import setpoint

pytestmark = pytest.mark.e2e


def test_fleet_of_agent_processes_moves_and_converges_there(
    example_repo: Path, tmp_path: Path, start_agents: Callable[..., list[subprocess.Popen[bytes]]]
) -> None:
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    procs = start_agents(old_dir)
    wait = ("--wait", "--timeout", "60", "--interval", "0.1")
    result = setpoint("reconcile", "--repo", str(example_repo), "--store", str(old_dir), *wait)
    assert result.returncode == 0, result.stdout + result.stderr

    result = setpoint("move", "--from", str(old_dir), "--to", str(new_dir), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    moved = json.loads(result.stdout)
    assert sorted(moved["servers"]) == ["db-1", "web-1", "web-2"]

    new = LocalStore(new_dir)
    deadline = time.monotonic() + 60  # a hang guard
    while time.monotonic() < deadline:
        reports = {s: new.read_report(s) for s in moved["servers"]}
        if all(r is not None and r.generation >= moved["servers"][s] for s, r in reports.items()):
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"agents did not follow: {reports}")
    status = setpoint("status", "--store", str(new_dir), "--json")
    assert json.loads(status.stdout)["move"]["pending"] == []

    # A new commit reconciled against the new store reaches the same processes.
    motd = example_repo / "components/motd/component.yaml"
    motd.write_text(motd.read_text().replace("printf '%s (%s)\\n'", "printf 'moved %s (%s)\\n'"))
    commit_all(example_repo, "Change the motd after the move")
    result = setpoint("reconcile", "--repo", str(example_repo), "--store", str(new_dir), *wait)
    assert result.returncode == 0, result.stdout + result.stderr
    report = new.read_report("db-1")
    assert report is not None
    assert report.deployments["web/motd"].action == "UPDATE"
    motd_file = tmp_path / "agents/db-1/work/web/motd/motd"
    assert motd_file.read_text().startswith("moved "), motd_file.read_text()
    assert all(p.poll() is None for p in procs), "an agent process ended"
    old_report = LocalStore(old_dir).read_report("db-1")
    assert old_report is not None
    assert old_report.generation < report.generation
