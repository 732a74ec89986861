"""A Heat template converged by agents running as processes on a local store."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from setpoint.controller.definitions.repository import init_repo_from_dir
from setpoint.store.local import LocalStore

pytestmark = pytest.mark.e2e

TEMPLATE = """\
heat_template_version: 2018-08-31
description: A sequence and a group, as in Heat's software-config examples.
parameters:
  greeting: {type: string, default: hello}
  key_name: {type: string}
resources:
  db:
    type: OS::Heat::DeployedServer
  web1:
    type: OS::Nova::Server
    properties: {key_name: {get_param: key_name}}
  web2:
    type: OS::Nova::Server
    properties: {key_name: {get_param: key_name}}
  say:
    type: OS::Heat::SoftwareConfig
    properties:
      group: script
      inputs:
      - name: message
      outputs:
      - name: said
      config: |
        #!/bin/sh
        printf "%s from %s" "$message" "$deploy_server_id" > $heat_outputs_path.said
        echo "$deploy_resource_name on $deploy_server_id: $message"
  first:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: say}
      server: {get_resource: db}
      input_values:
        message: {get_param: greeting}
  web:
    type: OS::Heat::SoftwareDeploymentGroup
    properties:
      config: {get_resource: say}
      servers:
        one: {get_resource: web1}
        two: {get_resource: web2}
      input_values:
        message:
          list_join: [" + ", [{get_attr: [first, deploy_stdout]}, {get_attr: [first, said]}]]
  collect:
    type: OS::Heat::SoftwareConfig
    properties:
      group: script
      inputs:
      - name: message
        type: Json
      outputs:
      - name: said
      config: |
        #!/bin/sh
        printf "%s from %s" "$message" "$deploy_server_id" > $heat_outputs_path.said
        echo "$deploy_resource_name on $deploy_server_id: $message"
  last:
    type: OS::Heat::SoftwareDeployment
    depends_on: web
    properties:
      config: {get_resource: collect}
      server: {get_resource: db}
      input_values:
        message: {get_attr: [web, said]}
"""

ENV = """\
setpoint:
  servers: {db: db-1, web1: web-1, web2: web-2}
"""

INVENTORY = """\
kind: Inventory
servers: {db-1: {}, web-1: {}, web-2: {}}
"""


def test_a_heat_template_converges_with_agent_processes(
    tmp_path: Path, start_agents: Callable[..., object]
) -> None:
    src = tmp_path / "src"
    (src / "stacks").mkdir(parents=True)
    (src / "inventory.yaml").write_text(INVENTORY)
    (src / "stacks/app.yaml").write_text(TEMPLATE)
    (src / "stacks/app.env.yaml").write_text(ENV)
    repo = tmp_path / "repo"
    init_repo_from_dir(src, repo, "A Heat template, as it is")
    store_dir = tmp_path / "store"
    start_agents(store_dir)
    result = subprocess.run(
        [
            sys.executable, "-m", "setpoint.controller.cli", "--log-level", "warning", "reconcile",
            "--repo", str(repo), "--store", str(store_dir), "--wait", "--timeout", "60",
            "--interval", "0.1", "--json",
        ],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["converged"] is True

    store = LocalStore(store_dir)
    web2 = store.read_report("web-2")
    db = store.read_report("db-1")
    assert web2 is not None
    assert db is not None
    first = "first on db-1: hello\n + hello from db-1"
    assert web2.deployments["app/web"].outputs["said"] == f"{first} from web-2"
    last = json.loads(db.deployments["app/last"].outputs["said"].rsplit(" from ", 1)[0])
    assert last == {"one": f"{first} from web-1", "two": f"{first} from web-2"}
    assert textwrap.dedent(db.deployments["app/last"].outputs["deploy_stdout"]).startswith(
        "last on db-1: {"
    )
