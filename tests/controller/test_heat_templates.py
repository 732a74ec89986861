"""Heat templates under stacks/, read as they are: loaded, rendered, planned and
converged with real agents running in-process (the hooks run as processes).

The templates are written for this project in the style of Heat's own
software-config examples (heat-templates/hot/software-config/example-templates).
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from setpoint.agentshim.agent import Agent
from setpoint.controller.converge.reconcile import Reconciler
from setpoint.controller.definitions.loader import load_model
from setpoint.controller.definitions.model import Model
from setpoint.controller.definitions.repository import GitRepo, commit_all, init_repo_from_dir
from setpoint.controller.errors import InvalidDefinitions, Problem
from setpoint.controller.rollout.plan import make_plan
from setpoint.controller.rollout.plan_format import format_text
from setpoint.store.base import Store
from setpoint.store.documents import Report
from setpoint.store.memory import MemoryStore

INVENTORY = """\
kind: Inventory
servers:
  server1: {}
  server2: {}
  server3: {}
"""

# An external hook (the heat-config contract) that keeps the config it was given.
KEEP_HOOK = """\
#!/usr/bin/env python3
import json, os, sys
doc = json.load(sys.stdin)
inputs = {i["name"]: i["value"] for i in doc["inputs"]}
name = inputs["deploy_server_id"] + "-" + inputs["deploy_resource_name"]
path = os.path.join(os.environ["KEEP_DIR"], name)
with open(path, "w") as f:
    json.dump({"config": doc["config"], "action": inputs["deploy_action"]}, f)
print(json.dumps({"deploy_stdout": "kept", "deploy_status_code": 0}))
"""


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


class HeatFleet:
    """A definitions repository with Heat templates, a store and real agents."""

    def __init__(self, root: Path, files: dict[str, str], store: Store | None = None) -> None:
        self.root = root
        src = root / "src"
        for rel, text in {"inventory.yaml": INVENTORY, **files}.items():
            path = src / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self.repo_path = root / "repo"
        init_repo_from_dir(src, self.repo_path, "initial")
        self.repo = GitRepo.open(self.repo_path)
        self.store = store or MemoryStore("heat")
        self.now = 1_700_000_000.0
        self.reconciler = Reconciler(self.repo, self.store, clock=lambda: self.now)
        hooks = root / "hooks"
        hooks.mkdir()
        (hooks / "keep").write_text(KEEP_HOOK)
        (hooks / "keep").chmod(0o755)
        self.kept = root / "kept"
        self.kept.mkdir()
        os.environ["KEEP_DIR"] = str(self.kept)
        self.agents = {
            s: Agent(self.store, s, root / "agents" / s, hooks_dir=hooks, max_attempts=1)
            for s in ("server1", "server2", "server3")
        }

    def model(self) -> Model:
        return load_model(self.repo.tree("HEAD"))

    def commit(self, files: dict[str, str | None]) -> None:
        for rel, text in files.items():
            path = self.repo_path / rel
            if text is None:
                path.unlink()
            else:
                path.write_text(text)
        commit_all(self.repo_path, "change")

    def converge(self, limit: int = 12) -> int:
        for n in range(1, limit + 1):
            outcome = self.reconciler.run_pass()
            assert not outcome.failed, outcome.failed
            if outcome.converged:
                return n
            for server, agent in self.agents.items():
                if self.store.read_pointer(server) is not None:
                    agent.run_once()
        why = [str(w) for w in outcome.waiting]
        raise AssertionError(f"not converged after {limit} passes: {outcome.summary()} {why}")

    def report(self, server: str) -> Report:
        got = self.store.read_report(server)
        assert got is not None
        return got


MakeFleet = Callable[[dict[str, str]], HeatFleet]


@pytest.fixture
def make_fleet(tmp_path: Path) -> Iterator[MakeFleet]:
    fleets: list[HeatFleet] = []

    def make(files: dict[str, str]) -> HeatFleet:
        fleet = HeatFleet(tmp_path, files)
        fleets.append(fleet)
        return fleet

    yield make
    for fleet in fleets:
        fleet.repo.close()


def values_of(body: dict[str, Any]) -> dict[str, object]:
    return {i["name"]: i["value"] for i in body["inputs"]}


# -- a script config deployed twice, with SUSPEND and RESUME ---------------------------

DEPLOY_TWICE = """
heat_template_version: 2016-10-14
description: One script config, deployed twice with different inputs.
parameters:
  log:
    type: string
  flavor:
    type: string
    description: Used only by the server, which setpoint does not create.
