"""The corpus Heat templates (data functions, conditions, outputs) converged by
agents running as processes on a local store, their outputs read back with
``setpoint status --repo``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from setpoint.controller.definitions.repository import init_repo_from_dir

pytestmark = pytest.mark.e2e

CORPUS = Path(__file__).resolve().parents[1] / "controller" / "heat_corpus"
INVENTORY = "kind: Inventory\nservers: {db-1: {}, db-2: {}, web-1: {}}\n"


def setpoint(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "setpoint.controller.cli", "--log-level", "warning", *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_functions_conditions_and_outputs_converge_with_agent_processes(
    tmp_path: Path, start_agents: Callable[..., object]
) -> None:
    src = tmp_path / "src"
    (src / "stacks").mkdir(parents=True)
    (src / "inventory.yaml").write_text(INVENTORY)
    (src / "stacks/web.yaml").write_text((CORPUS / "functions.yaml").read_text())
    (src / "stacks/web.env.yaml").write_text("setpoint: {servers: {web: web-1}}\n")
    (src / "stacks/db.yaml").write_text((CORPUS / "conditions.yaml").read_text())
    (src / "stacks/db.env.yaml").write_text(
        "parameter_defaults: {env_type: prod}\nsetpoint: {servers: {db: db-1, replica: db-2}}\n"
    )
    repo = tmp_path / "repo"
    init_repo_from_dir(src, repo, "Heat templates with functions and conditions")
    store = tmp_path / "store"
    start_agents(store, ("db-1", "db-2", "web-1"))
    result = setpoint(
        "reconcile", "--repo", str(repo), "--store", str(store), "--wait", "--timeout", "60",
        "--interval", "0.1", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["converged"] is True

    status = setpoint("status", "--store", str(store), "--repo", str(repo), "--json")
    assert status.returncode == 0, status.stderr
    outputs = {
        f"{o['stack']}/{o['name']}": o["value"] for o in json.loads(status.stdout)["outputs"]
    }
    assert outputs == {
        "db/primary_dsn": "pg://primary:500",
        "db/replica_dsn": "pg://replica:500",
        "db/mode": "production",
        "web/summary": "listen=0.0.0.0:80,0.0.0.0:443 primary=primary vhost: www.example.org",
        "web/listen_count": 2,
    }
