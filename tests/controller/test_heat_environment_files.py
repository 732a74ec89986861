"""Several Heat environment files for one template, as operators pass them
(``openstack stack create -e base.yaml -e prod.yaml -e app.env.yaml``): the
``setpoint.environment_files`` of ``stacks/<stem>.env.yaml`` lists them in
order, and the stack's own file comes last. Merged as Heat's
``heat.common.environment_util.merge_environments`` merges them: each
section key by key, the later file winning; ``parameters`` beat
``parameter_defaults`` whichever file gives them; ``resource_registry``
mappings merged in the same order (a path relative to the file it is
written in)."""

from __future__ import annotations

from pathlib import Path

import pytest

from setpoint.controller.definitions.loader import load_model
from setpoint.controller.errors import InvalidDefinitions
from tests.controller.test_heat_templates import MakeFleet, dedent, make_fleet

__all__ = ["make_fleet"]  # the fixture, used by name

CORPUS = Path(__file__).parent / "heat_corpus"

APP = """
heat_template_version: 2016-10-14
parameters:
  greeting:
    type: string
    default: hello
  count:
    type: number
    default: 1
resources:
  server1:
    type: OS::Nova::Server
  config:
    type: OS::Heat::SoftwareConfig
    properties:
      group: script
      config: echo
  say:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: config}
      server: {get_resource: server1}
      input_values:
        greeting: {get_param: greeting}
        count: {get_param: count}
"""


def problems(make_fleet: MakeFleet, files: dict[str, str]) -> list[tuple[str, int, str, str]]:
    fleet = make_fleet({"stacks/app.yaml": dedent(APP), **files})
    with pytest.raises(InvalidDefinitions) as err:
        fleet.model()
    return [(p.file, p.line, p.field, p.message) for p in err.value.problems]


def greeting(make_fleet: MakeFleet, files: dict[str, str]) -> object:
    fleet = make_fleet({"stacks/app.yaml": dedent(APP), **files})
    return fleet.model().deployment("app/say").input_values["greeting"]


def test_the_listed_files_merge_in_order_and_the_stacks_own_file_wins(
    make_fleet: MakeFleet,
) -> None:
    files = {
        "stacks/app.env.yaml": "setpoint:\n  environment_files: [env/a.yaml, env/b.yaml]\n",
        "stacks/env/a.yaml": "parameter_defaults: {greeting: from-a}\n",
        "stacks/env/b.yaml": "parameter_defaults: {greeting: from-b}\n",
    }
    assert greeting(make_fleet, files) == "from-b"


def test_the_stacks_own_file_comes_after_the_files_it_lists(make_fleet: MakeFleet) -> None:
    files = {
        "stacks/app.env.yaml": dedent("""
            parameter_defaults: {greeting: own}
            setpoint:
              environment_files: [env/a.yaml]
            """),
        "stacks/env/a.yaml": "parameter_defaults: {greeting: from-a, count: 3}\n",
    }
    fleet = make_fleet({"stacks/app.yaml": dedent(APP), **files})
    values = fleet.model().deployment("app/say").input_values
    assert (values["greeting"], values["count"]) == ("own", 3)


def test_parameters_beat_parameter_defaults_of_a_later_file(make_fleet: MakeFleet) -> None:
    """Heat merges each section across the files, then a parameter's value
    is its merged ``parameters`` entry, else its merged ``parameter_defaults``."""
    files = {
        "stacks/app.env.yaml": "setpoint:\n  environment_files: [a.yaml, b.yaml]\n",
        "stacks/a.yaml": "parameters: {greeting: from-a}\n",
        "stacks/b.yaml": "parameter_defaults: {greeting: from-b}\n",
    }
    # a.yaml and b.yaml sit in stacks/ and are environment files, not stacks.
    assert greeting(make_fleet, files) == "from-a"


