"""The agent's drift schedule: a digest is first checked one jittered interval
after it was applied, never at start-up; when each was last checked is kept in
the state dir, so a restarted agent (or the next ``--once``) checks when due; a
suspended deployment is not checked and has no drift result."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

from agenttest import SERVER, Clock, Deploy, Publisher, component

from setpoint.agentshim.agent import Agent
from setpoint.store.memory import MemoryStore


def config(tmp_path: Path, body: str = "v1") -> dict[str, object]:
    """Applies by writing ``body``; its CHECK counts the checks in ``checks``."""
    return component(
        [
            (["CREATE", "UPDATE", "SUSPEND", "RESUME"], "script", f"#!/bin/sh\necho {body}\n"),
            (["CHECK"], "script", f"#!/bin/sh\necho checked >> {tmp_path / 'checks'}\n"),
        ]
    )


def checks(tmp_path: Path) -> int:
    path = tmp_path / "checks"
    return len(path.read_text().splitlines()) if path.exists() else 0


def drift_names(store: MemoryStore) -> list[str]:
    got = store.read_report(SERVER)
    assert got is not None
    return sorted(got.drift)


def test_the_first_check_comes_one_interval_after_the_apply_not_at_start_up(
    tmp_path: Path,
    store: MemoryStore,
    publisher: Publisher,
    make_agent: Callable[..., Agent],
    clock: Clock,
) -> None:
    publisher.publish({"app/web": config(tmp_path)})
    agent = make_agent(drift_interval=100.0)
    agent.run_once()  # applies
    clock.advance(50)
    agent.run_once()
    assert checks(tmp_path) == 0
    clock.advance(70)  # past 100 s ±10% since the apply
    agent.run_once()
    assert checks(tmp_path) == 1
    assert drift_names(store) == ["app/web"]

    # A restarted agent (a fleet restart) does not check at start-up either.
    restarted = make_agent(drift_interval=100.0)
    clock.advance(500)
    restarted.run_once()
    assert checks(tmp_path) == 1
    clock.advance(120)
    restarted.run_once()
    assert checks(tmp_path) == 2

    # A new digest applied is first checked one interval after its apply.
    publisher.publish({"app/web": config(tmp_path, "v2")})
    restarted.run_once()
    clock.advance(50)
    restarted.run_once()
    assert checks(tmp_path) == 2
    assert drift_names(store) == []  # the v1 result is gone with v1
    clock.advance(70)
    restarted.run_once()
    assert checks(tmp_path) == 3


def test_a_suspended_deployment_is_not_drift_checked(
    tmp_path: Path,
    store: MemoryStore,
    publisher: Publisher,
    make_agent: Callable[..., Agent],
    clock: Clock,
) -> None:
    derived = config(tmp_path)
    publisher.publish({"app/web": derived})
    agent = make_agent(drift_interval=100.0)
    agent.run_once()
    clock.advance(120)
    agent.run_once()
    assert (checks(tmp_path), drift_names(store)) == (1, ["app/web"])
    publisher.publish({"app/web": Deploy(derived, state="suspended")})
    agent.run_once()
    for _ in range(3):
        clock.advance(120)
        agent.run_once()
    assert (checks(tmp_path), drift_names(store)) == (1, [])


def test_a_restarted_agent_checks_when_due_not_one_interval_after_its_start(
    tmp_path: Path,
    state_dir: Path,
    publisher: Publisher,
    make_agent: Callable[..., Agent],
    clock: Clock,
) -> None:
    publisher.publish({"app/web": config(tmp_path)})
    make_agent(drift_interval=100.0).run_once()  # applies: first check due at +90..110 s
    clock.advance(50)
    restarted = make_agent(drift_interval=100.0)
    restarted.run_once()
    assert checks(tmp_path) == 0
    clock.advance(70)  # 120 s after the apply, 70 s after the restart
    restarted.run_once()
    assert checks(tmp_path) == 1
    # The last check is kept: the next restart counts from it too.
    clock.advance(40)
    again = make_agent(drift_interval=100.0)
    again.run_once()
    clock.advance(75)  # 115 s after that check
    again.run_once()
    assert checks(tmp_path) == 2
    doc = json.loads((state_dir / "drift-checks.json").read_text())
    assert doc["deployments"]["app/web"]["at"] == clock.now  # the check just run


def test_a_check_overdue_at_start_up_is_spread_not_run_at_once(
    tmp_path: Path,
    publisher: Publisher,
    make_agent: Callable[..., Agent],
    clock: Clock,
) -> None:
    """After a long stop every check is overdue: a fleet restarted at once
    spreads them over the first fifth of an interval instead of running them
    all in its first cycle."""
    publisher.publish({"app/web": config(tmp_path)})
    make_agent(drift_interval=100.0).run_once()
    clock.advance(1000)
    restarted = make_agent(drift_interval=100.0, rng=random.Random(7))
    restarted.run_once()
    assert checks(tmp_path) == 0
    clock.advance(20)  # within a fifth of the interval
    restarted.run_once()
    assert checks(tmp_path) == 1


def test_once_runs_the_checks_that_are_due(
    tmp_path: Path,
    store: MemoryStore,
    publisher: Publisher,
    make_agent: Callable[..., Agent],
    clock: Clock,
) -> None:
    """``setpoint-agent --once`` from a timer: each run is a new process."""
    publisher.publish({"app/web": config(tmp_path)})
    make_agent(drift_interval=100.0, once=True).run_once()  # applies
    clock.advance(50)
    make_agent(drift_interval=100.0, once=True).run_once()
    assert checks(tmp_path) == 0
    clock.advance(500)  # overdue: --once runs it now
    make_agent(drift_interval=100.0, once=True).run_once()
    assert checks(tmp_path) == 1
    assert drift_names(store) == ["app/web"]


def test_the_schedule_is_written_only_when_it_changes(
    tmp_path: Path,
    state_dir: Path,
    publisher: Publisher,
    make_agent: Callable[..., Agent],
    clock: Clock,
) -> None:
    publisher.publish({"app/web": config(tmp_path)})
    agent = make_agent(drift_interval=100.0)
    agent.run_once()  # applied: recorded
    schedule = state_dir / "drift-checks.json"
    written = schedule.stat()
    for _ in range(3):
        clock.advance(20)
        agent.run_once()  # nothing due, nothing applied: nothing written
    now = schedule.stat()
    assert (now.st_ino, now.st_mtime_ns) == (written.st_ino, written.st_mtime_ns)
    clock.advance(60)
    agent.run_once()  # checked: written
    assert schedule.stat().st_ino != written.st_ino  # replaced whole (atomic rename)


def test_a_damaged_schedule_starts_over(
    tmp_path: Path,
    state_dir: Path,
    publisher: Publisher,
    make_agent: Callable[..., Agent],
    clock: Clock,
) -> None:
    publisher.publish({"app/web": config(tmp_path)})
    make_agent(drift_interval=100.0).run_once()
    (state_dir / "drift-checks.json").write_text("{not json")
    restarted = make_agent(drift_interval=100.0)
    restarted.run_once()  # every digest counts as applied now
    clock.advance(120)
    restarted.run_once()
    assert checks(tmp_path) == 1
