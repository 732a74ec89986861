"""The on-disk state: atomic, survives restarts, refuses to be shared or misread."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from agenttest import SERVER, Clock, Publisher, lines, script

from setpoint.agentshim.agent import Agent
from setpoint.agentshim.errors import StateError
from setpoint.agentshim.ledger import REASON_AGENT_STOPPED
from setpoint.agentshim.state import (
    InFlight,
    Layout,
    load_state,
    locked,
    save_state,
)
from setpoint.store.atomic_files import write_atomic
from setpoint.store.documents import path_segment
from setpoint.store.memory import MemoryStore


def test_write_atomic_replaces_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "d" / "f"
    write_atomic(path, b"one")
    write_atomic(path, b"two", 0o640)
    assert path.read_bytes() == b"two"
    assert path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in path.parent.iterdir()] == ["f"]


def test_state_round_trips_through_a_restart(
    publisher: Publisher, make_agent: Callable[..., Agent], state_dir: Path
) -> None:
    publisher.publish({"app/web": script("exit 1")})
    agent = make_agent()
    agent.run_once()
    again = load_state(Layout(state_dir))
    assert again.to_dict() == agent.state.to_dict()
    failure = again.deployments["app/web"].failure
    assert failure is not None
    assert (failure.attempts, failure.action) == (1, "CREATE")


def test_unreadable_state_is_an_error_not_a_fresh_start(state_dir: Path) -> None:
    state_dir.mkdir()
    (state_dir / "state.json").write_text("{not json")
    with pytest.raises(StateError, match="remove it to start over"):
        load_state(Layout(state_dir))


def test_the_state_dir_lock_is_exclusive(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "state")
    with locked(layout), pytest.raises(StateError, match="in use by another agent"), locked(layout):
        pass
    with locked(layout):  # released
        pass


@pytest.mark.parametrize(
    ("name", "expected"),
    [("web", "web"), ("a b", "a%20b"), ("..", "%%2E%2E"), (".", "%%2E"), ("", "%"), ("a%", "a%25")],
)
def test_deployment_names_become_safe_path_segments(name: str, expected: str) -> None:
    assert path_segment(name) == expected


def test_in_flight_marker_counts_as_a_failed_attempt_up_to_the_limit(
    tmp_path: Path,
    publisher: Publisher,
    store: MemoryStore,
    make_agent: Callable[..., Agent],
    state_dir: Path,
    clock: Clock,
) -> None:
    runs = tmp_path / "runs"
    publisher.publish({"app/web": script(f"echo run >> {runs}; exit 1")})
    agent = make_agent(max_attempts=2)
    agent.run_once()
    # Simulate a death mid-run of attempt 2: the marker is on disk, the result is not.
    clock.advance(60)
    state = agent.state
    dep = state.deployments["app/web"]
    assert dep.report is not None
    state.in_flight = InFlight("app/web", dep.entry.config, "CREATE", clock())
    dep.report = replace(dep.report, status="IN_PROGRESS", attempts=2)
    save_state(agent.layout, state)

    restarted = make_agent(max_attempts=2)
    result = restarted.run_once()
    assert result.ran == []  # attempt 2 was the last one
    report = store.read_report(SERVER)
    assert report is not None
    entry = report.deployments["app/web"]
    assert (entry.status, entry.attempts, entry.final) == ("FAILED", 2, True)
    assert entry.reason == REASON_AGENT_STOPPED
    assert lines(runs) == ["run"]
    assert json.loads((state_dir / "state.json").read_text())["in_flight"] is None
