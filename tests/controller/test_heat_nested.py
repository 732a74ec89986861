"""Nested Heat templates: template resources, resource_registry mappings (in the
template's environment file and in a setpoint environment), parameters passed
down, outputs read back through get_attr, and the deployments inside named by
their path. Converged with real agents (the hooks run as processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from setpoint.controller.definitions.loader import load_model
from setpoint.controller.definitions.repository import GitRepo
from setpoint.controller.errors import InvalidDefinitions
from tests.controller.conftest import RepoFactory
from tests.controller.test_heat_templates import MakeFleet, dedent, make_fleet

__all__ = ["make_fleet"]  # the fixture, used by name

APP = """
heat_template_version: 2016-10-14
parameters:
  log:
    type: string
resources:
  server1:
    type: OS::Nova::Server
  greeter:
    type: nested/greet.yaml
    properties:
      server: {get_resource: server1}
      greeting: hello
  registered:
    type: My::Greeter
    properties:
      server: {get_resource: server1}
      greeting: hi
  report_config:
    type: OS::Heat::SoftwareConfig
    properties:
      group: script
      inputs:
      - name: first
      - name: second
      config: |
        #!/bin/sh
        echo "$first / $second" >> $log
  report:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: report_config}
      server: {get_resource: server1}
      input_values:
        first: {get_attr: [greeter, said]}
        second: {get_attr: [registered, outputs, said]}
        log: {get_param: log}
"""

GREET = """
heat_template_version: 2016-10-14
parameters:
  server:
    type: string
  greeting:
    type: string
resources:
  config:
    type: OS::Heat::SoftwareConfig
    properties:
      group: script
      inputs:
      - name: greeting
      outputs:
      - name: said
      config: |
        #!/bin/sh
        echo -n "$greeting from $deploy_resource_name" > $heat_outputs_path.said
  deployment:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: config}
      server: {get_param: server}
      input_values:
        greeting: {get_param: greeting}
outputs:
  said:
    value: {get_attr: [deployment, said]}
"""

REGISTRY_ENV = """
resource_registry:
  My::Greeter: nested/greet.yaml
parameter_defaults:
  log: {log}
