"""A template's ``conditions:``, ``condition:`` on resources and outputs, and
``if``, with Heat's semantics: the corpus template ``heat_corpus/conditions.yaml``
read for each environment type, and each mistake named with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from setpoint.controller.definitions.loader import load_model
from setpoint.controller.definitions.model import GetAttr, Model
from setpoint.controller.definitions.repository import GitRepo
from setpoint.controller.errors import InvalidDefinitions, Problem
from tests.controller.conftest import RepoFactory

CORPUS = Path(__file__).parent / "heat_corpus" / "conditions.yaml"
SERVERS = "setpoint: {servers: {db: s1, replica: s2}}\n"


def load(make_repo: RepoFactory, env: str, template: str | None = None) -> tuple[Model, list[str]]:
    repo = make_repo(
        {
            "stacks/db.yaml": template or CORPUS.read_text(),
            "stacks/db.env.yaml": env + SERVERS,
        }
    )
    warnings: list[Problem] = []
    with GitRepo.open(repo) as git:
        model = load_model(git.tree("HEAD"), on_problem=warnings.append)
    return model, [str(w) for w in warnings]


def problems(make_repo: RepoFactory, template: str) -> list[str]:
    repo = make_repo({"stacks/db.yaml": template})
    with GitRepo.open(repo) as git, pytest.raises(InvalidDefinitions) as err:
        load_model(git.tree("HEAD"))
    return [str(p) for p in err.value.problems]


def test_in_production_the_replica_is_deployed(make_repo: RepoFactory) -> None:
    model, warnings = load(make_repo, "parameter_defaults: {env_type: prod}\n")
    assert [d.qualified for d in model.deployments()] == [
        "db/primary_deployment",
        "db/replica_deployment",
    ]
    primary = model.deployment("db/primary_deployment").input_values
    assert primary == {"role": "primary", "max_connections": 500}
    outputs = model.stacks["db"].outputs
    assert outputs["mode"].value == "production"
    assert isinstance(outputs["replica_dsn"].value, GetAttr)
    # The network is left out (backups wanted), so nothing warns of it.
    assert warnings == []


def test_in_development_the_replica_and_its_server_are_absent(make_repo: RepoFactory) -> None:
    env = "parameter_defaults: {env_type: dev, backups_wanted: false, zones: az1}\n"
    model, warnings = load(make_repo, env)
    assert [d.qualified for d in model.deployments()] == ["db/primary_deployment"]
    primary = model.deployment("db/primary_deployment").input_values
    assert primary == {"role": "standalone", "max_connections": 20}
    outputs = model.stacks["db"].outputs
    assert outputs["replica_dsn"].value is None  # its condition is false: no value
    assert outputs["mode"].value == "non-prod (dev)"
    # The network's condition is true now: it is in the stack, and not managed.
    assert [w.split(": ", 2)[2] for w in warnings] == [
        "OS::Neutron::Net is not managed by setpoint"
    ]


BASE = """\
heat_template_version: {version}
parameters:
  env: {{type: string, default: prod}}
conditions:
{conditions}
resources:
  s1:
    type: OS::Nova::Server
  config:
    type: OS::Heat::SoftwareConfig
    properties: {{group: script, config: "#!/bin/sh"}}
  dep:
    type: OS::Heat::SoftwareDeployment
    condition: {condition}
    properties:
      config: {{get_resource: config}}
      server: {{get_resource: s1}}
      input_values: {{x: {value}}}
"""


def broken(
    conditions: str = "  c: true",
    condition: str = "c",
    value: str = "1",
    version: str = "2018-08-31",
) -> str:
    return BASE.format(version=version, conditions=conditions, condition=condition, value=value)


MISTAKES = [
    (
        broken(conditions="  a: {not: b}\n  b: {and: [a, true]}", condition="a"),
        [
            "stacks/db.yaml:6: conditions.b.and[0]: conditions refer to each other in a loop: "
            "a -> b -> a"
        ],
    ),
    (
        broken(conditions="  c: {get_param: env}"),
        [
            'stacks/db.yaml:5: conditions.c: The definition of condition "c" is invalid: '
            "{'get_param': 'env'} (it gives the string 'prod', not a boolean)"
        ],
    ),
    (
        broken(conditions="  c: other"),
        ['stacks/db.yaml:5: conditions.c: The definition of condition "c" is invalid: other'],
    ),
    (
        broken(condition="cc"),
        [
            "stacks/db.yaml:14: resources.dep.condition: "
            "Invalid condition \"cc\" (did you mean 'c'?)"
        ],
    ),
    (
        broken(conditions="  c: {and: [true]}"),
        [
            "stacks/db.yaml:5: conditions.c.and: The minimum number of condition arguments "
            'to "and" is 2.'
        ],
    ),
    (
        broken(conditions="  c: {or: true}"),
        ['stacks/db.yaml:5: conditions.c.or: Arguments to "or" must be a list of conditions'],
    ),
    (
        broken(conditions="  c: {not: null}"),
        ['stacks/db.yaml:5: conditions.c.not: Argument to "not" must be a condition'],
    ),
    (
        broken(conditions="  c: {equals: [a]}"),
        [
            'stacks/db.yaml:5: conditions.c.equals: Arguments to "equals" must be of the form: '
            "[value_1, value_2]"
        ],
    ),
    (
        broken(conditions="  c: {equals: [{list_join: ['', [a]]}, a]}"),
        [
            'stacks/db.yaml:5: conditions.c.equals[0].list_join: "list_join" cannot be used in '
            "a condition (only get_param, equals, not, and, or, contains, yaql)"
        ],
    ),
    (
        broken(conditions="  c: {contains: [a, [a]]}", version="2017-02-24"),
        [
            'stacks/db.yaml:5: conditions.c: The definition of condition "c" is invalid: '
            "{'contains': ['a', ['a']]} (it gives a mapping, not a boolean)"
        ],
    ),
    (
        broken(conditions="  c: true", version="2016-04-08"),
        [
            "stacks/db.yaml:4: conditions: conditions need heat_template_version 2016-10-14 "
            "or later (this template: 2016-04-08)",
            "stacks/db.yaml:14: resources.dep.condition: condition: needs "
            "heat_template_version 2016-10-14 or later",
        ],
    ),
]


@pytest.mark.parametrize(("template", "expected"), MISTAKES)
def test_a_mistake_in_conditions_names_file_line_and_function(
    make_repo: RepoFactory, template: str, expected: list[str]
) -> None:
    assert problems(make_repo, template) == expected


def test_a_reference_to_a_resource_left_out_names_its_condition(make_repo: RepoFactory) -> None:
    template = broken(conditions="  c: false") + (
        "  user:\n"
        "    type: OS::Heat::SoftwareDeployment\n"
        "    properties:\n"
        "      config: {get_resource: config}\n"
        "      server: {get_resource: s1}\n"
        "      input_values: {y: {get_attr: [dep, deploy_stdout]}}\n"
    )
    assert problems(make_repo, template) == [
        "stacks/db.yaml:24: resources.user.properties.input_values.y.get_attr: "
        "get_attr: resource 'dep' is left out by its condition 'c'"
    ]
    # Guarded by the same condition, the reference is never evaluated.
    guarded = template.replace(
        "{y: {get_attr: [dep, deploy_stdout]}}",
        "{y: {if: [c, {get_attr: [dep, deploy_stdout]}, none]}}",
    )
    repo = make_repo({"stacks/db.yaml": guarded})
    with GitRepo.open(repo) as git:
        model = load_model(git.tree("HEAD"))
    assert model.deployment("db/user").input_values == {"y": "none"}
    assert model.deployment("db/user").depends_on == ()
