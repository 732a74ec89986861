"""Defects found running operators' Heat templates, each with its template in
``heat_corpus/`` (written for these tests in the style of Heat's own examples):
loaded, rendered and converged with real agents (hooks run as processes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from setpoint.controller.definitions.loader import load_model
from setpoint.controller.errors import Problem
from tests.controller.test_heat_templates import KEEP_HOOK, HeatFleet, MakeFleet, values_of

CORPUS = Path(__file__).parent / "heat_corpus"


def corpus(name: str) -> str:
    return (CORPUS / name).read_text(encoding="utf-8")


@pytest.fixture
def fleet_of(tmp_path: Path) -> Iterator[MakeFleet]:
    """``fleet_of(files)``: a HeatFleet in this test's temp dir, closed after it."""
    made: list[HeatFleet] = []

    def make(files: dict[str, str]) -> HeatFleet:
        fleet = HeatFleet(tmp_path, files)
        made.append(fleet)
        return fleet

    yield make
    for fleet in made:
        fleet.repo.close()


def problems_of(fleet: HeatFleet) -> list[tuple[int, str]]:
    found: list[Problem] = []
    load_model(fleet.repo.tree("HEAD"), on_problem=found.append)
    return [(p.line, p.message) for p in found]


def test_a_template_that_begins_with_a_byte_order_mark_is_a_heat_template(
    fleet_of: MakeFleet,
) -> None:
    raw = (CORPUS / "bom.yaml").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    fleet = fleet_of({"stacks/bom.yaml": raw.decode("utf-8")})
    assert problems_of(fleet) == []
    assert [d.qualified for d in fleet.model().deployments()] == ["bom/deployment"]
    fleet.converge()
    assert fleet.report("server1").deployments["bom/deployment"].outputs["deploy_stdout"] == (
        "bom CREATE\n"
    )


def test_configs_used_only_as_user_data_are_not_evaluated_but_warned_about(
    fleet_of: MakeFleet,
) -> None:
    fleet = fleet_of({"stacks/boot.yaml": corpus("user_data.yaml")})
    # admin_password has no value: only the boot configs use it.
    assert problems_of(fleet) == [
        (15, "OS::Heat::CloudConfig is not managed by setpoint"),
        (24, "OS::Heat::SoftwareConfig is not managed by setpoint"),
        (31, "OS::Heat::MultipartMime is not managed by setpoint"),
    ]
    assert sorted(fleet.model().components) == ["boot/motd"]
    fleet.converge()
    assert fleet.report("server1").deployments["boot/motd"].outputs["deploy_stdout"] == (
        "welcome\n"
    )


# A heat-config hook that reports a list, as ansible or puppet hooks can.
HOSTS_HOOK = """\
#!/bin/sh
cat > /dev/null
echo '{"hosts": ["db-1", "db-2"], "deploy_status_code": 0}'
"""


def test_inputs_without_a_type_pass_lists_and_maps_through(fleet_of: MakeFleet) -> None:
    fleet = fleet_of({"stacks/untyped.yaml": corpus("untyped_inputs.yaml")})
    hook = fleet.root / "hooks" / "hosts-lister"
    hook.write_text(HOSTS_HOOK)
    hook.chmod(0o755)
    assert problems_of(fleet) == []
    fleet.converge()
    got = fleet.report("server1").deployments["untyped/deployment"]
    inputs = values_of(fleet.store.get_json_blob(got.config))
    assert inputs["ports"] == [80, 443]
    assert inputs["labels"] == {"tier": "web", "zone": "a"}
    assert inputs["plain"] == "text"
    assert inputs["zones"] == ["a", "b"]
    assert inputs["hosts"] == ["db-1", "db-2"]
    types = {i["name"]: i["type"] for i in fleet.store.get_json_blob(got.config)["inputs"]}
    assert [types[n] for n in ("ports", "labels", "plain", "zones", "hosts")] == [
        "Json", "Json", "String", "Json", "Json",
    ]  # fmt: skip
    assert got.outputs["seen"] == (
        '[80,443]|{"tier":"web","zone":"a"}|text|["a","b"]|["db-1","db-2"]'
    )


