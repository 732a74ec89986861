"""A hook that leaves a child holding its stdout never holds the agent past its run.

The child is started in its own session (``setsid``), so the hook's process
group does not contain it and a timeout does not kill it: the agent must stop
reading the pipes once the hook itself is gone (and, on a timeout, killed),
and move on with the hook's result.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from agenttest import SERVER, Deploy, Publisher, script

from setpoint.agentshim.agent import Agent
from setpoint.store.memory import MemoryStore

# Long enough that an agent which waits for the child is caught by the bound below
# (the fixture kills the child after the test: no test waits this long).
CHILD_SECONDS = 120
# Well short of the child's life: the run itself, the drain after the hook exits,
# and slack for a loaded machine (8 s was a speed check on one).
BOUND = 40.0


@pytest.fixture
def leftover_pids(tmp_path: Path) -> Iterator[Path]:
    """Where the hook writes its leftover child's pid; the child is killed after."""
    pid_file = tmp_path / "child.pid"
    yield pid_file
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)


def leaving_a_child(pid_file: Path, then: str) -> str:
    """A script that starts a child in a new session holding its stdout, then ``then``."""
    return (
        f"setsid sh -c 'echo $$ > {pid_file}; exec sleep {CHILD_SECONDS}' &\n"
        f"while [ ! -s {pid_file} ]; do sleep 0.05; done\n"
        f"echo started\n{then}\n"
    )


def test_a_child_holding_stdout_does_not_hold_a_successful_run(
    publisher: Publisher,
    store: MemoryStore,
    make_agent: Callable[..., Agent],
    leftover_pids: Path,
) -> None:
    # The run's own timeout as long as the child: an agent that waited for either
    # would be past the bound.
    body = leaving_a_child(leftover_pids, "exit 0")
    publisher.publish({"app/web": Deploy(script(body), timeout=CHILD_SECONDS)})
    began = time.monotonic()
    result = make_agent().run_once()
    took = time.monotonic() - began
    report = store.read_report(SERVER)
    assert report is not None
    dep = report.deployments["app/web"]
    assert (result.exit_code, dep.status) == (0, "COMPLETE")
    assert "started" in dep.stdout_tail
    assert took < BOUND, f"the agent waited {took:.1f}s for the hook's leftover child"


def test_a_child_holding_stdout_does_not_hold_a_timed_out_run(
    publisher: Publisher,
    store: MemoryStore,
    make_agent: Callable[..., Agent],
    leftover_pids: Path,
) -> None:
    body = leaving_a_child(leftover_pids, "sleep 30")
    publisher.publish({"app/web": Deploy(script(body), timeout=1.0)})
    began = time.monotonic()
    make_agent().run_once()
    took = time.monotonic() - began
    report = store.read_report(SERVER)
    assert report is not None
    dep = report.deployments["app/web"]
    assert dep.status == "FAILED"
    assert dep.reason is not None
    assert "timed out after 1s" in dep.reason
    assert took < BOUND, f"the agent waited {took:.1f}s for the hook's leftover child"
