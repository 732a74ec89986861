"""The full lifecycle on a simulated fleet: suspend and resume, custom actions
once per token, create-before-delete replacement, trigger-only inputs, and
contextualization that follows group membership."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from setpoint.controller.errors import InvalidDefinitions
from tests.controller.fleet import Fleet, component, inventory

SERVERS = [f"n{i:02d}" for i in range(1, 13)]
BACKUP = """  - tool: script
    actions: [BACKUP]
    config: "#!/bin/sh\\n"
"""
PORT = """  - name: port
    type: Number
    default: 80
    replace_on_change: true
  - name: stamp
    type: String
    default: ""
"""


def stack(extra: str = "", values: str = "", stack_keys: str = "") -> str:
    return f"""\
kind: Stack
{stack_keys}deployments:
  app:
    component: app
    servers: {{group: nodes}}
    actions: [CREATE, UPDATE, DELETE, SUSPEND, RESUME]
    input_values:
      version: "1"
{values}{extra}"""


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(
        tmp_path,
        {
            "inventory.yaml": inventory(SERVERS, {"nodes": SERVERS}),
            "components/app/component.yaml": component(PORT, BACKUP),
            "stacks/s.yaml": stack(),
        },
    )
    yield f
    f.close()


def converge(fleet: Fleet, limit: int = 20) -> None:
    for _ in range(limit):
        if fleet.step().converged:
            return
    raise AssertionError("not converged")


def actions_run(fleet: Fleet, server: str) -> list[str]:
    return [a for a, _, _ in fleet.agent(server).ran]


def test_stack_state_suspends_and_resumes_every_server(fleet: Fleet) -> None:
    converge(fleet)
    fleet.commit({"stacks/s.yaml": stack(stack_keys="state: suspended\n")})
    outcome = fleet.run_pass()
    assert not outcome.converged
    converge(fleet)
    for server in SERVERS:
        assert actions_run(fleet, server) == ["CREATE", "SUSPEND"]
    fleet.commit({"stacks/s.yaml": stack(stack_keys="state: active\n")})
    converge(fleet)
    for server in SERVERS:
        assert actions_run(fleet, server) == ["CREATE", "SUSPEND", "RESUME"]


def test_custom_action_runs_once_per_token(fleet: Fleet) -> None:
    converge(fleet)
    run = "    run: {action: BACKUP, token: '2026-01-01'}\n"
    fleet.commit({"stacks/s.yaml": stack(run)})
    converge(fleet)
    converge(fleet)
    fleet.commit({"stacks/s.yaml": stack(run + "    timeout: 90\n")})  # same token
    converge(fleet)
    for server in SERVERS:
        assert actions_run(fleet, server) == ["CREATE", "BACKUP"]
    fleet.commit({"stacks/s.yaml": stack("    run: {action: BACKUP, token: again}\n")})
    converge(fleet)
    for server in SERVERS:
        assert actions_run(fleet, server) == ["CREATE", "BACKUP", "BACKUP"]


def test_run_names_an_unknown_action_with_file_line_and_field(fleet: Fleet) -> None:
    fleet.commit({"stacks/s.yaml": stack("    run: {action: RESTORE, token: x}\n")})
    with pytest.raises(InvalidDefinitions) as info:
        fleet.run_pass()
    problem = info.value.problems[0]
    assert (problem.file, problem.field) == ("stacks/s.yaml", "deployments.app.run.action")
    assert "no custom action 'RESTORE' (custom actions: BACKUP)" in problem.message


def test_trigger_only_input_reruns_update_everywhere(fleet: Fleet) -> None:
    converge(fleet)
    fleet.commit({"stacks/s.yaml": stack(values="      stamp: '1'\n")})
    converge(fleet)
    for server in SERVERS:
        assert actions_run(fleet, server) == ["CREATE", "UPDATE"]


def test_replace_on_change_creates_the_new_instance_before_deleting_the_old(
    fleet: Fleet,
) -> None:
    converge(fleet)
    old = fleet.entry(SERVERS[0], "s/app")
    assert old is not None
    assert old.name.startswith("s/app@")
    fleet.agent(SERVERS[1]).fail_versions = set()
    fleet.commit({"stacks/s.yaml": stack(values="      port: 8080\n")})
    # The new instance fails on one server: its old instance must stay.
    bad = fleet.agent(SERVERS[1])
    original_cycle = bad.cycle

    def failing_cycle() -> bool:
        bad.fail_versions = {"1"}
        return original_cycle()

    bad.cycle = failing_cycle  # type: ignore[method-assign]
    for _ in range(6):
        fleet.step()
    for server in SERVERS:
        ran = fleet.agent(server).ran
        names = [(a, n) for a, n, _ in ran]
        if server == SERVERS[1]:
            assert ("DELETE", old.name) not in names, "deleted before the new one succeeded"
            continue
        new = fleet.entry(server, "s/app")
        assert new is not None
        assert new.name != old.name
        create = names.index(("CREATE", new.name))
        delete = names.index(("DELETE", old.name))
        assert create < delete
        assert len(fleet.published(server).deployments) == 1
    # There the old instance stays next to the failed new one (halt: as it is).
    assert old.name in [e.name for e in fleet.published(SERVERS[1]).deployments]
    assert fleet.agent(SERVERS[1]).succeeded[old.name] == old.config


def test_membership_change_rerenders_consumers(tmp_path: Path) -> None:
    lb = """\
kind: Component
inputs:
  - name: version
    type: String
  - name: backends
    type: Json
outputs:
  - name: addr
configs:
  - tool: script
    actions: [CREATE, UPDATE]
    config: "#!/bin/sh\\n"
"""
    servers = [*SERVERS, "lb"]

    def stack_text() -> str:
        return """\
kind: Stack
deployments:
  app:
    component: app
    servers: {group: nodes}
    input_values: {version: "1"}
  lb:
    component: lb
    servers: [lb]
    input_values:
      version: "1"
      backends: {get_attr: [app, addr]}
"""

    fleet = Fleet(
        tmp_path,
        {
            "inventory.yaml": inventory(servers, {"nodes": SERVERS[:3]}),
            "components/app/component.yaml": component(PORT),
            "components/lb/component.yaml": lb,
            "stacks/s.yaml": stack_text(),
        },
    )
    try:
        converge(fleet)
        body = fleet.store.get_json_blob(fleet.entry("lb", "s/lb").config)  # type: ignore[union-attr]
        backends = {i["name"]: i["value"] for i in body["inputs"]}["backends"]
        assert sorted(backends) == SERVERS[:3]
        fleet.commit({"inventory.yaml": inventory(servers, {"nodes": SERVERS[1:5]})})
        converge(fleet)
        body = fleet.store.get_json_blob(fleet.entry("lb", "s/lb").config)  # type: ignore[union-attr]
        backends = {i["name"]: i["value"] for i in body["inputs"]}["backends"]
        assert sorted(backends) == SERVERS[1:5]
        assert backends["n05"] == "n05:1"
        assert fleet.entry("n01", "s/app") is None  # left the group: deleted there
    finally:
        fleet.close()