resources:
  server1:
    type: OS::Nova::Server
    properties:
      image: fedora
      flavor: {get_param: flavor}
  private_net:
    type: OS::Neutron::Net
  config:
    type: OS::Heat::SoftwareConfig
    properties:
      group: script
      inputs:
      - name: foo
      - name: bar
      outputs:
      - name: result
      config: |
        #!/bin/sh -e
        echo "$deploy_action $deploy_resource_name $foo $bar" >> $log
        echo -n "The file /tmp/$bar contains $foo" > $heat_outputs_path.result
        echo "Written to /tmp/$bar"
  deployment_a:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: config}
      server: {get_resource: server1}
      actions: [CREATE, UPDATE, SUSPEND, RESUME]
      signal_transport: HEAT_SIGNAL
      input_values:
        foo: fooooo
        bar: baaaaa
        log: {get_param: log}
  deployment_b:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: config}
      server: {get_resource: server1}
      actions: [CREATE, UPDATE, SUSPEND, RESUME]
      input_values:
        foo: fooooo2
        bar: baaaaa2
        log: {get_param: log}
outputs:
  result_a:
    value: {get_attr: [deployment_a, result]}
"""


def env(log: Path, extra: str = "") -> str:
    return f"parameter_defaults:\n  log: {log}\n{extra}"


def test_a_script_config_deployed_twice_suspends_and_resumes(
    make_fleet: MakeFleet, tmp_path: Path
) -> None:
    log = tmp_path / "actions.log"
    fleet = make_fleet(
        {"stacks/twice.yaml": dedent(DEPLOY_TWICE), "stacks/twice.env.yaml": env(log)}
    )
    problems: list[Problem] = []
    model = load_model(fleet.repo.tree("HEAD"), on_problem=problems.append)
    assert [d.qualified for d in model.deployments()] == [
        "twice/deployment_a",
        "twice/deployment_b",
    ]
    assert [(p.line, p.message) for p in problems] == [
        (16, "OS::Neutron::Net is not managed by setpoint")
    ]
    plan = format_text(make_plan(None, model))
    assert "twice/deployment_a" in plan
    assert 'foo = "fooooo"' in plan

    fleet.converge()
    assert sorted(log.read_text().splitlines()) == [
        "CREATE deployment_a fooooo baaaaa",
        "CREATE deployment_b fooooo2 baaaaa2",
    ]
    report = fleet.report("server1").deployments
    assert report["twice/deployment_a"].outputs == {
        "result": "The file /tmp/baaaaa contains fooooo",
        "deploy_stdout": "Written to /tmp/baaaaa\n",
        "deploy_stderr": "",
        "deploy_status_code": 0,
    }

    fleet.commit({"stacks/twice.env.yaml": env(log, "setpoint:\n  state: suspended\n")})
    fleet.converge()
    assert sorted(log.read_text().splitlines()[2:]) == [
        "SUSPEND deployment_a fooooo baaaaa",
        "SUSPEND deployment_b fooooo2 baaaaa2",
    ]
    fleet.commit({"stacks/twice.env.yaml": env(log)})
    fleet.converge()
    assert sorted(log.read_text().splitlines()[4:]) == [
        "RESUME deployment_a fooooo baaaaa",
        "RESUME deployment_b fooooo2 baaaaa2",
    ]


# -- B takes A's deploy_stdout, C depends_on B ------------------------------------------

SEQUENCE = """
heat_template_version: 2016-10-14
parameters:
  log:
    type: string
resources:
  server1:
    type: OS::Heat::DeployedServer
  config:
    type: OS::Heat::SoftwareConfig
    properties:
      group: script
      inputs:
      - name: previous
        default: "NONE"
      config: |
        #!/bin/sh
        echo "$deploy_resource_name got [$previous]" >> $log
        echo "from $deploy_resource_name"
  A:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: config}
      server: {get_resource: server1}
      input_values:
        log: {get_param: log}
  B:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: config}
      server: {get_resource: server1}
      input_values:
        log: {get_param: log}
        previous:
          str_replace:
            template: "A said: $out"
            params:
              $out: {get_attr: [A, deploy_stdout]}
  C:
    type: OS::Heat::SoftwareDeployment
    depends_on: B
    properties:
      config: {get_resource: config}
      server: {get_resource: server1}
      input_values:
        log: {get_param: log}
