"""End-to-end fixtures: real git repositories, a local store, agents as processes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from setpoint.controller.definitions.repository import init_repo_from_dir

EXAMPLE = Path(__file__).resolve().parents[2] / "repos-example"
SERVERS = ("db-1", "web-1", "web-2")

StartAgents = Callable[..., list[subprocess.Popen[bytes]]]


@pytest.fixture
def example_repo(tmp_path: Path) -> Path:
    dest = tmp_path / "repo"
    init_repo_from_dir(EXAMPLE, dest, "Deploy the example stack")
    return dest


@pytest.fixture
def start_agents(tmp_path: Path) -> Iterator[StartAgents]:
    """Start ``setpoint-agent`` processes; all are stopped at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(
        store: Path, servers: tuple[str, ...] = SERVERS, *extra: str
    ) -> list[subprocess.Popen[bytes]]:
        started = []
        for server in servers:
            state = tmp_path / "agents" / server
            state.mkdir(parents=True, exist_ok=True)
            log = (tmp_path / "agents" / f"{server}.log").open("ab")
            cmd = [
                sys.executable, "-m", "setpoint.agentshim", "--store", str(store),
                "--server", server,
                "--state-dir", str(state), "--interval", "0.1", "--retry-backoff", "0.2",
                "--allow-unsigned", *extra,
            ]  # fmt: skip
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            log.close()
            procs.append(proc)
            started.append(proc)
        return started

    yield start
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def swift_env(swift_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The controller's credentials for the test Swift: Swift API and its s3api."""
    monkeypatch.setenv("ST_AUTH", swift_server.auth_url)
    monkeypatch.setenv("ST_USER", swift_server.user)
    monkeypatch.setenv("ST_KEY", swift_server.key)
    for name in ("OS_STORAGE_URL", "OS_AUTH_TOKEN", "OS_AUTH_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", swift_server.user)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", swift_server.key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return swift_server