def test_a_missing_or_escaping_file_is_named_on_its_listing_line(make_fleet: MakeFleet) -> None:
    files = {
        "stacks/app.env.yaml": dedent("""
            setpoint:
              environment_files:
              - env/a.yaml
              - env/nope.yaml
              - ../../outside.yaml
              - 7
            """),
        "stacks/env/a.yaml": "parameter_defaults: {greeting: from-a}\n",
    }
    assert problems(make_fleet, files) == [
        (
            "stacks/app.env.yaml",
            4,
            "setpoint.environment_files[1]",
            "environment file 'env/nope.yaml': no file 'stacks/env/nope.yaml' in the commit",
        ),
        (
            "stacks/app.env.yaml",
            5,
            "setpoint.environment_files[2]",
            "environment file path '../../outside.yaml' escapes the repository",
        ),
        (
            "stacks/app.env.yaml",
            6,
            "setpoint.environment_files[3]",
            "environment file takes a relative path, got the number 7",
        ),
    ]


def test_a_mistake_in_a_listed_file_names_that_file_line_and_field(
    make_fleet: MakeFleet,
) -> None:
    files = {
        "stacks/app.env.yaml": "setpoint:\n  environment_files: [env/a.yaml]\n",
        "stacks/env/a.yaml": dedent("""
            parameter_defaults:
              count: many
            resource_registery: {}
            setpoint:
              state: suspended
            """),
    }
    found = problems(make_fleet, files)
    # The bad value is told once, where it is written: no follow-on error where
    # the template uses the parameter.
    assert [p for p in found if p[0] != "stacks/env/a.yaml"] == []
    got = [p for p in found if p[0] == "stacks/env/a.yaml"]
    assert got == [
        (
            "stacks/env/a.yaml",
            2,
            "parameter_defaults.count",
            "expected a Number, got 'many'",
        ),
        (
            "stacks/env/a.yaml",
            3,
            "resource_registery",
            "unknown key 'resource_registery' (did you mean 'resource_registry'?) (allowed: "
            "parameters, parameter_defaults, resource_registry, event_sinks, "
            "encrypted_param_names, parameter_merge_strategies)",
        ),
        (
            "stacks/env/a.yaml",
            4,
            "setpoint",
            "setpoint's settings belong in stacks/app.env.yaml, not in an environment "
            "file it lists",
        ),
    ]


def test_a_registry_in_a_later_file_replaces_an_earlier_mapping(make_fleet: MakeFleet) -> None:
    """The mapping's template path is relative to the file it is written in."""
    app = dedent(APP) + "  extra:\n    type: App::Extra\n"
    nested = dedent("""
        heat_template_version: 2016-10-14
        resources:
          config:
            type: OS::Heat::SoftwareConfig
            properties: {group: script, config: echo}
          deployment:
            type: OS::Heat::SoftwareDeployment
            properties:
              config: {get_resource: config}
              server: server1
        """)
    fleet = make_fleet(
        {
            "stacks/app.yaml": app,
            "stacks/app.env.yaml": "setpoint:\n  environment_files: [env/a.yaml, env/b.yaml]\n",
            "stacks/env/a.yaml": "resource_registry: {App::Extra: OS::Heat::None}\n",
            "stacks/env/b.yaml": "resource_registry: {App::Extra: ../nested/extra.yaml}\n",
            "stacks/nested/extra.yaml": nested,
        }
    )
    model = fleet.model()
    assert model.deployment("app/extra/deployment").file == "stacks/nested/extra.yaml"


