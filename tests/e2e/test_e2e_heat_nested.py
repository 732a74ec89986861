"""A Heat template with a nested template reached through resource_registry, a
RandomString, a ResourceGroup of deployments and a server's first_address,
converged by agents running as processes on a local store."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from setpoint.controller.definitions.loader import load_model
from setpoint.controller.definitions.render_secret import load_render_secret
from setpoint.controller.definitions.repository import GitRepo, init_repo_from_dir
from setpoint.store.local import LocalStore

pytestmark = pytest.mark.e2e

TEMPLATE = """\
heat_template_version: 2018-08-31
description: A database in a nested template, web slots that use it.
resources:
  db:
    type: OS::Heat::DeployedServer
  web1:
    type: OS::Nova::Server
  db_password:
    type: OS::Heat::RandomString
    properties:
      length: 20
      character_classes: [{class: hexdigits}]
  database:
    type: Setpoint::Database
    properties:
      server: {get_resource: db}
      password: {get_attr: [db_password, value]}
      address: {get_attr: [db, first_address]}
  web_config:
    type: OS::Heat::SoftwareConfig
    properties:
      group: script
      inputs: [{name: slot}, {name: dsn}, {name: password}]
      outputs: [{name: seen}]
      config: |
        #!/bin/sh
        sum=$(printf %s "$password" | sha256sum | cut -c1-8)
        printf "%s %s %s" "$slot" "$dsn" "$sum" > $heat_outputs_path.seen
  webs:
    type: OS::Heat::ResourceGroup
    properties:
      count: 2
      resource_def:
        type: OS::Heat::SoftwareDeployment
        properties:
          config: {get_resource: web_config}
          server: {get_resource: web1}
          input_values:
            slot: web-%index%
            dsn: {get_attr: [database, outputs, dsn]}
            password: {get_attr: [db_password, value]}
"""

DATABASE = """\
heat_template_version: 2018-08-31
parameters:
  server: {type: string}
  password: {type: string, hidden: true}
  address: {type: string}
resources:
  config:
    type: OS::Heat::SoftwareConfig
    properties:
      group: script
      inputs: [{name: password}, {name: address}]
      outputs: [{name: dsn}]
      config: |
        #!/bin/sh
        echo "creating the database with password $password"
        sum=$(printf %s "$password" | sha256sum | cut -c1-8)
        printf "db://app@%s/%s" "$address" "$sum" > $heat_outputs_path.dsn
  deployment:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: config}
      server: {get_param: server}
      input_values:
        password: {get_param: password}
        address: {get_param: address}
outputs:
  dsn:
    value: {get_attr: [deployment, dsn]}
"""

ENV = """\
resource_registry:
  Setpoint::Database: nested/database.yaml
setpoint:
  servers: {db: db-1, web1: web-1}
"""

INVENTORY = """\
kind: Inventory
servers:
  db-1: {first_address: 192.0.2.10}
  web-1: {}
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "setpoint.controller.cli", "--log-level", "warning", *args],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def test_nested_template_registry_and_random_string_converge(
    tmp_path: Path, start_agents: Callable[..., object]
) -> None:
    src = tmp_path / "src"
    (src / "stacks/nested").mkdir(parents=True)
    (src / "inventory.yaml").write_text(INVENTORY)
    (src / "stacks/app.yaml").write_text(TEMPLATE)
    (src / "stacks/app.env.yaml").write_text(ENV)
    (src / "stacks/nested/database.yaml").write_text(DATABASE)
    repo = tmp_path / "repo"
    init_repo_from_dir(src, repo, "A nested Heat template")
    assert cli("keygen", "ctl", "--out", str(tmp_path / "keys")).returncode == 0
    secret_file = tmp_path / "keys/ctl.render-secret"
    store_dir = tmp_path / "store"
    start_agents(store_dir, ("db-1", "web-1"))
    result = cli(
        "reconcile", "--repo", str(repo), "--store", str(store_dir), "--wait",
        "--timeout", "60", "--interval", "0.1", "--json", "--render-secret", str(secret_file),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["converged"] is True

    with GitRepo.open(repo) as opened:
        model = load_model(opened.tree("HEAD"), render_secret=load_render_secret(secret_file))
    password = str(model.deployment("app/database/deployment").input_values["password"])
    assert len(password) == 20
    dsn = "db://app@192.0.2.10/" + hashlib.sha256(password.encode()).hexdigest()[:8]

    store = LocalStore(store_dir)
    db, web = store.read_report("db-1"), store.read_report("web-1")
    assert db is not None
    assert web is not None
    database = db.deployments["app/database/deployment"]
    assert database.outputs["dsn"] == dsn
    assert password not in database.outputs["deploy_stdout"]
    for slot in (0, 1):
        seen = web.deployments[f"app/webs/{slot}"].outputs["seen"]
        assert seen == f"web-{slot} {dsn} {dsn.rsplit('/', 1)[1]}"

    logs = cli("logs", "db-1", "--store", str(store_dir))
    assert logs.returncode == 0, logs.stderr
    assert "creating the database with password" in logs.stdout
    assert password not in logs.stdout
