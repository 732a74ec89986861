"""The agent's drift schedule: a digest is first checked one jittered interval
after it was applied (or the agent started), never at start-up; a suspended
deployment is not checked and has no drift result."""

from __future__ import annotations

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
