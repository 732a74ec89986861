"""The whole loop with agents as real processes on a local store directory."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from setpoint.controller.cli.demo import run_demo
from setpoint.controller.converge.reconcile import Reconciler
from setpoint.controller.definitions.repository import GitRepo, commit_all
from setpoint.store.local import LocalStore
from tests.e2e.cli import setpoint

pytestmark = pytest.mark.e2e


def test_demo_story_converges_step_by_step(tmp_path: Path) -> None:
    lines: list[str] = []
    assert run_demo(workdir=str(tmp_path / "demo"), timeout=60, say=lines.append) == 0, "\n".join(
        lines
    )
    text = "\n".join(lines)
    assert "ok: web-1 received backend=db-1:5432 through get_attr" in text
    assert "ok: the revert stored 0 new blobs" in text
    assert "ok: DELETE web/metrics on web-2" in text


def test_converged_fleet_then_idle_pass_writes_nothing(
    example_repo: Path, tmp_path: Path, start_agents: Callable[..., object]
) -> None:
    store_dir = tmp_path / "store"
    start_agents(store_dir)
    result = setpoint(
        "reconcile", "--repo", str(example_repo), "--store", str(store_dir),
        "--wait", "--timeout", "60", "--interval", "0.1", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["converged"] is True
    assert sorted(outcome["servers"]) == ["db-1", "web-1", "web-2"]

    store = LocalStore(store_dir)
    with GitRepo.open(example_repo) as repo:
        idle = Reconciler(repo, store).run_pass()
    assert idle.converged
    assert store.stats.writes == 0
    assert store.stats.requests["put_if_absent"] == 0

    report = store.read_report("web-2")
    assert report is not None
    frontend = report.deployments["web/frontend"]
    assert frontend.status == "COMPLETE"
    assert frontend.outputs == {"url": "http://web-2/"}
    assert "backend db-1:5432 (1.0.0)" in frontend.stdout_tail


def test_failed_deployment_exits_1_with_the_reason(
    example_repo: Path, tmp_path: Path, start_agents: Callable[..., object]
) -> None:
    motd = example_repo / "components/motd/component.yaml"
    motd.write_text(motd.read_text().replace("printf '%s (%s)\\n'", "exit 7; printf '%s (%s)\\n'"))
    commit_all(example_repo, "Break the motd")
    store_dir = tmp_path / "store"
    start_agents(store_dir, ("db-1",), "--max-attempts", "2")
    result = setpoint(
        "reconcile", "--repo", str(example_repo), "--store", str(store_dir),
        "--wait", "--timeout", "60", "--interval", "0.1",
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED: db-1: web/motd: script exited with status 7" in result.stdout


def test_wait_without_agents_times_out_with_exit_2(example_repo: Path, tmp_path: Path) -> None:
    result = setpoint(
        "reconcile", "--repo", str(example_repo), "--store", str(tmp_path / "store"),
        "--wait", "--timeout", "0.5", "--interval", "0.1",
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "waiting: web/frontend on web-1" in result.stdout
    assert "timed out after 0.5s" in result.stderr
