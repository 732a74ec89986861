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
from tests.controller.test_heat_templates import HeatFleet, MakeFleet, dedent, make_fleet

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


MERGING = """
heat_template_version: 2016-10-14
parameters:
  names: {type: comma_delimited_list, default: []}
  ports: {type: comma_delimited_list, default: ""}
  settings: {type: json, default: {}}
  greeting: {type: string, default: ""}
  count: {type: number, default: 1}
  enabled: {type: boolean, default: false}
  log: {type: string, default: /dev/null}
resources:
  server1:
    type: OS::Nova::Server
  config:
    type: OS::Heat::SoftwareConfig
    properties:
      group: script
      config: |
        #!/bin/sh
        echo "$names | $ports | $settings | $greeting" >> $log
  say:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: config}
      server: {get_resource: server1}
      input_values:
        names: {get_param: names}
        ports: {get_param: ports}
        settings: {get_param: settings}
        greeting: {get_param: greeting}
        count: {get_param: count}
        enabled: {get_param: enabled}
        log: {get_param: log}
"""
LISTS_A_AND_B = "setpoint:\n  environment_files: [env/a.yaml, env/b.yaml]\n"


def merging(make_fleet: MakeFleet, files: dict[str, str]) -> HeatFleet:
    return make_fleet({"stacks/app.yaml": dedent(MERGING), **files})


def merge_problems(make_fleet: MakeFleet, files: dict[str, str]) -> list[str]:
    with pytest.raises(InvalidDefinitions) as err:
        merging(make_fleet, files).model()
    return [str(p) for p in err.value.problems]


def test_merge_joins_each_type_as_heat_does_and_the_agent_gets_it(
    make_fleet: MakeFleet, tmp_path: Path
) -> None:
    """Heat's ``merge``: lists appended, comma-delimited strings joined with
    ",", json maps merged key by key (shallow: a later key replaces a whole
    nested map), strings end to end (Heat puts nothing between them)."""
    log = tmp_path / "say.log"
    fleet = merging(
        make_fleet,
        {
            "stacks/app.env.yaml": dedent(f"""
                parameter_defaults: {{log: {log}}}
                setpoint:
                  environment_files: [env/a.yaml, env/b.yaml]
                """),
            "stacks/env/a.yaml": dedent("""
                parameter_merge_strategies: {default: merge}
                parameter_defaults:
                  names: [web, db]
                  ports: "80,443"
                  settings: {a: 1, nested: {x: 1}}
                  greeting: hello
                """),
            "stacks/env/b.yaml": dedent("""
                parameter_defaults:
                  names: [cache]
                  ports: "8080"
                  settings: {b: 2, nested: {y: 2}}
                  greeting: ", world"
                """),
        },
    )
    values = fleet.model().deployment("app/say").input_values
    assert values["names"] == ["web", "db", "cache"]
    assert values["ports"] == ["80", "443", "8080"]
    assert values["settings"] == {"a": 1, "b": 2, "nested": {"y": 2}}
    assert values["greeting"] == "hello, world"
    fleet.converge()
    assert log.read_text().splitlines() == [
        '["web","db","cache"] | ["80","443","8080"] | {"a":1,"b":2,"nested":{"y":2}} | hello, world'
    ]


def test_deep_merge_goes_down_into_json_maps(make_fleet: MakeFleet) -> None:
    """Heat's ``merge_map`` with deep_merge: maps both have are merged, lists
    appended, strings joined end to end, a null leaves the earlier value;
    a later json value written as a JSON string is parsed first."""
    fleet = merging(
        make_fleet,
        {
            "stacks/app.env.yaml": dedent("""
                parameter_defaults:
                  settings: '{"nested": {"z": 3}, "added": true}'
                setpoint:
                  environment_files: [env/a.yaml, env/b.yaml]
                """),
            "stacks/env/a.yaml": dedent("""
                parameter_merge_strategies: {settings: deep_merge}
                parameter_defaults:
                  settings:
                    nested: {x: 1, tags: [a], name: ab}
                    keep: 1
                """),
            "stacks/env/b.yaml": dedent("""
                parameter_defaults:
                  settings:
                    nested: {y: 2, tags: [b], name: cd}
                    keep: null
                """),
        },
    )
    settings = fleet.model().deployment("app/say").input_values["settings"]
    assert settings == {
        "nested": {"x": 1, "y": 2, "z": 3, "tags": ["a", "b"], "name": "abcd"},
        "keep": 1,
        "added": True,
    }


def test_the_first_file_giving_a_value_fixes_its_strategy(make_fleet: MakeFleet) -> None:
    """The -e order rule, as Heat's ``get_param_merge_strategy``: a file's
    strategy for a name, else the one the name's first value fixed, else
    the file's default. A later file's ``default`` does not change a
    parameter an earlier file gave; it applies to those it gives first. The
    ``parameters`` and ``parameter_defaults`` sections merge apart, and the
    merged ``parameters`` value still wins."""
    fleet = merging(
        make_fleet,
        {
            "stacks/app.env.yaml": dedent("""
                parameter_defaults: {greeting: " and the last", names: [own]}
                parameters: {ports: "22"}
                setpoint:
                  environment_files: [env/a.yaml, env/b.yaml]
                """),
            "stacks/env/a.yaml": dedent("""
                parameter_defaults: {names: [first]}
                parameters: {ports: "80"}
                """),
            "stacks/env/b.yaml": dedent("""
                parameter_merge_strategies: {default: merge}
                parameter_defaults: {names: [second], greeting: from b, ports: "443"}
                """),
        },
    )
    values = fleet.model().deployment("app/say").input_values
    assert values["names"] == ["own"]  # overwritten: a.yaml fixed overwrite
    assert values["greeting"] == "from b and the last"  # b.yaml fixed merge
    assert values["ports"] == ["22"]  # parameters: overwrite, fixed by a.yaml


