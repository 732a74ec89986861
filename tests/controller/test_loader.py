"""The loader reports every mistake at once, each with file, line and field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from setpoint.controller.definitions.loader import load_model
from setpoint.controller.definitions.model import EVERY_SERVER, GetAttr, Model, Preflight
from setpoint.controller.definitions.repository import GitRepo
from setpoint.controller.errors import InvalidDefinitions, Problem

COMPONENT = """\
kind: Component
inputs:
  - name: size
    type: Number
    default: 1
  - name: label
    type: String
outputs:
  - name: address
configs:
  - tool: script
    actions: [CREATE, UPDATE]
    config: |
      #!/bin/sh
      echo hi
"""


def load(make_repo: Callable[..., Path], files: dict[str, str | None]) -> Model:
    with GitRepo.open(make_repo(files)) as repo:
        return load_model(repo.tree("HEAD"))


def problems(make_repo: Callable[..., Path], files: dict[str, str | None]) -> list[Problem]:
    with pytest.raises(InvalidDefinitions) as info:
        load(make_repo, files)
    return info.value.problems


def find(found: list[Problem], text: str) -> Problem:
    matches = [p for p in found if text in p.message]
    assert matches, f"no problem mentions {text!r}: {[str(p) for p in found]}"
    return matches[0]


def test_example_repository_loads(example_repo: Path) -> None:
    with GitRepo.open(example_repo) as repo:
        model = load_model(repo.tree("HEAD"))
    assert sorted(model.components) == ["backend", "frontend", "metrics-agent", "motd"]
    order = list(model.order)
    assert order.index("web/backend") < order.index("web/frontend") < order.index("web/metrics")
    frontend = model.deployment("web/frontend")
    assert frontend.servers == ("web-1", "web-2")
    assert frontend.group == "web"
    ref = frontend.input_values["backend_url"]
    assert isinstance(ref, GetAttr)
    assert (ref.deployment, ref.output, ref.server) == ("web/backend", "host_and_port", None)
    backend = model.deployment("web/backend")
    assert backend.input_values == {"version": "1.0.0"}
    site = model.components["frontend"].files[0]
    assert site.kind == "directory"
    assert site.zip_digest is not None
    assert site.content.startswith(b"PK")


def test_valid_stack_resolves_params_files_and_types(make_repo: Callable[..., Path]) -> None:
    model = load(
        make_repo,
        {
            "components/app/component.yaml": COMPONENT,
            "stacks/files/banner.txt": "hello\n",
            "stacks/main.yaml": """\
                kind: Stack
                parameters:
                  size: {type: Number, default: "3"}
                deployments:
                  app:
                    component: app
                    servers: {group: pair}
                    input_values:
                      size: {get_param: size}
                      label: {get_file: files/banner.txt}
                """,
        },
    )
    app = model.deployment("main/app")
    assert app.input_values == {"size": 3, "label": "hello\n"}
    assert app.servers == ("s2", "s3")
    assert app.actions == ("CREATE", "UPDATE")


def test_unknown_keys_and_wrong_types_name_file_line_and_field(
    make_repo: Callable[..., Path],
) -> None:
    found = problems(
        make_repo,
        {
            "components/app/component.yaml": COMPONENT.replace(
                "outputs:", "color: blue\noutputs:"
            ).replace("default: 1", "default: lots"),
            "stacks/main.yaml": """\
                kind: Stack
                deployments:
                  app:
                    component: app
                    servers: [s1]
                    actons: [CREATE]
                    input_values:
                      label: [not, a, string]
                """,
        },
    )
    unknown = find(found, "unknown key 'color'")
    assert (unknown.file, unknown.line, unknown.field) == (
        "components/app/component.yaml",
        8,
        "color",
    )
    bad_default = find(found, "expected a Number, got 'lots'")
    assert (bad_default.file, bad_default.line, bad_default.field) == (
        "components/app/component.yaml",
        5,
        "inputs[0].default",
    )
    typo = find(found, "unknown key 'actons' (did you mean 'actions'?)")
    assert (typo.file, typo.line, typo.field) == ("stacks/main.yaml", 6, "deployments.app.actons")
    wrong = find(found, "expected a String, got a list")
    assert (wrong.line, wrong.field) == (8, "deployments.app.input_values.label")


def test_unknown_references_are_all_reported(make_repo: Callable[..., Path]) -> None:
    found = problems(
        make_repo,
        {
            "components/app/component.yaml": COMPONENT,
            "stacks/main.yaml": """\
                kind: Stack
                deployments:
                  one:
                    component: ap
                    servers: [s9]
                  two:
                    component: app
                    servers: {group: trio}
                    depends_on: [nowhere]
                    input_values:
                      size: {get_param: missing}
                      label: {get_attr: [ghost, address]}
                      colour: red
                  three:
                    component: app
                    servers: [s1]
                    input_values:
                      label: {get_attr: [two, nothing]}
                """,
        },
    )
    messages = {p.message.split(" (")[0]: p for p in found}
    assert messages["unknown component 'ap'"].line == 4
    assert messages["unknown server 's9'"].line == 5
    assert messages["unknown group 'trio'"].field == "deployments.two.servers.group"
    assert messages["depends_on: unknown deployment 'main/nowhere'"].line == 9
    assert messages["unknown parameter 'missing'"].line == 11
    assert messages["get_attr: unknown deployment 'main/ghost'"].line == 12
    assert "component 'app' has no input 'colour'" in messages
    nothing = find(found, "has no output 'nothing'")
    assert nothing.line == 18
    # The one deployment with an unknown component cannot check its inputs;
    # every other problem above was still reported in the same run.
    assert len(found) >= 8


def test_action_listed_twice_and_missing_input_value(make_repo: Callable[..., Path]) -> None:
    component = COMPONENT + (
        "  - tool: script\n    actions: [UPDATE, DELETE, DELETE]\n    config: echo bye\n"
    )
    found = problems(
        make_repo,
        {
            "components/app/component.yaml": component,
            "stacks/main.yaml": """\
                kind: Stack
                deployments:
                  app:
                    component: app
                    servers: [s1]
                """,
        },
    )
    twice = find(found, "action UPDATE already has a config (configs[0])")
    assert (twice.file, twice.line) == ("components/app/component.yaml", 17)
    assert find(found, "action DELETE listed twice").line == 17
    needs = find(found, "input 'label' of component 'app' needs a value")
    assert (needs.file, needs.line) == ("stacks/main.yaml", 3)


def test_get_file_may_not_escape_the_repository(make_repo: Callable[..., Path]) -> None:
    found = problems(
        make_repo,
        {
            "components/app/component.yaml": COMPONENT.replace(
                "config: |\n      #!/bin/sh\n      echo hi\n",
                "config: {get_file: ../../../etc/passwd}\n",
            ),
            "stacks/main.yaml": """\
                kind: Stack
                deployments:
                  app:
                    component: app
                    servers: [s1]
                    input_values:
                      label: {get_file: /etc/hostname}
                """,
        },
    )
    escape = find(found, "escapes the repository")
    assert (escape.file, escape.line) == ("components/app/component.yaml", 13)
    absolute = find(found, "must be relative")
    assert (absolute.file, absolute.line) == ("stacks/main.yaml", 7)


def test_dependency_cycle_names_every_step(make_repo: Callable[..., Path]) -> None:
    found = problems(
        make_repo,
        {
            "components/app/component.yaml": COMPONENT,
            "stacks/main.yaml": """\
                kind: Stack
                deployments:
                  a:
                    component: app
                    servers: [s1]
                    input_values: {label: {get_attr: [c, address]}}
                  b:
                    component: app
                    servers: [s1]
                    input_values: {label: {get_attr: [a, address]}}
                  c:
                    component: app
                    servers: [s1]
                    depends_on: [b]
                    input_values: {label: x}
                """,
        },
    )
    cycle = find(found, "dependency cycle")
    assert cycle.message == "dependency cycle: main/a -> main/c -> main/b -> main/a"
    assert cycle.file == "stacks/main.yaml"


def test_yaml_syntax_error_and_duplicate_keys(make_repo: Callable[..., Path]) -> None:
    found = problems(
        make_repo,
        {
            "components/app/component.yaml": COMPONENT + "kind: Component\n",
            "stacks/main.yaml": "kind: Stack\ndeployments: [unclosed\n",
        },
    )
    dup = find(found, "duplicate key (first at line 1)")
    assert (dup.file, dup.line, dup.field) == ("components/app/component.yaml", 16, "kind")
    syntax = find(found, "YAML syntax error")
    assert syntax.file == "stacks/main.yaml"
    assert syntax.line == 3


def test_reads_the_commit_not_the_working_directory(
    make_repo: Callable[..., Path],
) -> None:
    repo_path = make_repo(
        {
            "components/app/component.yaml": COMPONENT,
            "stacks/main.yaml": "kind: Stack\ndeployments: {}\n",
        }
    )
    (repo_path / "stacks" / "main.yaml").write_text("this: [is broken\n")
    with GitRepo.open(repo_path) as repo:
        model = load_model(repo.tree("HEAD"))
    assert list(model.stacks) == ["main"]


def test_problem_formats_as_file_line_field() -> None:
    p = Problem("stacks/a.yaml", 7, "deployments.x.servers", "unknown server 'q'")
    assert str(p) == "stacks/a.yaml:7: deployments.x.servers: unknown server 'q'"


def test_hot_lowercase_types_are_accepted_in_native_definitions(
    make_repo: Callable[..., Path],
) -> None:
    """``number``, ``string``, ``comma_delimited_list``... as in HOT, beside the
    capitalised names."""
    component = COMPONENT.replace("type: Number", "type: number").replace(
        "type: String", "type: string"
    )
    model = load(
        make_repo,
        {
            "components/app/component.yaml": component,
            "stacks/main.yaml": """\
                kind: Stack
                parameters:
                  size: {type: number, default: "3"}
                  greeting: {type: string, default: hello}
                  names: {type: comma_delimited_list, default: "a,b"}
                deployments:
                  app:
                    component: app
                    servers: {group: pair}
                    input_values:
                      size: {get_param: size}
                      label: {get_param: greeting}
                """,
        },
    )
    app = model.deployment("main/app")
    assert app.input_values == {"size": 3, "label": "hello"}
    component_inputs = {i.name: i.type for i in model.components["app"].inputs}
    assert component_inputs == {"size": "Number", "label": "String"}


def test_preflight_and_on_drift_from_the_stack_or_the_deployment(
    make_repo: Callable[..., Path],
) -> None:
    stack = (
        "kind: Stack\npreflight: true\non_drift: correct\ndeployments:\n"
        "  a:\n    component: c\n    servers: [s1]\n    input_values: {label: x}\n"
        "  b:\n    component: c\n    servers: [s1]\n    input_values: {label: x}\n"
        "    preflight: false\n    on_drift: report\n"
    )
    model = load(make_repo, {"components/c/component.yaml": COMPONENT, "stacks/s.yaml": stack})
    a, b = model.deployment("s/a"), model.deployment("s/b")
    assert (a.preflight, a.on_drift) == (EVERY_SERVER, "correct")
    assert (b.preflight, b.on_drift) == (None, "report")


def test_preflight_min_pass_as_a_percentage_or_a_count(make_repo: Callable[..., Path]) -> None:
    stack = (
        "kind: Stack\npreflight: {min_pass: 75%}\ndeployments:\n"
        "  a:\n    component: c\n    servers: [s1, s2, s3]\n    input_values: {label: x}\n"
        "  b:\n    component: c\n    servers: [s1, s2, s3]\n    input_values: {label: x}\n"
        "    preflight: {min_pass: 2}\n"
    )
    model = load(make_repo, {"components/c/component.yaml": COMPONENT, "stacks/s.yaml": stack})
    a, b = model.deployment("s/a"), model.deployment("s/b")
    assert a.preflight == Preflight(75, percent=True)
    assert (a.preflight.required(3), a.preflight.required(4)) == (3, 3)
    assert b.preflight == Preflight(2, percent=False)
    assert (b.preflight.required(3), b.preflight.required(1)) == (2, 1)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "{min_pass: 0%}",
            "min_pass must be a percentage 1%..100% or a count of servers >= 1, got '0%'",
        ),
        (
            "{min_pass: 120%}",
            "min_pass must be a percentage 1%..100% or a count of servers >= 1, got '120%'",
        ),
        (
            "{min_pass: most}",
            "min_pass must be a percentage 1%..100% or a count of servers >= 1, got 'most'",
        ),
        (
            "{min_pass: 0}",
            "min_pass must be a percentage 1%..100% or a count of servers >= 1, got 0",
        ),
        ("{min_pass: 3}", "min_pass 3 is more servers than the deployment has (2)"),
    ],
)
def test_a_wrong_min_pass_names_file_line_and_field(
    make_repo: Callable[..., Path], value: str, message: str
) -> None:
    stack = (
        "kind: Stack\ndeployments:\n"
        "  a:\n    component: c\n    servers: [s1, s2]\n    input_values: {label: x}\n"
        f"    preflight: {value}\n"
    )
    found = problems(make_repo, {"components/c/component.yaml": COMPONENT, "stacks/s.yaml": stack})
    got = find(found, message)
    assert (got.file, got.line, got.field) == (
        "stacks/s.yaml",
        7,
        "deployments.a.preflight.min_pass",
    )


def test_a_wrong_preflight_or_on_drift_names_file_line_and_field(
    make_repo: Callable[..., Path],
) -> None:
    stack = (
        "kind: Stack\ndeployments:\n"
        "  a:\n    component: c\n    servers: [s1]\n    input_values: {label: x}\n"
        "    preflight: sometimes\n    on_drift: fix\n"
    )
    found = problems(make_repo, {"components/c/component.yaml": COMPONENT, "stacks/s.yaml": stack})
    preflight = find(found, "expected true, false or {min_pass: N% or N}, got")
    assert (preflight.file, preflight.line, preflight.field) == (
        "stacks/s.yaml",
        7,
        "deployments.a.preflight",
    )
    drift = find(found, "expected one of report, correct")
    assert (drift.line, drift.field) == (8, "deployments.a.on_drift")
