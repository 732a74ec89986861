"""Circular contextualization: a declared cycle converges in rounds or stops
at the bound naming the outputs still changing; undeclared cycles are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from setpoint.controller.errors import InvalidDefinitions
from setpoint.controller.rollout.ledger import read_ledger
from tests.controller.fleet import Fleet, inventory

NODES = ["head", "c1", "c2"]
PEER = """\
kind: Component
inputs:
  - name: version
    type: String
  - name: left
    type: String
    default: unknown
  - name: right
    type: String
    default: unknown
outputs:
  - name: addr
configs:
  - tool: script
    actions: [CREATE, UPDATE]
    config: "#!/bin/sh\\n"
"""


def cycle_stack(converge: tuple[bool, bool, bool] = (True, True, True)) -> str:
    lines = ["kind: Stack", "deployments:"]
    for i, node in enumerate(NODES):
        left, right = NODES[(i + 1) % 3], NODES[(i + 2) % 3]
        lines += [
            f"  {node}:",
            "    component: peer",
            f"    servers: [{node}]",
            f"    converge: {'true' if converge[i] else 'false'}",
            "    input_values:",
            '      version: "1"',
            f"      left: {{get_attr: [{left}, addr]}}",
            f"      right: {{get_attr: [{right}, addr]}}",
        ]
    return "\n".join(lines) + "\n"


def make(tmp_path: Path, stack: str) -> Fleet:
    return Fleet(
        tmp_path,
        {
            "inventory.yaml": inventory(NODES, {}),
            "components/peer/component.yaml": PEER,
            "stacks/s.yaml": stack,
        },
    )


def inputs(fleet: Fleet, node: str) -> dict[str, str]:
    entry = fleet.entry(node, f"s/{node}")
    assert entry is not None
    body = fleet.store.get_json_blob(entry.config)
    return {i["name"]: i["value"] for i in body["inputs"]}


def test_a_three_node_cycle_converges_in_bounded_rounds(tmp_path: Path) -> None:
    fleet = make(tmp_path, cycle_stack())
    try:
        first = fleet.run_pass()
        assert inputs(fleet, "head")["left"] == "unknown"  # not reported yet: the default
        assert first.failed == []
        for _ in range(10):
            fleet.agents_cycle()
            outcome = fleet.run_pass()
            if outcome.converged:
                break
        assert outcome.converged
        assert inputs(fleet, "head") == {"version": "1", "left": "c1:1", "right": "c2:1"}
        assert inputs(fleet, "c2") == {"version": "1", "left": "head:1", "right": "c1:1"}
        record = next(iter(read_ledger(fleet.store).cycles.values()))
        assert record["round"] == 2
        fleet.store.stats.reset()
        assert fleet.run_pass().converged
        assert fleet.store.stats.writes == 0
    finally:
        fleet.close()


def test_an_oscillating_cycle_stops_at_the_bound_naming_the_outputs(tmp_path: Path) -> None:
    fleet = make(tmp_path, cycle_stack())
    try:
        for node in NODES:
            fleet.agent(node).echo_inputs = True
        published = 0
        for _ in range(20):
            outcome = fleet.run_pass()
            published += len(outcome.published.changed)
            fleet.agents_cycle()
        assert not outcome.converged
        record = next(iter(read_ledger(fleet.store).cycles.values()))
        assert record["round"] == 5
        assert len(outcome.failed) == 1
        message = outcome.failed[0]
        assert "did not converge in 5 rounds" in message
        assert "outputs still changing: s/c1.addr on c1, s/c2.addr on c2, s/head.addr on head" in (
            message
        )
        assert published == 5 * 3  # one pointer per node per round, then nothing
    finally:
        fleet.close()


def test_an_undeclared_cycle_stays_an_error(tmp_path: Path) -> None:
    fleet = make(tmp_path, cycle_stack((True, False, True)))
    try:
        with pytest.raises(InvalidDefinitions) as info:
            fleet.run_pass()
        messages = [p.message for p in info.value.problems]
        assert any(m.startswith("dependency cycle: ") for m in messages)
        assert any("converge: true, but s/head is in no dependency cycle" in m for m in messages)
    finally:
        fleet.close()


@pytest.mark.parametrize("bound", [2, 8])
def test_the_round_bound_is_the_controllers_converge_rounds(tmp_path: Path, bound: int) -> None:
    fleet = make(tmp_path, cycle_stack())
    fleet.reconciler.converge_rounds = bound  # setpoint reconcile/watch --converge-rounds
    try:
        for node in NODES:
            fleet.agent(node).echo_inputs = True
        published = 0
        for _ in range(4 * bound):
            outcome = fleet.run_pass()
            published += len(outcome.published.changed)
            fleet.agents_cycle()
        assert next(iter(read_ledger(fleet.store).cycles.values()))["round"] == bound
        assert f"did not converge in {bound} rounds" in outcome.failed[0]
        assert published == bound * 3
    finally:
        fleet.close()
