"""Circular contextualization: deployments that read each other's outputs.

Some clusters need every member's facts before any member can finish (head
and compute nodes that each need the others' addresses). Such a cycle is
allowed when every deployment in it says ``converge: true``; any other cycle
stays a validation error. The loader finds the declared cycles
(``definitions.cycles``) and keeps them in the ``Model``.

A deployment on a group that reads its own output over the group (a
cluster whose members each need every member's address) is a cycle of one.

A declared cycle converges in *rounds*. Reads inside the cycle take the
outputs reported so far, or for a member whose last run failed or is still
running, as the last round knew them: a map over a group holds every member
known (one never reported is left out, or given the input's
``entry_default``), a read of one server not known gives the input's
default. Every member is rendered and published, and when all members have
reported COMPLETE with that round's digests, they are rendered again with the
new outputs. Until then a round's members render from the outputs the round
started from (kept in the ledger), so a round rolled out in batches
(``update_policy``) reaches every member even when the first batch's outputs
changed. The same digests again is the fixed point; different digests start
the next round; after ``DEFAULT_CONVERGE_ROUNDS`` rounds the controller
stops publishing new renders for the cycle and names the outputs still
changing. Rounds are counted in the controller's ledger, so a restarted
controller counts on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from setpoint.controller.definitions.model import DEFAULT_CONVERGE_ROUNDS
from setpoint.controller.rollout.ledger import Ledger
from setpoint.store.documents import Report


def cycle_id(cycle: tuple[str, ...]) -> str:
    return ",".join(cycle)


@dataclass
class RoundDecision:
    publish: bool
    reason: str = ""
    failure: str | None = None
    # A round in progress: the outputs it started from (``"dep|server" ->
    # outputs``) and the digests they rendered. Rendered again from these, the
    # round's members keep rolling out batch by batch while outputs change.
    started_from: dict[str, dict[str, Any]] | None = None
    digests: dict[str, str] | None = None


@dataclass
class Rounds:
    """Round keeping for the declared cycles of one pass."""

    ledger: Ledger
    reports: dict[str, Report]
    commit: str
    bound: int = DEFAULT_CONVERGE_ROUNDS
    seen: set[str] = field(default_factory=set)

    def _complete(self, key: str, digest: str) -> bool:
        deployment, server = key.split("|", 1)
        report = self.reports.get(server)
        if report is None:
            return False
        for name, got in report.deployments.items():
            if name.split("@", 1)[0] == deployment:
                return got.config == digest and got.status == "COMPLETE"
        return False

    def _outputs(self, keys: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in keys:
            deployment, server = key.split("|", 1)
            report = self.reports.get(server)
            for name, got in (report.deployments if report else {}).items():
                if name.split("@", 1)[0] == deployment and got.status == "COMPLETE":
                    out[key] = dict(got.outputs)
        return out

    def known_outputs(self, cycle: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        """The outputs the cycle's last round started from, ``"dep|server" -> outputs``
        (of any commit): what is known of a member whose report has none now."""
        record = self.ledger.cycles.get(cycle_id(cycle)) or {}
        return dict(record.get("outputs") or {})

    def decide(self, cycle: tuple[str, ...], rendered: dict[str, str]) -> RoundDecision:
        """Whether the cycle's fresh renders (``"dep|server" -> digest``) go out now."""
        cid = cycle_id(cycle)
        self.seen.add(cid)
        record = self.ledger.cycles.get(cid)
        # What the fresh renders read: reported outputs over those the last round
        # knew (``known_outputs``), for the pairs still in the cycle.
        known = self.known_outputs(cycle)
        outputs = {k: v for k, v in known.items() if k in rendered}
        outputs.update(self._outputs(sorted(rendered)))
        if record is None or record.get("commit") != self.commit:
            self.ledger.cycles[cid] = {
                "commit": self.commit,
                "round": 1,
                "digests": dict(sorted(rendered.items())),
                "outputs": outputs,
            }
            return RoundDecision(True)
        digests: dict[str, str] = record.get("digests", {})
        round_no = int(record.get("round", 1))
        if rendered == digests:
            return RoundDecision(True)  # nothing new: the fixed point, or the round goes on
        finished = all(self._complete(k, d) for k, d in digests.items())
        if not finished:
            return RoundDecision(
                False,
                f"contextualization round {round_no} in progress",
                started_from=record.get("outputs"),
                digests=digests,
            )
        if round_no >= self.bound:
            before = record.get("outputs", {})
            changing = sorted(
                f"{k.split('|')[0]}.{name} on {k.split('|')[1]}"
                for k in sorted(set(before) | set(outputs))
                for name in sorted(set(before.get(k, {})) | set(outputs.get(k, {})))
                if before.get(k, {}).get(name) != outputs.get(k, {}).get(name)
            )
            what = ", ".join(changing) or "none (inputs still changing)"
            return RoundDecision(
                False,
                f"contextualization stopped after {round_no} rounds",
                f"contextualization cycle {' -> '.join(cycle)} did not converge in "
                f"{round_no} rounds; outputs still changing: {what}",
            )
        self.ledger.cycles[cid] = {
            "commit": self.commit,
            "round": round_no + 1,
            "digests": dict(sorted(rendered.items())),
            "outputs": outputs,
        }
        return RoundDecision(True)

    def forget_others(self) -> None:
        for cid in [c for c in self.ledger.cycles if c not in self.seen]:
            del self.ledger.cycles[cid]
