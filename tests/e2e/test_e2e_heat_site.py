"""The corpus site (``tests/controller/heat_corpus/site.yaml``): a nested
template reached through a resource_registry mapping, conditions in both
templates, ``repeat``, ``yaql`` and a RandomString, converged

- by setpoint-agent processes on a local store, its outputs read back with
  ``setpoint status --repo``;
- by Heat's own agent (os-collect-config, heat-config, hook-script.py) on the
  test suite's real Swift, where the nested deployment's ``deploy_stdout`` and
  ``deploy_status_code`` flow into another deployment, and os-collect-config
  caches the nested os-apply-config deployment under its quoted path.

The Heat agent and its venv are those of ``test_e2e_heat_agent``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from setpoint.controller.cli.main import main
from setpoint.controller.converge.reconcile import Reconciler
from setpoint.controller.definitions.loader import load_model
from setpoint.controller.definitions.render_secret import create_render_secret, load_render_secret
from setpoint.controller.definitions.repository import GitRepo, init_repo_from_dir
from setpoint.store.documents import Report
from setpoint.store.local import LocalStore
from setpoint.store.url import open_store
from tests.e2e.test_e2e_heat_agent import (
    converge,
    heat_venv,  # noqa: F401 -- the fixture, shared
    lay_out_root,
)

pytestmark = pytest.mark.e2e

CORPUS = Path(__file__).resolve().parents[1] / "controller" / "heat_corpus"
SAID = "schema ready: GRANT ALL TO alice; GRANT ALL TO bob\n"


def site_repo(tmp_path: Path) -> tuple[Path, Path]:
    """The site's definitions repository and a render secret for it."""
    src = tmp_path / "src"
    (src / "stacks/nested").mkdir(parents=True)
    (src / "inventory.yaml").write_text("kind: Inventory\nservers:\n  db-1: {}\n")
    for rel in ("site.yaml", "site.env.yaml", "nested/site_database.yaml"):
        (src / "stacks" / rel).write_text((CORPUS / rel).read_text())
    init_repo_from_dir(src, tmp_path / "repo", "A site with a nested database")
    secret = tmp_path / "site.render-secret"
    create_render_secret(secret)
    return tmp_path / "repo", secret


def password_of(repo: Path, secret: Path) -> str:
    with GitRepo.open(repo) as git:
        model = load_model(git.tree("HEAD"), render_secret=load_render_secret(secret))
    return str(model.deployment("site/database/schema").input_values["password"])


def check_report(report: Report | None) -> None:
    """What every agent reports for the site, whichever agent it is."""
    assert report is not None
    schema = report.deployments["site/database/schema"]
    assert (schema.outputs["deploy_stdout"], schema.outputs["deploy_status_code"]) == (SAID, 0)
    assert schema.outputs["deploy_stderr"] == "password of 16 characters\n"
    assert report.deployments["site/database/audit"].outputs["deploy_stdout"] == (
        "auditing alice\n"
    )
    summary = report.deployments["site/report"].outputs["summary"]
    assert summary == f"{SAID}|0|hi alice, hi bob|testing"
    assert "site/backup" not in report.deployments  # left out by its condition
    settings = report.deployments["site/database/settings"]
    assert settings.status == "COMPLETE"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "setpoint.controller.cli", "--log-level", "warning", *args],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def test_the_site_converges_with_agent_processes(
    tmp_path: Path, start_agents: Callable[..., object]
) -> None:
    repo, secret = site_repo(tmp_path)
    store = tmp_path / "store"
    start_agents(store, ("db-1",))
    given = ["--repo", str(repo), "--render-secret", str(secret)]
    result = cli(
        "reconcile", *given, "--store", str(store), "--wait", "--timeout", "90",
        "--interval", "0.1", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["converged"] is True
    check_report(LocalStore(store).read_report("db-1"))

    status = cli("status", "--store", str(store), *given, "--json")
    assert status.returncode == 0, status.stderr
    outputs = {o["name"]: o["value"] for o in json.loads(status.stdout)["outputs"]}
    assert outputs == {"summary": f"{SAID}|0|hi alice, hi bob|testing"}
    logs = cli("logs", "db-1", "--store", str(store))
    assert logs.returncode == 0, logs.stderr
    assert "schema ready" in logs.stdout
    assert password_of(repo, secret) not in logs.stdout + status.stdout


def test_the_site_converges_on_heats_own_agent_on_swift(
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
    repo, secret = site_repo(tmp_path)
    url = f"swift://site-{uuid.uuid4().hex[:10]}"
    store = open_store(url)
    store.set_temp_url_key(1, "heat-agent-secret")  # type: ignore[attr-defined]
    enroll = ["enroll", "db-1", "--repo", str(repo), "--render-secret", str(secret)]
    assert main([*enroll, "--store", url, "--agent", "heat"]) == 0
    root = tmp_path / "db-1"
    env = lay_out_root(heat_venv, root, capsys.readouterr().out)

    with GitRepo.open(repo) as git:
        reconciler = Reconciler(git, store, render_secret=load_render_secret(secret))
        converge(reconciler, heat_venv, root, env)

    check_report(store.read_report("db-1"))
    # os-collect-config cached the nested os-apply-config deployment as one
    # file: its path quoted, not directories it cannot write.
    cached = json.loads((root / "cache" / "site%2Fdatabase%2Fsettings.json").read_text())
    assert cached == {"database": {"users": ["alice", "bob"]}}
    # The report keeps it out; heat-agents' hook-script.py logs every input
    # value to the server's own log (Heat's agent, as under Heat).
    password = password_of(repo, secret)
    report = store.read_report("db-1")
    assert report is not None
    assert password not in json.dumps(report.to_dict())
    assert password in (root / "heat-agent.log").read_text()