"""


def test_b_takes_a_stdout_and_c_depends_on_b(make_fleet: MakeFleet, tmp_path: Path) -> None:
    log = tmp_path / "sequence.log"
    fleet = make_fleet({"stacks/seq.yaml": dedent(SEQUENCE), "stacks/seq.env.yaml": env(log)})
    model = fleet.model()
    assert [d.name for d in model.deployments()] == ["A", "B", "C"]
    assert model.deployment("seq/C").depends_on == ("seq/B",)
    assert model.deployment("seq/B").upstreams() == {"seq/A"}
    plan = format_text(make_plan(None, model))
    assert "known after apply" in plan

    first = fleet.reconciler.run_pass()
    assert [e.name for e in first.desired.manifests["server1"].deployments] == ["seq/A"]
    fleet.converge()
    assert log.read_text().splitlines() == [
        "A got [NONE]",
        "B got [A said: from A",
        "]",
        "C got [NONE]",
    ]


# -- a deployment group over two servers, its outputs as a map --------------------------

GROUP = """
heat_template_version: 2016-10-14
resources:
  first:
    type: OS::Nova::Server
  second:
    type: OS::Nova::Server
  collector:
    type: OS::Nova::Server
  name_config:
    type: OS::Heat::SoftwareConfig
    properties:
      group: script
      outputs:
      - name: host
      config: |
        #!/bin/sh
        echo -n "host-$deploy_server_id" > $heat_outputs_path.host
        echo "hello from $deploy_server_id"
  names:
    type: OS::Heat::SoftwareDeploymentGroup
    update_policy:
      rolling_update: {max_batch_size: 1}
    properties:
      config: {get_resource: name_config}
      servers:
        web_a: {get_resource: first}
        web_b: {get_resource: second}
  collect_config:
    type: OS::Heat::SoftwareConfig
    properties:
      group: script
      inputs:
      - name: hosts
        type: Json
      outputs:
      - name: joined
      config: |
        #!/bin/sh
        echo -n "$hosts $stdouts $codes $one" > $heat_outputs_path.joined
  collect:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: collect_config}
      server: {get_resource: collector}
      input_values:
        hosts: {get_attr: [names, host]}
        stdouts: {get_attr: [names, deploy_stdouts]}
        codes: {get_attr: [names, deploy_status_codes]}
        one: {get_attr: [names, host, web_b]}
"""

GROUP_ENV = """
setpoint:
  servers:
    first: server1
    second: server2
    collector: server3
"""


def test_a_group_over_two_servers_gives_its_outputs_as_a_map(
    make_fleet: MakeFleet,
) -> None:
    fleet = make_fleet(
        {"stacks/group.yaml": dedent(GROUP), "stacks/group.env.yaml": dedent(GROUP_ENV)}
    )
    model = fleet.model()
    names = model.deployment("group/names")
    assert names.servers == ("server1", "server2")
    assert names.update_policy is not None
    assert names.update_policy.max_batch_size == 1
    fleet.converge()
    collect = fleet.report("server3").deployments["group/collect"]
    digest = collect.config
    inputs = values_of(fleet.store.get_json_blob(digest))
    assert inputs["hosts"] == {"web_a": "host-server1", "web_b": "host-server2"}
    assert inputs["stdouts"] == {
        "web_a": "hello from server1\n",
        "web_b": "hello from server2\n",
    }
    assert inputs["codes"] == {"web_a": 0, "web_b": 0}
    assert inputs["one"] == "host-server2"
    assert collect.outputs["joined"].startswith('{"web_a":"host-server1","web_b":"host-server2"} ')


# -- a structured config with get_input --------------------------------------------------

STRUCTURED = """
heat_template_version: 2016-10-14
parameters:
  port: {type: number, default: 8080}
resources:
  server1:
    type: OS::Nova::Server
  config:
    type: OS::Heat::StructuredConfig
    properties:
      group: keep
      inputs:
      - name: port
        type: Number
      - name: motd
        default: welcome
      config:
        listen: {get_input: port}
        banner:
          text: {get_input: motd}
          missing: {get_input: nothing_here}
        static: [1, {get_param: port}]
  deployment:
    type: OS::Heat::StructuredDeployment
    properties:
      config: {get_resource: config}
      server: {get_resource: server1}
      input_values:
        port: {get_param: port}
"""


def test_a_structured_config_gets_its_inputs(make_fleet: MakeFleet) -> None:
    fleet = make_fleet({"stacks/structured.yaml": dedent(STRUCTURED)})
    fleet.converge()
    kept = json.loads((fleet.kept / "server1-deployment").read_text())
    assert kept == {
        "config": {
            "listen": 8080,
            "banner": {"text": "welcome", "missing": None},
            "static": [1, 8080],
        },
        "action": "CREATE",
    }
    # A STRICT deployment names the input nobody gives.
    strict = dedent(STRUCTURED).replace(
        "        port: {get_param: port}\n",
        "        port: {get_param: port}\n      input_values_validate: STRICT\n",
    )
    fleet.commit({"stacks/structured.yaml": strict})
    with pytest.raises(InvalidDefinitions) as err:
        fleet.model()
    assert [(p.file, p.line) for p in err.value.problems] == [("stacks/structured.yaml", 27)]
    assert "no value for input 'nothing_here' (STRICT)" in str(err.value)


# -- a multipart MIME config ------------------------------------------------------------

MIME = """
heat_template_version: 2016-10-14
resources:
  server1:
    type: OS::Nova::Server
  boot_script:
    type: OS::Heat::SoftwareConfig
    properties:
      config: |
        #!/bin/sh
        echo booted
  users:
    type: OS::Heat::CloudConfig
    properties:
      cloud_config:
        users: [{name: ops, sudo: "ALL=(ALL) NOPASSWD:ALL"}]
  init:
    type: OS::Heat::MultipartMime
    properties:
      group: keep
      parts:
      - config: {get_resource: users}
      - config: {get_resource: boot_script}
        filename: boot.sh
        subtype: x-shellscript
      - config: "plain words"
  deployment:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: init}
      server: {get_resource: server1}
