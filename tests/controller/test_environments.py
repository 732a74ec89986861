"""Environments: one set of definitions, a parameter set and an inventory per fleet."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from setpoint.controller.definitions.environments import environment_names
from setpoint.controller.definitions.loader import load_model
from setpoint.controller.definitions.model import Model
from setpoint.controller.definitions.repository import GitRepo
from setpoint.controller.errors import InvalidDefinitions
from setpoint.controller.rollout.desired import compute_desired

COMPONENT = """\
kind: Component
inputs:
  - name: version
    type: String
  - name: password
    type: String
    secret: true
    default: hunter2
configs:
  - tool: script
    actions: [CREATE, UPDATE]
    config: |
      #!/bin/sh
      echo "$version"
"""

STACK = """\
kind: Stack
parameters:
  version: {type: String, default: "1.0"}
deployments:
  app:
    component: app
    servers: {group: app}
    input_values:
      version: {get_param: version}
"""

FILES: dict[str, str | None] = {
    "inventory.yaml": "kind: Inventory\nservers: {dev-1: {}}\ngroups: {app: [dev-1]}\n",
    "components/app/component.yaml": COMPONENT,
    "stacks/web.yaml": STACK,
    "environments/staging.yaml": """\
        kind: Environment
        parameters:
          version: "2.0"
        inventory:
          servers: {stg-1: {}, stg-2: {}}
          groups: {app: [stg-1, stg-2]}
        """,
    "environments/production.yaml": """\
        kind: Environment
        parameters:
          version: "2.0"
        inventory:
          servers: {prod-1: {}, prod-2: {}, prod-3: {}}
          groups: {app: [prod-1, prod-2, prod-3]}
        """,
    "environments/old.yaml": """\
        kind: Environment
        parameters: {version: "1.5"}
        """,
}


def load(repo: Path, env: str | None) -> Model:
    with GitRepo.open(repo) as git:
        return load_model(git.tree("HEAD"), env=env)


def digests(model: Model) -> dict[str, str]:
    desired = compute_desired(model, {}, lambda _server: None)
    return {server: digest for (_dep, server), digest in desired.rendered.items()}


def test_environments_render_independently(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(FILES)
    default, staging, production, old = (
        load(repo, env) for env in (None, "staging", "production", "old")
    )
    assert default.environment is None
    assert staging.environment == "staging"
    assert sorted(digests(default)) == ["dev-1"]
    assert sorted(digests(staging)) == ["stg-1", "stg-2"]
    assert sorted(digests(production)) == ["prod-1", "prod-2", "prod-3"]
    # Without an inventory of its own, an environment uses inventory.yaml.
    assert sorted(digests(old)) == ["dev-1"]
    # Equal inputs give equal digests in every environment: that is promotion.
    assert set(digests(staging).values()) == set(digests(production).values())
    assert len(set(digests(staging).values())) == 1
    assert set(digests(default).values()).isdisjoint(digests(staging).values())
    assert set(digests(old).values()).isdisjoint(digests(default).values())
    config = compute_desired(staging, {}, lambda _server: None).configs[digests(staging)["stg-1"]]
    assert {i["name"]: i["value"] for i in config.body["inputs"]}["version"] == "2.0"


def test_environment_names(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(FILES)
    with GitRepo.open(repo) as git:
        assert environment_names(git.tree("HEAD")) == ["old", "production", "staging"]


def test_environment_mistakes_are_reported_with_file_and_line(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo(
        {
            **FILES,
            "environments/bad.yaml": """\
                kind: Environment
                parameters:
                  versoin: "2.0"
                inventory:
                  servers: {b-1: {}}
                  group: {}
                """,
        }
    )
    with pytest.raises(InvalidDefinitions) as info:
        load(repo, "bad")
    found = {(p.file, p.line, p.message) for p in info.value.problems}
    assert (
        "environments/bad.yaml",
        3,
        "no stack declares a parameter 'versoin' (did you mean 'version'?)",
    ) in found
    assert any(f == "environments/bad.yaml" and line == 6 and "unknown key 'group'" in m
               for f, line, m in found)  # fmt: skip
    # The stack's group is not in this environment's inventory.
    assert any(f == "stacks/web.yaml" and "unknown group 'app'" in m for f, _l, m in found)


def test_unknown_environment_names_the_known_ones(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(FILES)
    for name in ("prod", "../inventory"):
        with pytest.raises(InvalidDefinitions) as info:
            load(repo, name)
        (problem,) = info.value.problems
        assert problem.message == (
            f"no environment {name!r} in the commit (environments: old, production, staging)"
        )


def test_environment_value_is_checked_against_the_parameter_type(
    make_repo: Callable[..., Path],
) -> None:
    stack = STACK.replace(
        "version: {type: String", "count: {type: Number, default: 1}\n  version: {type: String"
    )
    repo = make_repo(
        {
            **FILES,
            "stacks/web.yaml": stack,
            "environments/typo.yaml": "kind: Environment\nparameters:\n  count: many\n",
        }
    )
    with pytest.raises(InvalidDefinitions) as info:
        load(repo, "typo")
    (problem,) = info.value.problems
    assert (problem.file, problem.line) == ("environments/typo.yaml", 3)
    assert "expected a Number" in problem.message


def test_secret_inputs_are_marked_in_the_model(make_repo: Callable[..., Path]) -> None:
    model = load(make_repo(FILES), None)
    component = model.components["app"]
    assert [(i.name, i.secret) for i in component.inputs] == [
        ("version", False),
        ("password", True),
    ]