def test_a_merge_strategy_setpoint_would_not_follow_is_an_error(make_fleet: MakeFleet) -> None:
    """Heat's ``parameter_merge_strategies: merge`` joins a later value to an
    earlier one; setpoint only overwrites, so where that would differ it says so."""
    files = {
        "stacks/app.env.yaml": "setpoint:\n  environment_files: [env/a.yaml, env/b.yaml]\n",
        "stacks/env/a.yaml": "parameter_defaults: {greeting: from-a}\n",
        "stacks/env/b.yaml": dedent("""
            parameter_merge_strategies: {greeting: merge}
            parameter_defaults:
              greeting: from-b
            """),
    }
    assert problems(make_fleet, files) == [
        (
            "stacks/env/b.yaml",
            3,
            "parameter_defaults.greeting",
            "Heat would merge this value into the one of stacks/env/a.yaml:1 "
            "(parameter_merge_strategies: merge); setpoint only overwrites: give the "
            "whole value in the later file",
        )
    ]


def test_the_corpus_layers_render_and_converge(make_fleet: MakeFleet, tmp_path: Path) -> None:
    log = tmp_path / "layers.log"
    own = (CORPUS / "layers.env.yaml").read_text()
    own = own.replace('punctuation: "!"', f'punctuation: "!"\n  log: {log}')
    files = {
        "stacks/layers.yaml": (CORPUS / "layers.yaml").read_text(),
        "stacks/layers.env.yaml": own,
        "stacks/nested/layers_monitoring.yaml": (
            CORPUS / "nested" / "layers_monitoring.yaml"
        ).read_text(),
    }
    for name in ("layers_base.yaml", "layers_prod.yaml"):
        files[f"stacks/env/{name}"] = (CORPUS / "env" / name).read_text()
    fleet = make_fleet(files)
    warnings: list[str] = []
    model = load_model(fleet.repo.tree("HEAD"), on_problem=lambda p: warnings.append(str(p)))
    assert warnings == []
    assert model.stacks["layers"].outputs["said"].value == "good morning world!"
    assert {d.qualified: d.file for d in model.deployments()} == {
        "layers/say": "stacks/layers.yaml",
        "layers/monitoring/deployment": "stacks/nested/layers_monitoring.yaml",
    }
    fleet.converge()
    assert log.read_text().splitlines() == ["good morning world!", "monitoring prod"]


def test_a_file_several_stacks_list_is_reported_once(make_fleet: MakeFleet) -> None:
    listing = "setpoint:\n  environment_files: [env/shared.yaml]\n"
    fleet = make_fleet(
        {
            "stacks/app.yaml": dedent(APP),
            "stacks/app.env.yaml": listing,
            "stacks/other.yaml": dedent(APP),
            "stacks/other.env.yaml": listing,
            "stacks/env/shared.yaml": "parameter_defaults: {greeting: hi}\nbogus: 1\n",
        }
    )
    with pytest.raises(InvalidDefinitions) as err:
        fleet.model()
    assert [str(p) for p in err.value.problems] == [
        "stacks/env/shared.yaml:2: bogus: unknown key 'bogus' (allowed: parameters, "
        "parameter_defaults, resource_registry, event_sinks, encrypted_param_names, "
        "parameter_merge_strategies)"
    ]


def test_a_shared_default_a_template_does_not_declare_is_not_warned_about(
    make_fleet: MakeFleet,
) -> None:
    """Shared files carry the defaults of many templates (Heat ignores the
    ones a template does not declare); the stack's own file is still checked."""
    fleet = make_fleet(
        {
            "stacks/app.yaml": dedent(APP),
            "stacks/app.env.yaml": dedent("""
                parameter_defaults: {greating: typo}
                setpoint:
                  environment_files: [env/shared.yaml]
                """),
            "stacks/env/shared.yaml": dedent("""
                parameter_defaults: {greeting: hi, db_size: 10}
                parameters: {colour: blue}
                """),
        }
    )
    warnings: list[str] = []
    load_model(fleet.repo.tree("HEAD"), on_problem=lambda p: warnings.append(str(p)))
    assert sorted(warnings) == [
        "stacks/app.env.yaml:1: parameter_defaults.greating: the template declares no "
        "parameter 'greating'",
        "stacks/env/shared.yaml:2: parameters.colour: stacks/app.yaml declares no "
        "parameter 'colour'",
    ]
