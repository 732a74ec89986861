"""A deployment's input values, resolved from the outputs its upstreams
reported: a value that is not known yet makes the deployment wait, with the
reason (``Waiting``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from setpoint.controller.definitions.model import (
    Computed,
    ComputeError,
    Deployment,
    GetAttr,
    Model,
)
from setpoint.store.documents import Report


@dataclass(frozen=True)
class Waiting:
    """Why ``deployment`` is not (re)published on ``server`` yet."""

    deployment: str
    server: str
    upstream: str
    upstream_server: str | None
    output: str | None
    reason: str

    def __str__(self) -> str:
        return f"{self.deployment} on {self.server}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "server": self.server,
            "upstream": self.upstream,
            "upstream_server": self.upstream_server,
            "output": self.output,
            "reason": self.reason,
        }


class Missing(Exception):
    """An output inside a declared cycle that nobody reported yet."""


# A map entry of a member that has not reported: left out of the map.
LEFT_OUT: Any = object()


class Wait(Exception):
    """Raised with the reason a deployment cannot be rendered yet."""

    def __init__(self, waiting: Waiting) -> None:
        self.waiting = waiting


def reported(reports: dict[str, Report], server: str, deployment: str) -> Any:
    report = reports.get(server)
    return report.deployments.get(deployment) if report else None


def complete_output(reports: dict[str, Report], server: str, deployment: str, output: str) -> Any:
    """``output`` as any config (instance) of ``deployment`` reported it COMPLETE
    on ``server``, or ``Missing``."""
    report = reports.get(server)
    for name, got in (report.deployments if report else {}).items():
        complete = got.status == "COMPLETE" and output in got.outputs
        if name.split("@", 1)[0] == deployment and complete:
            return got.outputs[output]
    raise Missing()


def output_reads(model: Model, dep: Deployment) -> frozenset[tuple[str, str | None]]:
    """Where ``dep``'s inputs read reported outputs, as ``InputResolver.value``
    resolves them: ``(upstream, server)`` for one server's value, ``(upstream,
    None)`` for the upstream's whole map. The same on each of ``dep``'s servers.
    (``depends_on`` only waits: it reads nothing.)"""
    reads: set[tuple[str, str | None]] = set()
    for ref in dep.attr_refs():
        target = model.deployment(ref.deployment)
        if ref.server is not None:
            reads.add((ref.deployment, ref.server))
        elif target.reports_a_map:
            reads.add((ref.deployment, None))
        else:
            reads.add((ref.deployment, target.servers[0]))
    return frozenset(reads)


class InputResolver:
    """A deployment's input values on a server, from what its upstreams reported."""

    def __init__(
        self,
        model: Model,
        reports: dict[str, Report],
        rendered: dict[tuple[str, str], str],
        instances: dict[tuple[str, str], str],
    ) -> None:
        self.model = model
        self.reports = reports
        # What the pass rendered so far: digest and instance name of each
        # ready (deployment, server), as ``DesiredState`` keeps them.
        self.rendered = rendered
        self.instances = instances
        # Members of a declared cycle whose round is in progress: reads of their
        # outputs come from what the round started from (``"dep|server" -> outputs``).
        self.round_outputs: dict[str, dict[str, Any]] = {}
        self.in_round: set[str] = set()
        # Outputs of cycle members as the last round knew them (``"dep|server" ->
        # outputs``): a member whose last run failed or is running keeps its entry.
        self.last_known: dict[str, dict[str, Any]] = {}

    def upstream_complete(
        self, who: str, server: str, upstream: str, upstream_server: str, output: str | None
    ) -> dict[str, Any]:
        """The upstream's reported outputs on one server, or raise ``Wait`` for
        ``who`` (a deployment, or a stack's output) on ``server``."""

        def wait(reason: str) -> Wait:
            return Wait(Waiting(who, server, upstream, upstream_server, output, reason))

        wanted = self.rendered.get((upstream, upstream_server))
        what = f"{upstream}" + (f".{output}" if output else "") + f" on {upstream_server}"
        if wanted is None:
            raise wait(f"waits for {what}: {upstream} is itself waiting")
        instance = self.instances.get((upstream, upstream_server), upstream)
        entry = reported(self.reports, upstream_server, instance)
        if entry is None or entry.config != wanted:
            raise wait(f"waits for {what}: not yet run with its current config")
        if entry.status != "COMPLETE":
            raise wait(f"waits for {what}: {entry.status.lower()}")
        if output is not None and output not in entry.outputs:
            raise wait(f"waits for {what}: COMPLETE but the output was not reported")
        return dict(entry.outputs)

    def in_cycle(self, who: str, upstream: str) -> bool:
        cycle = self.model.cycle_of(who)
        return cycle is not None and upstream in cycle

    def known_so_far(self, upstream: str, upstream_server: str, output: str) -> Any:
        """Inside a declared cycle: the output as last reported COMPLETE by any
        config of the upstream, else as the last round knew it (during a round,
        as the round started from it), or ``Missing`` (left out of a map, or the
        input's default)."""
        key = f"{upstream}|{upstream_server}"
        if upstream in self.in_round:
            outputs = self.round_outputs.get(key, {})
            if output not in outputs:
                raise Missing()
            return outputs[output]
        try:
            return complete_output(self.reports, upstream_server, upstream, output)
        except Missing:
            known = self.last_known.get(key, {})
            if output not in known:
                raise
            return known[output]

    def cycle_map(self, ref: GetAttr, servers: tuple[str, ...], absent: Any) -> dict[str, Any]:
        """A map read inside a declared cycle: every member that reported, and
        ``absent`` for each that has not (``LEFT_OUT``: no entry). A member that
        has not reported yet never blanks the others' entries: a running
        member's input only ever gains information while a newcomer joins."""
        got: dict[str, Any] = {}
        for s in servers:
            try:
                got[s] = self.known_so_far(ref.deployment, s, ref.output)
            except Missing:
                if absent is not LEFT_OUT:
                    got[s] = absent
        return got

    def value(self, who: str, server: str, value: Any, absent: Any = LEFT_OUT) -> Any:
        """``value`` with every ``GetAttr`` and ``Computed`` in it resolved for
        ``who`` (a deployment, or a stack's output) on ``server``, or raise
        ``Wait``; ``absent`` is the entry of a cycle member not reported yet in a
        map read (the input's ``entry_default``)."""
        if isinstance(value, GetAttr) and self.in_cycle(who, value.deployment):
            target = self.model.deployment(value.deployment)
            if value.server is None and target.reports_a_map:
                return self.cycle_map(value, target.servers, absent)
            one = value.server if value.server is not None else target.servers[0]
            return self.known_so_far(value.deployment, one, value.output)
        if isinstance(value, GetAttr):
            target = self.model.deployment(value.deployment)
            if value.server is not None:
                return self.upstream_complete(
                    who, server, value.deployment, value.server, value.output
                )[value.output]
            per_server = {
                s: self.upstream_complete(who, server, value.deployment, s, value.output)[
                    value.output
                ]
                for s in target.servers
            }
            return per_server if target.reports_a_map else per_server[target.servers[0]]
        if isinstance(value, Computed):
            args = self.value(who, server, value.args, absent)
            try:
                return value.fn(args)
            except ComputeError as exc:
                # Reported values that do not fit the function: the deployment
                # waits with the reason, as Heat would fail its resource.
                raise Wait(Waiting(who, server, who, None, None, f"{value.label}: {exc}")) from None
        if isinstance(value, dict):
            return {k: self.value(who, server, v, absent) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(who, server, v, absent) for v in value]
        return value

    def inputs(self, dep: Deployment, server: str) -> dict[str, Any]:
        for upstream in dep.depends_on:
            if self.in_cycle(dep.qualified, upstream):
                continue  # rounds order the members of a declared cycle
            for upstream_server in self.model.deployment(upstream).servers:
                self.upstream_complete(dep.qualified, server, upstream, upstream_server, None)
        component = self.model.components[dep.component]
        values: dict[str, Any] = {}
        for name, raw in dep.input_values.items():
            idef = component.input(name)
            assert idef is not None  # the loader checked every input name
            absent = idef.entry_default if idef.has_entry_default else LEFT_OUT
            try:
                resolved = self.value(dep.qualified, server, raw, absent)
            except Missing:
                if not idef.has_default:
                    raise Wait(
                        Waiting(
                            dep.qualified, server, dep.qualified, None, name,
                            f"input {name!r}: an output of the cycle is not known yet and "
                            "the input has no default",
                        )
                    ) from None  # fmt: skip
                values[name] = idef.default
                continue
            try:
                values[name] = idef.typed(resolved)
            except ValueError as exc:
                raise Wait(
                    Waiting(
                        dep.qualified,
                        server,
                        dep.qualified,
                        None,
                        name,
                        f"input {name!r}: reported value does not fit: {exc}",
                    )
                ) from None
        return values