"""


def test_a_multipart_mime_config_is_the_same_bytes_every_time(
    make_fleet: MakeFleet,
) -> None:
    fleet = make_fleet({"stacks/mime.yaml": dedent(MIME)})
    first = fleet.model().components["mime/deployment"].configs[0].config
    again = load_model(fleet.repo.tree("HEAD")).components["mime/deployment"].configs[0].config
    assert first == again
    assert first.startswith('Content-Type: multipart/mixed; boundary="===============')
    assert "#cloud-config\nusers:\n- name: ops" in first
    assert 'Content-Type: text/x-shellscript; charset="us-ascii"' in first
    assert 'Content-Disposition: attachment; filename="boot.sh"' in first
    assert "plain words" in first
    fleet.converge()
    kept = json.loads((fleet.kept / "server1-deployment").read_text())
    assert kept["config"] == first


# -- a component with per-action configs ----------------------------------------------

COMPONENT = """
heat_template_version: 2016-10-14
parameters:
  log: {type: string}
  version: {type: string, default: "1"}
resources:
  server1:
    type: OS::Nova::Server
  component:
    type: OS::Heat::SoftwareComponent
    properties:
      inputs:
      - name: version
      configs:
      - actions: [CREATE]
        tool: script
        config: |
          #!/bin/sh
          echo "install $version" >> $log
      - actions: [UPDATE]
        tool: script
        config: |
          #!/bin/sh
          echo "upgrade to $version" >> $log
      - actions: [DELETE]
        tool: script
        config: |
          #!/bin/sh
          echo "remove $version" >> $log
  deployment:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: component}
      server: {get_resource: server1}
      actions: [CREATE, UPDATE, DELETE]
      input_values:
        version: {get_param: version}
        log: {get_param: log}
"""


def test_a_component_runs_the_config_of_each_action(make_fleet: MakeFleet, tmp_path: Path) -> None:
    log = tmp_path / "component.log"
    fleet = make_fleet({"stacks/comp.yaml": dedent(COMPONENT), "stacks/comp.env.yaml": env(log)})
    fleet.converge()
    fleet.commit({"stacks/comp.env.yaml": env(log, "parameters:\n  version: '2'\n")})
    fleet.converge()
    without = dedent(COMPONENT).split("  deployment:")[0]
    fleet.commit({"stacks/comp.yaml": without})
    fleet.converge()
    assert log.read_text().splitlines() == ["install 1", "upgrade to 2", "remove 2"]


# -- errors point at the template ------------------------------------------------------


NO_LOG = (
    "parameter 'log' has no value (give it a default, or a value in the environment "
    "file's parameter_defaults)"
)


def test_errors_name_the_template_file_and_line(make_fleet: MakeFleet) -> None:
    broken = dedent(SEQUENCE).replace("[A, deploy_stdout]", "[A, no_such_output]")
    broken = broken.replace("depends_on: B", "depends_on: Z")
    fleet = make_fleet({"stacks/bad.yaml": broken})
    with pytest.raises(InvalidDefinitions) as err:
        fleet.model()
    got = [(p.file, p.line, p.message) for p in err.value.problems]
    assert got == [
        ("stacks/bad.yaml", 25, NO_LOG),
        ("stacks/bad.yaml", 32, NO_LOG),
        (
            "stacks/bad.yaml",
            37,
            "get_attr: the config of 'A' declares no output 'no_such_output' "
            "(outputs: deploy_stdout, deploy_stderr, deploy_status_code)",
        ),
        ("stacks/bad.yaml", 40, "depends_on: unknown resource 'Z'"),
        ("stacks/bad.yaml", 45, NO_LOG),
    ]


def test_validate_warns_of_resources_setpoint_does_not_manage(
    make_fleet: MakeFleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from setpoint.controller.cli.main import main

    fleet = make_fleet(
        {
            "stacks/twice.yaml": dedent(DEPLOY_TWICE),
            "stacks/twice.env.yaml": env(tmp_path / "log"),
        }
    )
    assert main(["validate", "--repo", str(fleet.repo_path)]) == 0
    captured = capsys.readouterr()
    assert "2 deployments" in captured.out
    assert (
        "warning: stacks/twice.yaml:16: resources.private_net.type: "
        "OS::Neutron::Net is not managed by setpoint"
    ) in captured.err
