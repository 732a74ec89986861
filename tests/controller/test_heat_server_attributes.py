"""A server resource's name, first_address, networks and addresses, read from
its inventory server's labels; a missing label is an error naming the label
and the server."""

from __future__ import annotations

import pytest

from setpoint.controller.errors import InvalidDefinitions
from tests.controller.test_heat_templates import MakeFleet, dedent, make_fleet

__all__ = ["make_fleet"]  # the fixture, used by name

INVENTORY = """
kind: Inventory
servers:
  web-1:
    name: web-1.example.org
    first_address: 10.0.0.5
    networks:
      private: [10.0.0.5, "fd00::5"]
    addresses:
      private:
      - {addr: 10.0.0.5, version: 4}
      - {addr: "fd00::5", version: 6}
  web-2: {}
"""

TEMPLATE = """
heat_template_version: 2016-10-14
resources:
  web:
    type: OS::Nova::Server
  config:
    type: OS::Heat::SoftwareConfig
    properties:
      group: script
      config: "#!/bin/sh\\n"
  setup:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: config}
      server: {get_resource: web}
      input_values:
        host: {get_attr: [web, name]}
        ip: {get_attr: [web, first_address]}
        v6: {get_attr: [web, networks, private, 1]}
        all: {get_attr: [web, addresses]}
        url:
          str_replace:
            template: http://HOST:80/
            params: {HOST: {get_attr: [web, first_address]}}
"""


def files(server: str) -> dict[str, str]:
    return {
        "inventory.yaml": dedent(INVENTORY),
        "stacks/app.yaml": dedent(TEMPLATE),
        "stacks/app.env.yaml": f"setpoint:\n  servers:\n    web: {server}\n",
    }


def test_server_attributes_come_from_inventory_labels(make_fleet: MakeFleet) -> None:
    model = make_fleet(files("web-1")).model()
    assert model.deployment("app/setup").input_values == {
        "host": "web-1.example.org",
        "ip": "10.0.0.5",
        "v6": "fd00::5",
        "all": {"private": [{"addr": "10.0.0.5", "version": 4}, {"addr": "fd00::5", "version": 6}]},
        "url": "http://10.0.0.5:80/",
    }


def test_a_missing_label_names_the_label_and_the_server(make_fleet: MakeFleet) -> None:
    with pytest.raises(InvalidDefinitions) as caught:
        make_fleet(files("web-2")).model()
    found = [str(p) for p in caught.value.problems]
    assert found[0] == (
        "stacks/app.yaml:17: resources.setup.properties.input_values.ip.get_attr: "
        "get_attr: first_address of server resource 'web': inventory server 'web-2' has no "
        "label 'first_address' (set servers.web-2.first_address)"
    )
    assert len(found) == 4  # first_address twice, networks, addresses; name has a default
