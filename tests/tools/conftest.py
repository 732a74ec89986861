"""Fixtures for the tool tests: a real store, a publisher, an agent over a state dir.

The publishing helpers are the agent tests' (tests/agent/agenttest.py); the
tool helpers (real tools, stand-ins) are in tooltest.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agenttest import SERVER, Clock, Publisher

from setpoint.agentshim.agent import Agent
from setpoint.store.memory import MemoryStore


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore("tool-tests")


@pytest.fixture
def publisher(store: MemoryStore) -> Publisher:
    return Publisher(store)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def hooks_dir(tmp_path: Path) -> Path:
    return tmp_path / "hooks"


@pytest.fixture
def make_agent(
    store: MemoryStore, state_dir: Path, hooks_dir: Path, clock: Clock
) -> Callable[..., Agent]:
    """A new Agent over the same state dir each call."""

    def make(**kwargs: Any) -> Agent:
        options: dict[str, Any] = {
            "hooks_dir": hooks_dir,
            "max_attempts": 1,
            "retry_backoff": 1.0,
            "clock": clock,
            "sleep": clock.sleep,
        }
        options.update(kwargs)
        return Agent(store, SERVER, state_dir, **options)

    return make
