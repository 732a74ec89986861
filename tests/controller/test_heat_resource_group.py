"""OS::Heat::ResourceGroup of deployments (and of template resources): count
members, %index% (or index_var) substituted, get_attr over the members, and
removal_policies rejected with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from setpoint.controller.definitions.loader import load_model
from setpoint.controller.errors import InvalidDefinitions
from tests.controller.test_heat_nested import GREET
from tests.controller.test_heat_templates import MakeFleet, dedent, make_fleet

__all__ = ["make_fleet"]  # the fixture, used by name

WORKERS = """
heat_template_version: 2016-10-14
parameters:
  count:
    type: number
    default: 3
  log:
    type: string
resources:
  server1:
    type: OS::Nova::Server
  config:
    type: OS::Heat::SoftwareConfig
    properties:
      group: script
      inputs:
      - name: label
      outputs:
      - name: got
      config: |
        #!/bin/sh
        echo -n "$label" > $heat_outputs_path.got
  workers:
    type: OS::Heat::ResourceGroup
    properties:
      count: {get_param: count}
      resource_def:
        type: OS::Heat::SoftwareDeployment
        properties:
          config: {get_resource: config}
          server: {get_resource: server1}
          input_values:
            label: worker-%index%
  collect_config:
    type: OS::Heat::SoftwareConfig
    properties:
      group: script
      config: |
        #!/bin/sh
        echo "$second | $all" >> $log
  collect:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: collect_config}
      server: {get_resource: server1}
      input_values:
        all: {list_join: [",", {get_attr: [workers, got]}]}
        second: {get_attr: [workers, resource.1, got]}
        log: {get_param: log}
"""


def test_a_group_of_deployments_renders_each_member_and_converges(
    make_fleet: MakeFleet, tmp_path: Path
) -> None:
    log = tmp_path / "collect.log"
    fleet = make_fleet(
        {
            "stacks/app.yaml": dedent(WORKERS),
            "stacks/app.env.yaml": f"parameter_defaults:\n  log: {log}\n",
        }
    )
    model = fleet.model()
    members = ["app/workers/0", "app/workers/1", "app/workers/2"]
    assert [d.qualified for d in model.deployments()] == [*members, "app/collect"]
    assert model.deployment("app/workers/2").input_values == {"label": "worker-2"}
    assert model.deployment("app/collect").upstreams() == set(members)
    fleet.converge()
    assert log.read_text().splitlines() == ["worker-1 | worker-0,worker-1,worker-2"]


def test_index_var_and_a_group_of_template_resources(make_fleet: MakeFleet) -> None:
    template = """
    heat_template_version: 2016-10-14
    resources:
      server1:
        type: OS::Nova::Server
      greeters:
        type: OS::Heat::ResourceGroup
        properties:
          count: 2
          index_var: "@n"
          resource_def:
            type: nested/greet.yaml
            properties:
              server: {get_resource: server1}
              greeting: hello-@n-%index%
    """
    fleet = make_fleet(
        {"stacks/app.yaml": dedent(template), "stacks/nested/greet.yaml": dedent(GREET)}
    )
    model = fleet.model()
    assert [d.qualified for d in model.deployments()] == [
        "app/greeters/0/deployment",
        "app/greeters/1/deployment",
    ]
    assert model.deployment("app/greeters/1/deployment").input_values == {
        "greeting": "hello-1-%index%"
    }


def test_removal_policies_are_rejected(make_fleet: MakeFleet) -> None:
    template = WORKERS.replace(
        "      count: {get_param: count}\n",
        "      count: {get_param: count}\n      removal_policies: [{resource_list: ['0']}]\n",
    )
    env = "parameter_defaults:\n  log: /dev/null\n"
    fleet = make_fleet({"stacks/app.yaml": dedent(template), "stacks/app.env.yaml": env})
    with pytest.raises(InvalidDefinitions) as caught:
        fleet.model()
    assert [str(p) for p in caught.value.problems] == [
        "stacks/app.yaml:26: resources.workers.properties.removal_policies: removal_policies "
        "is not supported by setpoint: a group's members are always 0 to count - 1 (lower "
        "count to remove the last ones)"
    ]


def test_a_group_of_servers_is_not_managed(make_fleet: MakeFleet) -> None:
    template = """
    heat_template_version: 2016-10-14
    resources:
      servers:
        type: OS::Heat::ResourceGroup
        properties:
          count: 2
          resource_def:
            type: OS::Nova::Server
    """
    fleet = make_fleet({"stacks/app.yaml": dedent(template)})
    warnings: list[str] = []
    load_model(fleet.repo.tree("HEAD"), on_problem=lambda p: warnings.append(str(p)))
    assert warnings == [
        "stacks/app.yaml:4: resources.servers.type: OS::Heat::ResourceGroup is not managed "
        "by setpoint"
    ]


REFERENCES = """
heat_template_version: 2016-10-14
parameters:
  log:
    type: string
resources:
  server1:
    type: OS::Nova::Server
  config:
    type: OS::Heat::SoftwareConfig
    properties:
      group: script
      inputs:
      - name: label
      outputs:
      - name: got
      config: |
        #!/bin/sh
        echo -n "$label" > $heat_outputs_path.got
  workers:
    type: OS::Heat::ResourceGroup
    properties:
      count: 2
      resource_def:
        type: OS::Heat::SoftwareDeployment
        properties:
          config: {get_resource: config}
          server: {get_resource: server1}
          input_values:
            label: worker-%index%
  collect_config:
    type: OS::Heat::SoftwareConfig
    properties:
      group: script
      inputs:
      - name: by_index
        type: Json
      - name: got
        type: Json
      - name: removed
        type: Json
      config: |
        #!/bin/sh
        echo "$refs | $first | $second | $by_index | $got | $removed" >> $log
  collect:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: collect_config}
      server: {get_resource: server1}
      input_values:
        refs: {list_join: [",", {get_attr: [workers, refs]}]}
        first: {get_attr: [workers, refs, 0]}
        second: {get_attr: [workers, resource.1]}
        by_index: {get_attr: [workers, refs_map]}
        got: {get_attr: [workers, attributes, got]}
        removed: {get_attr: [workers, removed_rsrc_list]}
        log: {get_param: log}
