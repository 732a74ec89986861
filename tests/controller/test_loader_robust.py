"""One bad document is a problem with file and line, never a crash: empty and
broken YAML, values of the wrong shape where a name is expected, and Heat's
``get_param`` with a path."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from setpoint.controller.cli.common import INVALID
from setpoint.controller.cli.main import main
from setpoint.controller.definitions.loader import load_model
from setpoint.controller.definitions.model import Model
from setpoint.controller.definitions.repository import GitRepo, commit_all
from setpoint.controller.errors import InvalidDefinitions, Problem

COMPONENT = """\
kind: Component
inputs:
  - name: message
    type: String
configs:
  - tool: script
    actions: [CREATE, UPDATE]
    config: "#!/bin/sh\\necho $message\\n"
"""

STACK = """\
kind: Stack
deployments:
  motd:
    component: motd
    servers: [s1]
    input_values: {message: hi}
"""

HEAT = """\
heat_template_version: 2016-10-14
parameters:
  settings:
    type: json
    default: {db: {hosts: [alpha, beta]}}
  hidden_settings:
    type: json
    hidden: true
    default: {token: sesame}
resources:
  server1:
    type: OS::Nova::Server
  config:
    type: OS::Heat::SoftwareConfig
    properties:
      group: script
      inputs: [{name: host}, {name: token}]
      config: "#!/bin/sh\\necho $host\\n"
  deployment:
    type: OS::Heat::SoftwareDeployment
    properties:
      config: {get_resource: config}
      server: {get_resource: server1}
      input_values:
        host: {get_param: [settings, db, hosts, 1]}
        token: {get_param: [hidden_settings, token]}
