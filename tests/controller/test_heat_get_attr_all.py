"""``get_attr: [resource]`` (HOT 2015-10-15 on): every attribute of a resource
as a map, as Heat's ``GetAttAllAttributes`` gives it: its attribute schema
(a deployment's ``deploy_stdout``, ``deploy_stderr``, ``deploy_status_code``),
a nested template's outputs, a RandomString's ``value``, nothing of
``OS::Heat::None``. Converged with real agents (the hooks run as processes)."""

from __future__ import annotations

import json

import pytest

from setpoint.controller.definitions.heat.secrets import is_secret
from setpoint.controller.definitions.loader import load_model
from setpoint.controller.errors import InvalidDefinitions
from tests.controller.test_heat_nested import GREET
from tests.controller.test_heat_templates import MakeFleet, dedent, make_fleet

__all__ = ["make_fleet"]  # the fixture, used by name

TEMPLATE = """
heat_template_version: 2016-10-14
resources:
  server1:
    type: OS::Nova::Server
  pw:
    type: OS::Heat::RandomString
    properties: {length: 8}
  unused:
    type: OS::Heat::None
  greeter:
    type: nested/greet.yaml
    properties:
      server: {get_resource: server1}
      greeting: hello
  first_config:
    type: OS::Heat::SoftwareConfig
    properties:
      group: script
      outputs: [{name: extra}]
      config: |
        #!/bin/sh
        echo first
        echo oops >&2
        echo -n more > $heat_outputs_path.extra
  first:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: first_config}
      server: {get_resource: server1}
  echo_config:
    type: OS::Heat::SoftwareConfig
    properties:
      group: script
      inputs: [{name: everything}]
      outputs: [{name: seen}]
      config: |
        #!/bin/sh
        printf '%s' "$everything" > $heat_outputs_path.seen
  echo:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: echo_config}
      server: {get_resource: server1}
      input_values:
        everything:
          first: {get_attr: [first]}
          greeter: {get_attr: [greeter]}
          unused: {get_attr: [unused]}
        password: {get_attr: [pw]}
"""


def files(template: str = TEMPLATE) -> dict[str, str]:
    return {"stacks/app.yaml": dedent(template), "stacks/nested/greet.yaml": dedent(GREET)}


def test_every_attribute_of_a_resource_flows_as_a_map(make_fleet: MakeFleet) -> None:
    fleet = make_fleet(files())
    model = load_model(fleet.repo.tree("HEAD"), render_secret=bytes(32))
    echo = model.deployment("app/echo")
    assert echo.upstreams() == {"app/first", "app/greeter/deployment"}
    password = echo.input_values["password"]
    assert isinstance(password, dict)
    assert list(password) == ["value"]
    assert is_secret(password)
    fleet.reconciler.render_secret = bytes(32)
    fleet.converge()
    seen = fleet.report("server1").deployments["app/echo"].outputs["seen"]
    assert json.loads(str(seen)) == {
        # the schema's attributes, as in Heat: not the config's outputs (extra)
        "first": {"deploy_stdout": "first\n", "deploy_stderr": "oops\n", "deploy_status_code": 0},
        "greeter": {"said": "hello from greeter/deployment"},
        "unused": {},
    }


@pytest.mark.parametrize(
    ("version", "value", "message"),
    [
        (
            "2015-04-30",
            "{get_attr: [first]}",
            "get_attr takes [resource, attribute, ...] (the resource alone, for all its "
            "attributes, from heat_template_version 2015-10-15)",
        ),
        (
            "2016-10-14",
            "{get_attr: [server1]}",
            "get_attr: every attribute of a server is not known to setpoint: name the ones "
            "wanted (name, first_address, networks, addresses)",
        ),
    ],
)
def test_all_attributes_where_setpoint_cannot_give_them(
    make_fleet: MakeFleet, version: str, value: str, message: str
) -> None:
    template = (
        TEMPLATE.replace("2016-10-14", version)
        .replace("{get_attr: [first]}", value)
        .replace("{get_attr: [pw]}", "{get_attr: [pw, value]}")
    )
    fleet = make_fleet(files(template))
    with pytest.raises(InvalidDefinitions) as caught:
        load_model(fleet.repo.tree("HEAD"), render_secret=bytes(32))
    assert [p.message for p in caught.value.problems] == [message]