"""


def test_refs_refs_map_attributes_and_removed_rsrc_list_of_a_group(
    make_fleet: MakeFleet, tmp_path: Path
) -> None:
    """As Heat's ResourceGroup gives them: a member's reference is what
    get_resource of it gives (a deployment's is its name in setpoint);
    refs_map and attributes are keyed by the member's index; setpoint never
    removes members by name, so removed_rsrc_list is empty."""
    log = tmp_path / "collect.log"
    fleet = make_fleet(
        {
            "stacks/app.yaml": dedent(REFERENCES),
            "stacks/app.env.yaml": f"parameter_defaults:\n  log: {log}\n",
        }
    )
    model = fleet.model()
    collect = model.deployment("app/collect")
    assert collect.input_values["refs"] == "app/workers/0,app/workers/1"
    assert collect.input_values["first"] == "app/workers/0"
    assert collect.input_values["second"] == "app/workers/1"
    assert collect.input_values["by_index"] == {"0": "app/workers/0", "1": "app/workers/1"}
    assert collect.input_values["removed"] == []
    assert collect.upstreams() == {"app/workers/0", "app/workers/1"}
    fleet.converge()
    assert log.read_text().splitlines() == [
        "app/workers/0,app/workers/1 | app/workers/0 | app/workers/1 | "
        '{"0":"app/workers/0","1":"app/workers/1"} | {"0":"worker-0","1":"worker-1"} | []'
    ]


def test_attributes_of_a_group_needs_the_attribute_name(make_fleet: MakeFleet) -> None:
    template = REFERENCES.replace("[workers, attributes, got]", "[workers, attributes]")
    env = "parameter_defaults:\n  log: /dev/null\n"
    fleet = make_fleet({"stacks/app.yaml": dedent(template), "stacks/app.env.yaml": env})
    with pytest.raises(InvalidDefinitions) as caught:
        fleet.model()
    assert [str(p) for p in caught.value.problems] == [
        "stacks/app.yaml:54: resources.collect.properties.input_values.got.get_attr: "
        "get_attr: attributes of ResourceGroup 'workers' takes the name of the members' "
        "attribute after it"
    ]


def test_refs_of_a_group_of_template_resources_are_their_nested_stacks(
    make_fleet: MakeFleet,
) -> None:
    template = """
    heat_template_version: 2016-10-14
    resources:
      server1:
        type: OS::Nova::Server
      greeters:
        type: OS::Heat::ResourceGroup
        properties:
          count: 2
          resource_def:
            type: nested/greet.yaml
            properties:
              server: {get_resource: server1}
              greeting: hello-%index%
      show_config:
        type: OS::Heat::SoftwareConfig
        properties:
          group: script
          config: "#!/bin/sh\\n"
      show:
        type: OS::Heat::SoftwareDeployment
        properties:
          config: {get_resource: show_config}
          server: {get_resource: server1}
          input_values:
            stacks: {list_join: [" ", {get_attr: [greeters, refs]}]}
            said: {list_join: [" ", {get_attr: [greeters, said]}]}
    """
    fleet = make_fleet(
        {"stacks/app.yaml": dedent(template), "stacks/nested/greet.yaml": dedent(GREET)}
    )
    show = fleet.model().deployment("app/show")
    assert show.input_values["stacks"] == "app/greeters/0 app/greeters/1"
    fleet.converge()
    assert show.upstreams() == {"app/greeters/0/deployment", "app/greeters/1/deployment"}


def test_get_resource_of_a_group_is_its_name_in_setpoint(
    make_fleet: MakeFleet, tmp_path: Path
) -> None:
    """Heat gives a ResourceGroup's (or a deployment group's) physical id, a
    string; setpoint gives its name, ``<stack>/<group>``, as it does for a
    deployment: the same on every render. The reference orders the
    deployment after every member, as Heat's dependency on the group does."""
    log = tmp_path / "collect.log"
    template = WORKERS.replace(
        "        log: {get_param: log}\n",
        "        log: {get_param: log}\n"
        "        group: {get_resource: workers}\n"
        "        deployments: {get_resource: everywhere}\n",
    ).replace('echo "$second | $all"', 'echo "$group $deployments"')
    template += (
        "  everywhere:\n"
        "    type: OS::Heat::SoftwareDeploymentGroup\n"
        "    properties:\n"
        "      config: {get_resource: config}\n"
        "      servers: {a: {get_resource: server1}}\n"
        "      input_values: {label: everywhere}\n"
    )
    fleet = make_fleet(
        {
            "stacks/app.yaml": dedent(template),
            "stacks/app.env.yaml": f"parameter_defaults:\n  log: {log}\n",
        }
    )
    collect = fleet.model().deployment("app/collect")
    assert (collect.input_values["group"], collect.input_values["deployments"]) == (
        "app/workers",
        "app/everywhere",
    )
    assert collect.upstreams() == {
        "app/workers/0",
        "app/workers/1",
        "app/workers/2",
        "app/everywhere",
    }
    fleet.converge()
    assert log.read_text().splitlines() == ["app/workers app/everywhere"]