"""


def app_files(log: Path) -> dict[str, str]:
    return {
        "stacks/app.yaml": dedent(APP),
        "stacks/app.env.yaml": dedent(REGISTRY_ENV).format(log=log),
        "stacks/nested/greet.yaml": dedent(GREET),
    }


def test_nested_deployments_are_named_by_their_path_and_converge(
    make_fleet: MakeFleet, tmp_path: Path
) -> None:
    log = tmp_path / "report.log"
    fleet = make_fleet(app_files(log))
    model = fleet.model()
    assert [d.qualified for d in model.deployments()] == [
        "app/greeter/deployment",
        "app/registered/deployment",
        "app/report",
    ]
    inner = model.deployment("app/registered/deployment")
    assert inner.file == "stacks/nested/greet.yaml"
    assert inner.input_values == {"greeting": "hi"}
    assert model.deployment("app/report").upstreams() == {
        "app/greeter/deployment",
        "app/registered/deployment",
    }
    fleet.converge()
    assert log.read_text().splitlines() == [
        "hello from greeter/deployment / hi from registered/deployment"
    ]


def test_a_nested_stack_waits_for_what_its_template_resource_refers_to(
    make_fleet: MakeFleet, tmp_path: Path
) -> None:
    chained = APP.replace(
        "      greeting: hi\n",
        "      greeting: {get_attr: [greeter, said]}\n",
    )
    files = {**app_files(tmp_path / "log"), "stacks/app.yaml": dedent(chained)}
    model = make_fleet(files).model()
    inner = model.deployment("app/registered/deployment")
    assert inner.upstreams() == {"app/greeter/deployment"}


def test_a_setpoint_environment_maps_types_too(make_fleet: MakeFleet, tmp_path: Path) -> None:
    files = app_files(tmp_path / "log")
    files["stacks/app.env.yaml"] = f"parameter_defaults:\n  log: {tmp_path / 'log'}\n"
    files["environments/prod.yaml"] = dedent("""
        kind: Environment
        resource_registry:
          My::Greeter: ../stacks/nested/greet.yaml
        """)
    fleet = make_fleet(files)
    with pytest.raises(InvalidDefinitions, match="My::Greeter"):
        fleet.model()
    model = load_model(fleet.repo.tree("HEAD"), env="prod")
    assert "registered/deployment" in model.stacks["app"].deployments


def messages(fleet_files: dict[str, str], make_fleet: MakeFleet) -> list[str]:
    fleet = make_fleet(fleet_files)
    with pytest.raises(InvalidDefinitions) as caught:
        fleet.model()
    return [str(p) for p in caught.value.problems]


def test_a_cycle_of_nested_templates_names_the_files(make_fleet: MakeFleet) -> None:
    top = """
    heat_template_version: 2016-10-14
    resources:
      outer:
        type: nested/a.yaml
    """
    a = "heat_template_version: 2016-10-14\nresources:\n  inner:\n    type: b.yaml\n"
    b = "heat_template_version: 2016-10-14\nresources:\n  back:\n    type: a.yaml\n"
    found = messages(
        {"stacks/top.yaml": dedent(top), "stacks/nested/a.yaml": a, "stacks/nested/b.yaml": b},
        make_fleet,
    )
    assert found == [
        "stacks/nested/b.yaml:4: resources.back.type: nested templates form a cycle: "
        "stacks/nested/a.yaml -> stacks/nested/b.yaml -> stacks/nested/a.yaml"
    ]


def test_a_property_the_nested_template_does_not_declare_is_an_error(
    make_fleet: MakeFleet, tmp_path: Path
) -> None:
    files = app_files(tmp_path / "log")
    files["stacks/app.yaml"] = dedent(APP.replace("greeting: hello", "greting: hello"))
    found = messages(files, make_fleet)
    assert found == [
        "stacks/app.yaml:12: resources.greeter.properties.greting: stacks/nested/greet.yaml "
        "declares no parameter 'greting' (did you mean 'greeting'?)",
        "stacks/nested/greet.yaml:25: resources.deployment.properties.input_values.greeting."
        "get_param: parameter 'greeting' has no value (give it a default, or a value in the "
        "properties of 'greeter', or the environment file's parameter_defaults)",
    ]


def test_parameter_defaults_reach_nested_templates(make_fleet: MakeFleet, tmp_path: Path) -> None:
    """As in Heat: the environment file's parameter_defaults apply to every
    template of the stack, below what the template resource passes."""
    files = app_files(tmp_path / "log")
    files["stacks/app.yaml"] = dedent(APP.replace("      greeting: hello\n", ""))
    files["stacks/app.env.yaml"] += "  greeting: from-defaults\n  grting: typo\n"
    fleet = make_fleet(files)
    warnings: list[str] = []
    model = load_model(fleet.repo.tree("HEAD"), on_problem=lambda p: warnings.append(str(p)))
    assert model.deployment("app/greeter/deployment").input_values == {"greeting": "from-defaults"}
    assert model.deployment("app/registered/deployment").input_values == {"greeting": "hi"}
    assert warnings == [
        "stacks/app.env.yaml:6: parameter_defaults.grting: the template "
        "declares no parameter 'grting'"
    ]


def test_a_template_resource_that_needs_its_own_outputs_is_an_error(
    make_fleet: MakeFleet, tmp_path: Path
) -> None:
    files = app_files(tmp_path / "log")
    files["stacks/app.yaml"] = dedent(
        APP.replace("      greeting: hello\n", "      greeting: {get_attr: [greeter, said]}\n")
    )
    found = messages(files, make_fleet)
    assert found == [
        "stacks/app.yaml:8: resources.greeter: resource 'greeter' needs its own nested "
        "stack's outputs or deployments before it can be read (a dependency cycle)"
    ]


def test_a_nested_template_beside_its_parent_is_not_a_stack_of_its_own(
    make_fleet: MakeFleet, tmp_path: Path
) -> None:
    """Heat users keep nested templates beside the top-level one; one that a
    template in stacks/ nests (by type or through a mapping) is read there only."""
    files = {
        "stacks/app.yaml": dedent(APP.replace("nested/greet.yaml", "greet.yaml")),
        "stacks/app.env.yaml": dedent(REGISTRY_ENV.replace("nested/", "")).format(
            log=tmp_path / "log"
        ),
        "stacks/greet.yaml": dedent(GREET),
    }
    model = make_fleet(files).model()
    assert sorted(model.stacks) == ["app"]
    assert sorted(model.stacks["app"].deployments) == [
        "greeter/deployment",
        "registered/deployment",
        "report",
    ]


def test_a_type_mapped_to_os_heat_none_is_turned_off(make_fleet: MakeFleet, tmp_path: Path) -> None:
    files = app_files(tmp_path / "log")
    files["stacks/app.env.yaml"] = files["stacks/app.env.yaml"].replace(
        "My::Greeter: nested/greet.yaml", "My::Greeter: OS::Heat::None"
    )
    files["stacks/app.yaml"] = dedent(
        APP.replace("second: {get_attr: [registered, outputs, said]}", "second: fixed")
    )
    fleet = make_fleet(files)
    warnings: list[str] = []
    model = load_model(fleet.repo.tree("HEAD"), on_problem=lambda p: warnings.append(str(p)))
    assert sorted(model.stacks["app"].deployments) == ["greeter/deployment", "report"]
    assert warnings == []
    fleet.converge()
    assert (tmp_path / "log").read_text().splitlines() == ["hello from greeter/deployment / fixed"]

    # Its attributes are null, as in Heat: a String input cannot take one.
    fleet.commit({"stacks/app.yaml": dedent(APP)})
    with pytest.raises(InvalidDefinitions, match=r"input_values\.second: expected a String"):
        fleet.model()


CORPUS = Path(__file__).parent / "heat_corpus"


def site_files(env_type: str = "") -> dict[str, str | None]:
    """The corpus site: a template, its environment file and the nested template."""
    env = (CORPUS / "site.env.yaml").read_text()
    if env_type:
        env += f"parameter_defaults: {{env_type: {env_type}}}\n"
    return {
        "inventory.yaml": "kind: Inventory\nservers: {db-1: {}}\n",
        "stacks/site.yaml": (CORPUS / "site.yaml").read_text(),
        "stacks/site.env.yaml": env,
        "stacks/nested/site_database.yaml": (CORPUS / "nested/site_database.yaml").read_text(),
    }


def test_the_corpus_site_renders_as_heat_would(make_repo: RepoFactory) -> None:
    """Nested template by registry, conditions in both templates, repeat, yaql
    and a RandomString: the deployments, their values and their order."""
    warnings: list[object] = []
    with GitRepo.open(make_repo(site_files())) as git:
        model = load_model(git.tree("HEAD"), render_secret=bytes(32), on_problem=warnings.append)
    assert warnings == []
    stack = model.stacks["site"]
    assert sorted(stack.deployments) == [
        "database/audit",
        "database/schema",
        "database/settings",
        "report",
    ]
    schema = model.deployment("site/database/schema")
    password = schema.input_values["password"]
    assert isinstance(password, str)
    assert len(password) == 16
    assert schema.input_values["grants"] == "GRANT ALL TO alice; GRANT ALL TO bob"
    secret = {i.name: i.secret for i in model.components["site/database/schema"].inputs}
    assert secret == {"password": True, "grants": False}
    report = model.deployment("site/report")
    assert report.input_values["greeting"] == "hi alice, hi bob"
    assert report.input_values["mode"] == "testing"
    waits = ("site/database/audit", "site/database/schema", "site/database/settings")
    assert report.depends_on == waits

    with GitRepo.open(make_repo(site_files("prod"))) as git:
        prod = load_model(git.tree("HEAD"), render_secret=bytes(32))
    assert "backup" in prod.stacks["site"].deployments
    assert prod.deployment("site/backup").depends_on == ("site/report",)
    assert prod.deployment("site/report").input_values["mode"] == "production"