def test_a_later_file_naming_another_strategy_is_heats_conflict(make_fleet: MakeFleet) -> None:
    files = {
        "stacks/app.env.yaml": LISTS_A_AND_B,
        "stacks/env/a.yaml": "parameter_defaults: {names: [first], greeting: hi}\n",
        "stacks/env/b.yaml": dedent("""
            parameter_merge_strategies:
              names: merge
              greeting: overwrite
            parameter_defaults: {names: [second], greeting: there}
            """),
    }
    assert merge_problems(make_fleet, files) == [
        "stacks/env/b.yaml:2: parameter_merge_strategies.names: parameter 'names' merges "
        "by overwrite, fixed by its first value at stacks/env/a.yaml:1; Heat refuses merge "
        "for it in a later file (Conflicting merge strategy 'merge' for parameter 'names'): "
        "name the strategy in stacks/env/a.yaml"
    ]


def test_values_heat_cannot_merge_are_errors_naming_both_files(make_fleet: MakeFleet) -> None:
    files = {
        "stacks/app.env.yaml": LISTS_A_AND_B,
        "stacks/env/a.yaml": dedent("""
            parameter_merge_strategies: {default: merge, settings: deep_merge}
            parameter_defaults:
              names: "web,db"
              ports: [80]
              settings: {nested: {x: 1}}
              greeting: hello
              count: 1
              enabled: true
            """),
        "stacks/env/b.yaml": dedent("""
            parameter_defaults:
              names: [cache]
              ports: {http: 80}
              settings: {nested: [y]}
              greeting: 7
              count: 2
              enabled: false
            """),
    }
    merged = "cannot merge onto its value at stacks/env/a.yaml"
    assert sorted(merge_problems(make_fleet, files)) == [
        "stacks/env/b.yaml:2: parameter_defaults.names: parameter 'names' "
        f"(comma_delimited_list, parameter_merge_strategies: merge) {merged}:3: "
        "cannot merge a list onto the string 'web,db'",
        "stacks/env/b.yaml:3: parameter_defaults.ports: parameter 'ports' "
        f"(comma_delimited_list, parameter_merge_strategies: merge) {merged}:4: "
        "Heat merges a string or a list, got a mapping",
        "stacks/env/b.yaml:4: parameter_defaults.settings: parameter 'settings' "
        f"(json, parameter_merge_strategies: deep_merge) {merged}:5: at 'nested': "
        "cannot merge a list onto a mapping",
        "stacks/env/b.yaml:5: parameter_defaults.greeting: parameter 'greeting' "
        f"(string, parameter_merge_strategies: merge) {merged}:6: Heat joins two "
        "strings, got the number 7",
        "stacks/env/b.yaml:6: parameter_defaults.count: parameter 'count' "
        f"(number, parameter_merge_strategies: merge) {merged}:7: Heat cannot merge a "
        "number parameter; use overwrite",
        "stacks/env/b.yaml:7: parameter_defaults.enabled: parameter 'enabled' "
        f"(boolean, parameter_merge_strategies: merge) {merged}:8: Heat cannot merge a "
        "boolean parameter; use overwrite",
    ]


def test_an_unknown_strategy_is_warned_and_heat_falls_back_to_the_default(
    make_fleet: MakeFleet,
) -> None:
    fleet = merging(
        make_fleet,
        {
            "stacks/app.env.yaml": LISTS_A_AND_B,
            "stacks/env/a.yaml": dedent("""
                parameter_merge_strategies: {default: merge, names: mrege}
                parameter_defaults: {names: [web]}
                """),
            "stacks/env/b.yaml": "parameter_defaults: {names: [db]}\n",
        },
    )
    warnings: list[str] = []
    model = load_model(fleet.repo.tree("HEAD"), on_problem=lambda p: warnings.append(str(p)))
    assert model.deployment("app/say").input_values["names"] == ["web", "db"]
    assert warnings == [
        "stacks/env/a.yaml:1: parameter_merge_strategies.names: unknown merge strategy "
        "'mrege' (overwrite or merge or deep_merge): Heat uses merge"
    ]


def test_a_nested_templates_defaults_merge_by_its_own_types(make_fleet: MakeFleet) -> None:
    """``parameter_defaults`` reach nested templates, merged by the type the
    nested template declares (Heat merges with every template's schema)."""
    nested = dedent("""
        heat_template_version: 2016-10-14
        parameters:
          tags: {type: comma_delimited_list}
        resources:
          config:
            type: OS::Heat::SoftwareConfig
            properties: {group: script, config: echo}
          deployment:
            type: OS::Heat::SoftwareDeployment
            properties:
              config: {get_resource: config}
              server: server1
              input_values: {tags: {get_param: tags}}
        """)
    fleet = make_fleet(
        {
            "stacks/app.yaml": dedent(APP) + "  extra:\n    type: nested/extra.yaml\n",
            "stacks/nested/extra.yaml": nested,
            "stacks/app.env.yaml": LISTS_A_AND_B,
            "stacks/env/a.yaml": dedent("""
                parameter_merge_strategies: {tags: merge}
                parameter_defaults: {tags: "a,b"}
                """),
            "stacks/env/b.yaml": "parameter_defaults: {tags: c}\n",
        }
    )
    deployment = fleet.model().deployment("app/extra/deployment")
    assert deployment.input_values["tags"] == ["a", "b", "c"]


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