def test_a_servers_deployments_run_in_config_name_order_after_depends_on(
    fleet_of: MakeFleet, tmp_path: Path
) -> None:
    log = tmp_path / "order.log"
    fleet = fleet_of(
        {
            "stacks/order.yaml": corpus("config_name_order.yaml"),
            "stacks/order.env.yaml": f"parameter_defaults:\n  log: {log}\n",
        }
    )
    order = ["order/aa_first", "order/mm_middle", "order/zz_last", "order/after_all"]
    assert [d.qualified for d in fleet.model().deployments()] == order
    first = fleet.reconciler.run_pass()
    assert [e.name for e in first.desired.manifests["server1"].deployments] == order[:3]
    fleet.converge()
    assert log.read_text().splitlines() == ["aa_first", "mm_middle", "zz_last", "after_all"]


def test_a_component_runs_for_its_own_actions_and_each_run_refreshes_its_outputs(
    fleet_of: MakeFleet, tmp_path: Path
) -> None:
    log = tmp_path / "component.log"
    env = f"parameter_defaults:\n  log: {log}\n"
    fleet = fleet_of(
        {"stacks/svc.yaml": corpus("component_actions.yaml"), "stacks/svc.env.yaml": env}
    )
    assert fleet.model().deployment("svc/service_deployment").actions == (
        "CREATE",
        "SUSPEND",
        "RESUME",
    )

    def outputs() -> dict[str, object]:
        return fleet.report("server1").deployments["svc/service_deployment"].outputs

    fleet.converge()
    assert outputs()["phase"] == "installed"
    fleet.commit({"stacks/svc.env.yaml": env + "setpoint:\n  state: suspended\n"})
    fleet.converge()
    assert (outputs()["phase"], outputs()["deploy_stdout"]) == ("stopped", "service stopped\n")
    fleet.commit({"stacks/svc.env.yaml": env})
    fleet.converge()
    assert (outputs()["phase"], outputs()["deploy_stdout"]) == ("running", "service started\n")
    assert log.read_text().splitlines() == ["CREATE", "SUSPEND", "RESUME"]


def test_no_signal_configs_of_delivered_groups_complete_at_once(fleet_of: MakeFleet) -> None:
    fleet = fleet_of({"stacks/oac.yaml": corpus("ungrouped_no_signal.yaml")})
    fleet.converge()
    got = fleet.report("server1").deployments
    assert {name: (r.status, r.reason) for name, r in got.items()} == {
        "oac/settings": (
            "COMPLETE",
            "NO_SIGNAL and no hook for group 'os-apply-config': complete once delivered, "
            "as in Heat",
        ),
        "oac/motd": (
            "COMPLETE",
            "NO_SIGNAL and no hook for group 'Heat::Ungrouped': complete once delivered, "
            "as in Heat",
        ),
    }


def test_a_group_that_is_no_file_name_runs_the_hook_heat_config_would(
    fleet_of: MakeFleet,
) -> None:
    fleet = fleet_of({"stacks/oac.yaml": corpus("ungrouped_no_signal.yaml")})
    hook = fleet.root / "hooks" / "HeatUngrouped"  # heat-config's name for Heat::Ungrouped
    hook.write_text(KEEP_HOOK)
    hook.chmod(0o755)
    fleet.converge()
    kept = json.loads((fleet.kept / "server1-motd").read_text())
    assert kept == {"config": "Welcome to server1", "action": "CREATE"}
    motd = fleet.report("server1").deployments["oac/motd"]
    assert (motd.status, motd.reason, motd.outputs["deploy_stdout"]) == ("COMPLETE", None, "kept")