"""

HEAT_INVENTORY = "kind: Inventory\nservers: {server1: {}}\n"

Files = dict[str, str | None]


def load(make_repo: Callable[..., Path], files: Files, env: str | None = None) -> Model:
    with GitRepo.open(make_repo(files)) as repo:
        return load_model(repo.tree("HEAD"), env=env)


def problems(make_repo: Callable[..., Path], files: Files, env: str | None = None) -> list[Problem]:
    with pytest.raises(InvalidDefinitions) as info:
        load(make_repo, files, env)
    return info.value.problems


def where(found: list[Problem]) -> list[tuple[str, int, str]]:
    return [(p.file, p.line, p.message) for p in found]


# Each a commit whose definitions once crashed the loader, the first problem it
# must name (file, line and a part of the message), and the environment to load.
BROKEN: dict[str, tuple[Files, tuple[str, int, str], str | None]] = {
    "a YAML syntax error in the inventory": (
        {"inventory.yaml": "servers:\n  s1: {}\n  s2: [\n"},
        ("inventory.yaml", 4, "YAML syntax error"),
        None,
    ),
    "an empty inventory (its servers unknown)": (
        {"inventory.yaml": "", "components/motd/component.yaml": COMPONENT, "stacks/a.yaml": STACK},
        ("stacks/a.yaml", 5, "unknown server 's1'"),
        None,
    ),
    "an empty environment": (
        {"environments/prod.yaml": ""},
        ("environments/prod.yaml", 1, "missing required key 'kind'"),
        "prod",
    ),
    "an environment's inventory with a syntax error": (
        {"environments/prod.yaml": "kind: Environment\ninventory: {servers: {s1: {}}\n"},
        ("environments/prod.yaml", 3, "YAML syntax error"),
        "prod",
    ),
    "a mapping where an inventory group names a server": (
        {"inventory.yaml": "kind: Inventory\nservers: {s1: {}}\ngroups:\n  g: [{x: 1}]\n"},
        ("inventory.yaml", 4, "expected a server name, got a mapping"),
        None,
    ),
    "a mapping where an environment's group names a server": (
        {
            "environments/prod.yaml": "kind: Environment\ninventory:\n  servers: {s1: {}}\n"
            "  groups: {g: [s1, [s2]]}\n"
        },
        ("environments/prod.yaml", 4, "expected a server name, got a list"),
        "prod",
    ),
    "a mapping where a stack names a server": (
        {
            "components/motd/component.yaml": COMPONENT,
            "stacks/a.yaml": STACK.replace("servers: [s1]", "servers: [{x: 1}]"),
        },
        ("stacks/a.yaml", 5, "expected a server name, got a mapping"),
        None,
    ),
    "input_values that are a number": (
        {
            "components/motd/component.yaml": COMPONENT,
            "stacks/a.yaml": STACK.replace("{message: hi}", "1.5"),
        },
        ("stacks/a.yaml", 6, "expected input_values (a mapping), got the number 1.5"),
        None,
    ),
    "Heat properties that are one function call": (
        {
            "inventory.yaml": HEAT_INVENTORY,
            "stacks/h.yaml": HEAT.replace(
                "    properties:\n      group: script\n",
                "    properties: {get_param: OS::stack_name}\n",
            )
            .replace("      inputs: [{name: host}, {name: token}]\n", "")
            .replace('      config: "#!/bin/sh\\necho $host\\n"\n', ""),
        },
        ("stacks/h.yaml", 15, "expected properties (a mapping), got the string"),
        None,
    ),
    "a mapping as a get_attr attribute": (
        {
            "inventory.yaml": HEAT_INVENTORY,
            "stacks/h.yaml": HEAT
            + "  second:\n    type: OS::Heat::SoftwareDeployment\n    properties:\n"
            "      config: {get_resource: config}\n      server: {get_resource: server1}\n"
            "      input_values: {host: {get_attr: [deployment, {x: 1}]}}\n",
        },
        ("stacks/h.yaml", 32, "get_attr: the attribute is a name"),
        None,
    ),
    "a NUL in a get_file path": (
        {
            "components/motd/component.yaml": COMPONENT,
            "stacks/a.yaml": STACK.replace("{message: hi}", '{message: {get_file: "a\\0b"}}'),
        },
        ("stacks/a.yaml", 6, "NUL in path"),
        None,
    ),
    "a mapping in a get_param path": (
        {
            "inventory.yaml": HEAT_INVENTORY,
            "stacks/h.yaml": HEAT.replace("[settings, db, hosts, 1]", "[settings, {x: 1}]"),
        },
        ("stacks/h.yaml", 25, "each item of the path is a key or an index"),
        None,
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_document_is_a_problem_with_file_and_line(
    make_repo: Callable[..., Path], case: str
) -> None:
    files, first, env = BROKEN[case]
    found = where(problems(make_repo, files, env))
    file, line, text = first
    assert any(f == file and n == line and text in m for f, n, m in found), found


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_validate_and_reconcile_exit_3_naming_the_file_and_line(
    make_repo: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    files, (file, line, _text), env = BROKEN[case]
    repo = str(make_repo(files))
    with_env = ["--env", env] if env else []
    assert main(["validate", "--repo", repo, *with_env]) == INVALID
    assert f"{file}:{line}" in capsys.readouterr().err
    store = str(tmp_path / "store")
    assert main(["reconcile", "--repo", repo, "--store", store, *with_env]) == INVALID
    assert f"{file}:{line}" in capsys.readouterr().err


def test_an_empty_inventory_is_an_empty_fleet(make_repo: Callable[..., Path]) -> None:
    model = load(make_repo, {"inventory.yaml": ""})
    assert model.inventory.servers == {}


def test_an_empty_heat_environment_file_gives_no_values(make_repo: Callable[..., Path]) -> None:
    # As Heat reads an empty environment file: no parameters, no defaults.
    model = load(
        make_repo,
        {"inventory.yaml": HEAT_INVENTORY, "stacks/h.yaml": HEAT, "stacks/h.env.yaml": ""},
    )
    assert model.deployment("h/deployment").servers == ("server1",)


def test_get_param_selects_a_path_in_a_json_parameter(make_repo: Callable[..., Path]) -> None:
    model = load(make_repo, {"inventory.yaml": HEAT_INVENTORY, "stacks/h.yaml": HEAT})
    deployment = model.deployment("h/deployment")
    assert deployment.input_values["host"] == "beta"
    assert deployment.input_values["token"] == "sesame"
    component = model.components[deployment.component]
    secret = {i.name: i.secret for i in component.inputs}
    assert secret["token"] is True  # a hidden parameter stays secret through a path
    assert secret["host"] is False


def test_the_cli_lists_a_broken_inventory_without_a_traceback(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo({"inventory.yaml": ""})
    (repo / "inventory.yaml").write_text("servers: [\n")
    commit_all(repo, "break the inventory")
    result = subprocess.run(
        [sys.executable, "-m", "setpoint.controller.cli", "validate", "--repo", str(repo)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == INVALID, result.stderr
    assert "inventory.yaml:2" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unquoted_date_is_the_text_written(make_repo: Callable[..., Path]) -> None:
    # As Heat loads templates; a date is no JSON value (labels and configs once crashed).
    model = load(
        make_repo,
        {
            "inventory.yaml": "servers:\n  s1: {since: 2024-02-29}\n  server1: {}\n",
            "components/motd/component.yaml": COMPONENT,
            "stacks/a.yaml": STACK.replace("{message: hi}", "{message: 2024-02-29 10:00:00Z}"),
            "stacks/h.yaml": HEAT.replace(
                "db: {hosts: [alpha, beta]}", "db: {hosts: [2001-12-14]}"
            ).replace("[settings, db, hosts, 1]", "[settings, db, hosts, 0]"),
        },
    )
    assert model.inventory.servers["s1"] == {"since": "2024-02-29"}
    assert model.deployment("a/motd").input_values == {"message": "2024-02-29 10:00:00Z"}
    assert model.deployment("h/deployment").input_values["host"] == "2001-12-14"


# Messages say what was written, in words: never a Python type name, never "None".
PLAIN_WORDS: dict[str, tuple[Files, tuple[str, int, str]]] = {
    "an input value left empty": (
        {
            "inventory.yaml": "kind: Inventory\nservers: {s1: {}}\n",
            "components/motd/component.yaml": COMPONENT,
            "stacks/a.yaml": STACK.replace("{message: hi}", "{message: }"),
        },
        ("stacks/a.yaml", 6, "expected a String, got nothing"),
    ),
    "a list where a Number goes": (
        {
            "inventory.yaml": "kind: Inventory\nservers: {s1: {}}\n",
            "components/motd/component.yaml": COMPONENT.replace("String", "Number"),
            "stacks/a.yaml": STACK.replace("{message: hi}", "{message: [1, 2]}"),
        },
        ("stacks/a.yaml", 6, "expected a Number, got a list"),
    ),
    "a timeout left empty": (
        {
            "inventory.yaml": "kind: Inventory\nservers: {s1: {}}\n",
            "components/motd/component.yaml": COMPONENT + "timeout:\n",
            "stacks/a.yaml": STACK,
        },
        ("components/motd/component.yaml", 9, "expected a positive number of seconds, got nothing"),
    ),
    "a Boolean left empty": (
        {
            "inventory.yaml": "kind: Inventory\nservers: {s1: {}}\n",
            "components/motd/component.yaml": COMPONENT.replace("String", "Boolean"),
            "stacks/a.yaml": STACK.replace("{message: hi}", "{message: }"),
        },
        ("stacks/a.yaml", 6, "expected a Boolean, got nothing"),
    ),
    "get_file of a path the commit lacks": (
        {
            "inventory.yaml": "kind: Inventory\nservers: {s1: {}}\n",
            "components/motd/component.yaml": COMPONENT
            + "files:\n  conf: {get_file: missing.conf}\n",
            "stacks/a.yaml": STACK,
        },
        (
            "components/motd/component.yaml",
            10,
            "get_file: no file or directory 'components/motd/missing.conf' in the commit",
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(PLAIN_WORDS))
def test_messages_name_what_was_written_in_words(make_repo: Callable[..., Path], case: str) -> None:
    files, (file, line, part) = PLAIN_WORDS[case]
    found = problems(make_repo, files)
    assert any(p.file == file and p.line == line and part in p.message for p in found), where(found)
    text = "\n".join(str(p) for p in found)
    for python_word in ("NoneType", "None)", "list)", "dict)", "YMap", "YList"):
        assert python_word not in text
