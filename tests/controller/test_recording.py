"""The commit's record: rollbacks in the note and in ``setpoint history``, and
``reconcile --notes`` writing the same notes as ``watch`` through the same code."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bench import simulate
from setpoint.controller.cli.main import main
from setpoint.controller.gitops.notes import CONVERGED, FAILED, IN_PROGRESS, Notebook
from setpoint.controller.gitops.recording import Recorder
from setpoint.store.url import open_store
from tests.controller.fleet import Fleet, component, inventory
from tests.controller.test_rollout import SERVERS, make_fleet, stack

POLICY = "    update_policy: {max_batch_size: 6}\n    on_failure: rollback\n"


def git_log_notes(repo: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "log", "--notes=setpoint", "--format=%s%n%N"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def test_a_rollback_is_recorded_in_the_commits_note_and_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = make_fleet(tmp_path, POLICY)
    recorder = Recorder(Notebook(fleet.repo_path), None, fleet.clock)
    try:
        for _ in range(10):
            outcome = fleet.step()
            recorder.update(outcome)
            if outcome.converged:
                break
        first = recorder.current
        assert recorder.record is not None
        assert recorder.record.outcome == CONVERGED
        for server in SERVERS[12:18]:  # the third batch fails
            fleet.agent(server).fail_versions = {"2"}
        second = fleet.commit({"stacks/s.yaml": stack("2", POLICY)}, "version 2")
        for _ in range(12):
            outcome = fleet.step()
            recorder.update(outcome)
        assert any("rolled back" in f for f in outcome.failed)
        record = Notebook(fleet.repo_path).record(second, None)
        assert record is not None
        assert record.outcome == FAILED
        assert record.rollbacks == 1
        assert record.rolled_back == {"s/app": SERVERS[:18]}
        # Every server is back on version 1: no config of this commit converged.
        assert "s/app" not in record.configs
        assert record.servers == dict.fromkeys(SERVERS, "converged")
        assert "1 rollback; s/app rolled back on 18 servers" in record.summary()
        # The first commit's record is final: converged, not superseded.
        old = Notebook(fleet.repo_path).record(first or "", None)
        assert old is not None
        assert old.outcome == CONVERGED
        # The same rollback seen again on later passes is not counted again.
        head = Notebook(fleet.repo_path).notes_head()
        for _ in range(3):
            recorder.update(fleet.step())
        assert Notebook(fleet.repo_path).notes_head() == head
        # git reads it, and setpoint history says which servers went back.
        assert "s/app rolled back on 18 servers" in git_log_notes(fleet.repo_path)
        capsys.readouterr()
        assert main(["history", "--repo", str(fleet.repo_path)]) == 0
        out = capsys.readouterr().out
        assert f"rolled back: s/app on {', '.join(SERVERS[:18])}" in out
        # Why it failed, as the note keeps it, without --json too.
        assert record.failures
        assert f"failed: {record.failures[0]}" in out
        assert main(["history", "--repo", str(fleet.repo_path), "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["commits"][0]["record"]["rolled_back"] == {"s/app": SERVERS[:18]}
        # Reverted, the failed commit stays failed in its note (and in history).
        revert = fleet.commit({"stacks/s.yaml": stack("1", POLICY)}, "revert version 2")
        recorder.update(fleet.step())
        reverted = Notebook(fleet.repo_path).record(second, None)
        assert reverted is not None
        assert (reverted.outcome, reverted.superseded_by) == (FAILED, revert)
    finally:
        fleet.close()


def agents_report(store_path: Path) -> None:
    """Every agent runs what its pointer names and reports it COMPLETE."""
    store = open_store(str(store_path))
    for server in store.list_servers():
        assert simulate.answer(store, server)  # every server has a pointer


def test_reconcile_notes_records_each_commit_like_watch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = Fleet(
        tmp_path,
        {
            "inventory.yaml": inventory(["a", "b"], {"all": ["a", "b"]}),
            "components/app/component.yaml": component(),
            "stacks/s.yaml": stack("1").replace("group: apps", "group: all"),
        },
    )
    fleet.close()
    repo, store = str(fleet.repo_path), str(tmp_path / "store")
    base = ["reconcile", "--repo", repo, "--store", store, "--interval", "0.01"]
    # Without --notes, nothing is written into the repository.
    assert main(base) == 0
    assert Notebook(repo).notes_head() is None
    assert main([*base, "--notes"]) == 0
    first = subprocess.run(
        ["git", "-C", repo, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    record = Notebook(repo).record(first, None)
    assert record is not None
    assert record.outcome == IN_PROGRESS
    agents_report(tmp_path / "store")
    assert main([*base, "--wait", "--timeout", "5", "--notes"]) == 0
    record = Notebook(repo).record(first, None)
    assert record is not None
    assert record.outcome == CONVERGED
    assert record.servers == {"a": "converged", "b": "converged"}
    # A new commit that does not converge in time: in progress, the old one stays converged.
    second = fleet.commit({"stacks/s.yaml": stack("2").replace("group: apps", "group: all")}, "v2")
    assert main([*base, "--wait", "--timeout", "0", "--notes"]) == 2
    record = Notebook(repo).record(second, None)
    assert record is not None
    assert record.outcome == IN_PROGRESS
    log = git_log_notes(fleet.repo_path)
    assert "v2\nsetpoint default: in-progress: 0 converged, 0 failed, 2 pending" in log
    assert "initial\nsetpoint default: converged in" in log
    capsys.readouterr()
    assert main(["history", "--repo", repo]) == 0
    assert "in-progress" in capsys.readouterr().out
