"""A Heat template on a server running Heat's own agent, unmodified, on real
Swift: a deployment reads another's ``deploy_stdout``, ``deploy_stderr`` and
``deploy_status_code``, and an os-apply-config deployment with NO_SIGNAL is
delivered (os-collect-config caches it by name) and complete at once.

The agent and its venv are those of ``test_e2e_heat_agent``; the template is
``tests/controller/heat_corpus/heat_agent_outputs.yaml``.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from setpoint.controller.cli.main import main
from setpoint.controller.converge.reconcile import Reconciler
from setpoint.controller.definitions.repository import GitRepo, init_repo_from_dir
from setpoint.store.url import open_store
from tests.e2e.test_e2e_heat_agent import (
    converge,
    heat_venv,  # noqa: F401 -- the fixture, shared
    lay_out_root,
)

pytestmark = pytest.mark.e2e

CORPUS = Path(__file__).parents[1] / "controller" / "heat_corpus"


def test_deploy_outputs_flow_and_no_signal_config_is_delivered_on_heat_agent(
    tmp_path: Path,
    swift_server: Any,
    heat_venv: Path,  # noqa: F811 -- the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ST_AUTH", swift_server.auth_url)
    monkeypatch.setenv("ST_USER", swift_server.user)
    monkeypatch.setenv("ST_KEY", swift_server.key)
    for name in ("OS_STORAGE_URL", "OS_AUTH_TOKEN", "OS_AUTH_URL"):
        monkeypatch.delenv(name, raising=False)
    url = f"swift://heat-{uuid.uuid4().hex[:10]}"
    store = open_store(url)
    store.set_temp_url_key(1, "heat-agent-secret")  # type: ignore[attr-defined]
    assert main(["enroll", "db-1", "--store", url, "--agent", "heat"]) == 0
    root = tmp_path / "db-1"
    env = lay_out_root(heat_venv, root, capsys.readouterr().out)

    src = tmp_path / "src"
    (src / "stacks").mkdir(parents=True)
    (src / "inventory.yaml").write_text("kind: Inventory\nservers:\n  db-1: {}\n")
    template = (CORPUS / "heat_agent_outputs.yaml").read_text()
    (src / "stacks/app.yaml").write_text(template)
    (src / "stacks/app.env.yaml").write_text("setpoint:\n  servers: {db: db-1}\n")
    init_repo_from_dir(src, tmp_path / "repo", "deploy")
    with GitRepo.open(tmp_path / "repo") as repo:
        converge(Reconciler(repo, store), heat_venv, root, env)

    report = store.read_report("db-1")
    assert report is not None
    hello = report.deployments["app/hello"]
    assert hello.outputs == {
        "deploy_stdout": "hello from db-1\n",
        "deploy_stderr": "a warning\n",
        "deploy_status_code": 0,
    }
    echo = report.deployments["app/echo"]
    assert echo.outputs["heard"] == "hello from db-1\n|a warning\n|0"
    settings = report.deployments["app/settings"]
    assert (settings.status, settings.reason) == (
        "COMPLETE",
        "NO_SIGNAL os-apply-config config: complete once delivered, as in Heat",
    )
    # os-collect-config cached the os-apply-config deployment under its name.
    cached = json.loads((root / "cache" / "app%2Fsettings.json").read_text())
    assert cached == {"app": {"port": 8080}}
