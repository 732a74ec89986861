"""A stack's outputs (a Heat template's ``outputs:``) resolved from what agents
reported, as inputs are: an output that reads a deployment's output is
*pending* until that deployment reported COMPLETE with its current config,
with the reason it waits. ``setpoint render`` and ``setpoint status`` show
them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from setpoint.controller.definitions.model import Model
from setpoint.controller.rollout.desired import DesiredState, compute_desired
from setpoint.controller.rollout.inputs import InputResolver, Wait
from setpoint.store.documents import Report
from setpoint.store.masking import MASK

KNOWN, PENDING, NOT_COMPUTED = "known", "pending", "not computed"


@dataclass(frozen=True)
class ShownOutput:
    stack: str
    name: str
    description: str
    state: str  # KNOWN, PENDING or NOT_COMPUTED
    value: Any  # when KNOWN (masked when secret)
    reason: str  # why PENDING or NOT_COMPUTED
    secret: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "name": self.name,
            "description": self.description,
            "state": self.state,
            "value": self.value,
            "reason": self.reason,
            "secret": self.secret,
        }

    def line(self) -> str:
        what = json.dumps(self.value, sort_keys=True) if self.state == KNOWN else self.reason
        if self.secret and self.state == KNOWN:
            what = str(self.value)
        state = "" if self.state == KNOWN else f"{self.state}: "
        return f"  {self.stack}/{self.name}  {state}{what}"


def stack_outputs(
    model: Model, desired: DesiredState, reports: dict[str, Report]
) -> list[ShownOutput]:
    """Every stack output of ``model``, by stack and name, resolved from ``reports``
    against the configs ``desired`` rendered."""
    resolver = InputResolver(model, reports, desired.rendered, desired.instances)
    shown: list[ShownOutput] = []
    for stack in sorted(model.stacks):
        for out in model.stacks[stack].outputs.values():
            who = f"{stack}/outputs.{out.name}"
            state, value, reason = KNOWN, None, ""
            if out.not_computed:
                state, reason = NOT_COMPUTED, out.not_computed
            else:
                try:
                    value = resolver.value(who, "-", out.value)
                except Wait as wait:
                    state, reason = PENDING, wait.waiting.reason
            if out.secret and state == KNOWN:
                value = f"{MASK} (secret)"  # as setpoint plan and status mask secret inputs
            shown.append(
                ShownOutput(stack, out.name, out.description, state, value, reason, out.secret)
            )
    return shown


def outputs_from_reports(model: Model, reports: dict[str, Report]) -> list[ShownOutput]:
    """``stack_outputs`` for a model nobody rendered yet (``status``): what the
    servers run is rendered again from the commit, a pure function of it."""
    return stack_outputs(model, compute_desired(model, reports, lambda _server: None), reports)


def format_outputs(outputs: list[ShownOutput]) -> list[str]:
    """The ``outputs`` section of ``render`` and ``status`` (nothing when none)."""
    if not outputs:
        return []
    return ["outputs:", *(o.line() for o in outputs)]
