"""What a group's join or leave does to the members reading a map over it.

A ``get_attr`` over a group (``{PEERS: {get_attr: [member, addr]}}``) is a
map with one entry per member. When a server joins or leaves the group, every
deployment reading that map gains or loses an entry: the plan says which, on
which servers, and with which value (secret inputs masked). Inside a
contextualization cycle a member that has not reported yet is left out of
the map, so on a join the running members' digests do not change at first:
they re-run once the newcomer reported, and the plan says that instead of
calling them unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from setpoint.controller.definitions.model import Deployment, GetAttr, InputDef, Model, attrs_in
from setpoint.controller.rollout.inputs import Missing, complete_output
from setpoint.store.documents import Report
from setpoint.store.masking import MASK

JOINS, LEAVES = "joins", "leaves"


@dataclass(frozen=True)
class EntryChange:
    """One entry a consumer's input map gains (``JOINS``) or loses (``LEAVES``)."""

    input: str
    reads: str  # <deployment>.<output> the map is made of
    server: str  # the member whose entry comes or goes
    change: str
    value: str | None  # as shown (JSON, or the mask); None: known after apply

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "reads": self.reads,
            "server": self.server,
            "change": self.change,
            "value": self.value,
        }


def _shown(idef: InputDef, ref: GetAttr, server: str, reports: dict[str, Report]) -> str | None:
    """The entry of ``server`` as a plan shows it: reported, else the input's
    ``entry_default``, else None (known after apply); a secret input's masked."""
    try:
        value = complete_output(reports, server, ref.deployment, ref.output)
    except Missing:
        if not idef.has_entry_default:
            return None
        value = idef.entry_default
    return MASK if idef.secret else json.dumps(value, sort_keys=True)


def entry_changes(
    base: Model, head: Model, dep: Deployment, reports: dict[str, Report]
) -> list[EntryChange]:
    """The entries ``dep``'s inputs gain or lose between ``base`` and ``head``
    because servers joined or left a deployment whose map they read."""
    component = head.components[dep.component]
    changes: list[EntryChange] = []
    for name, raw in sorted(dep.input_values.items()):
        idef = component.input(name)
        if idef is None:
            continue
        for ref in attrs_in(raw):
            if ref.server is not None or ref.deployment not in base.order:
                continue
            after = head.deployment(ref.deployment)
            if not after.reports_a_map:
                continue
            before = base.deployment(ref.deployment).servers
            reads = f"{ref.deployment}.{ref.output}"
            changes += [
                EntryChange(name, reads, s, JOINS, _shown(idef, ref, s, reports))
                for s in after.servers
                if s not in before
            ]
            changes += [
                EntryChange(name, reads, s, LEAVES, _shown(idef, ref, s, reports))
                for s in before
                if s not in after.servers
            ]
    return changes
