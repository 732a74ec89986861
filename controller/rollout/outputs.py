"""A stack's outputs (a Heat template's ``outputs:``) resolved from what agents
reported, as inputs are: an output that reads a deployment's output is
*pending* until that deployment reported COMPLETE with its current config,
with the reason it waits. ``setpoint render`` and ``setpoint status`` show
them; ``setpoint plan`` shows those that merging HEAD adds, removes or
changes."""

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

    @property
    def key(self) -> str:
        return f"{self.stack}/{self.name}"

    def shown(self) -> str:
        """Its value as JSON (masked when secret), or its state and why."""
        if self.state != KNOWN:
            return f"{self.state}: {self.reason}"
        return str(self.value) if self.secret else json.dumps(self.value, sort_keys=True)

    def line(self) -> str:
        return f"  {self.key}  {self.shown()}"


@dataclass(frozen=True)
class OutputChange:
    """A stack output that merging HEAD adds (``before`` None), removes (``after``
    None) or shows differently (another value, state or reason)."""

    before: ShownOutput | None
    after: ShownOutput | None

    @property
    def key(self) -> str:
        either = self.after or self.before
        assert either is not None
        return either.key

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.key,
            "before": self.before.to_dict() if self.before else None,
            "after": self.after.to_dict() if self.after else None,
        }

    def line(self) -> str:
        if self.before is None:
            assert self.after is not None
            return f"  + {self.key}  {self.after.shown()}"
        if self.after is None:
            return f"  - {self.key}  (was {self.before.shown()})"
        return f"  ~ {self.key}  {self.before.shown()} -> {self.after.shown()}"


def output_changes(before: list[ShownOutput], after: list[ShownOutput]) -> list[OutputChange]:
    """The outputs shown differently after than before, in the order shown after
    (then those removed)."""
    old = {o.key: o for o in before}
    new = {o.key: o for o in after}

    def seen(o: ShownOutput) -> tuple[Any, ...]:
        return (o.state, json.dumps(o.value, sort_keys=True), o.reason, o.secret)

    changes = [
        OutputChange(old.get(key), out)
        for key, out in new.items()
        if key not in old or seen(old[key]) != seen(out)
    ]
    return changes + [OutputChange(out, None) for key, out in old.items() if key not in new]


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
    """``stack_outputs`` for a model nobody rendered yet (``status``, ``plan``): what
    the servers run is rendered again from the commit, a pure function of it
    (not at all when no stack has outputs)."""
    if not any(stack.outputs for stack in model.stacks.values()):
        return []
    return stack_outputs(model, compute_desired(model, reports, lambda _server: None), reports)


def format_outputs(outputs: list[ShownOutput]) -> list[str]:
    """The ``outputs`` section of ``render`` and ``status`` (nothing when none)."""
    if not outputs:
        return []
    return ["outputs:", *(o.line() for o in outputs)]
