"""The definitions of one commit, checked and resolved: what the loader returns.

Everything here is plain data. ``get_param`` and ``get_file`` are resolved by
the loader; ``GetAttr`` stays symbolic until render time, because its value
is an output that agents report.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from setpoint.controller.definitions.values import coerce

INPUT_TYPES = ("String", "Number", "CommaDelimitedList", "Json", "Boolean")
# HOT's spelling of the same types, accepted wherever a type is written.
HOT_TYPES = {
    "string": "String",
    "number": "Number",
    "comma_delimited_list": "CommaDelimitedList",
    "json": "Json",
    "boolean": "Boolean",
}
DEFAULT_TIMEOUT = 600.0
DEFAULT_DEPLOYMENT_ACTIONS = ("CREATE", "UPDATE")
# reverse: when the deployment changes, the deployments that depend on it roll
# out first (reading its old outputs), and it follows once they are COMPLETE.
UPDATE_ORDERS = ("parallel", "serial", "reverse")
ON_FAILURE = ("halt", "rollback")
# What the controller does when an agent reports the applied config drifted:
# show it, or re-run its UPDATE (through the rollout's batches).
ON_DRIFT = ("report", "correct")
STATES = ("active", "suspended")
# Rounds a declared contextualization cycle may take before the controller gives up.
DEFAULT_CONVERGE_ROUNDS = 5


@dataclass(frozen=True)
class UpdatePolicy:
    """How many servers of a deployment change at once (Heat's rolling_update).

    ``max_batch_size`` None means all at once; ``canary`` > 0 makes the first
    batch that many servers; ``pause_time`` seconds pass between batches.
    """

    max_batch_size: int | None = None
    min_in_service: int = 0
    pause_time: float = 0.0
    canary: int = 0


ALL_AT_ONCE = UpdatePolicy()
ONE_AT_A_TIME = UpdatePolicy(max_batch_size=1)


@dataclass(frozen=True)
class Preflight:
    """``preflight``: a change is checked on every server before its first batch,
    and the rollout starts once ``min_pass`` of the servers checked passed: a
    percentage of them (``percent``) or a count. ``preflight: true`` is 100%.
    The servers whose check failed are left out of a rollout that starts."""

    min_pass: int = 100
    percent: bool = True

    @property
    def everywhere(self) -> bool:
        """Every server checked must pass (``preflight: true``, ``min_pass: 100%``)."""
        return self.percent and self.min_pass >= 100

    def required(self, checked: int) -> int:
        """How many of ``checked`` servers must pass for the rollout to start."""
        if self.percent:
            return math.ceil(checked * self.min_pass / 100)
        return min(self.min_pass, checked)

    def describe(self) -> str:
        return f"min_pass {self.min_pass}{'%' if self.percent else ''}"


EVERY_SERVER = Preflight()


@dataclass(frozen=True)
class RunRequest:
    """``run: {action: BACKUP, token: ...}``: run a custom action once per token."""

    action: str
    token: str


@dataclass(frozen=True)
class InputDef:
    name: str
    type: str
    default: Any = None
    has_default: bool = False
    description: str = ""
    replace_on_change: bool = False
    # Masked wherever a value is shown to people (plans); still part of the
    # digest, since the server must rerun when a password changes.
    secret: bool = False
    # Heat's input declared without a type (or an input_values key the config
    # does not declare): a list or map it is given passes as it is, as Json.
    as_given: bool = False
    # In a ``get_attr`` map of a contextualization cycle, the entry of a member
    # that has not reported yet (without one, its entry is left out).
    entry_default: Any = None
    has_entry_default: bool = False

    def typed(self, value: Any) -> Any:
        """``value`` as this input's value: coerced to its type (``ValueError``
        when it does not fit); a list or map kept as it is when ``as_given``."""
        return coerce(self.type_for(value), value)

    def type_for(self, value: Any) -> str:
        """The type the derived config names for ``value``."""
        return "Json" if self.as_given and isinstance(value, dict | list) else self.type


@dataclass(frozen=True)
class OutputDef:
    name: str
    description: str = ""
    error_output: bool = False


@dataclass(frozen=True)
class ConfigEntry:
    tool: str
    actions: tuple[str, ...]
    config: Any


@dataclass(frozen=True)
class AttachedFile:
    """A file or directory attached to a component, already read from the commit.

    For a file, ``digest`` is the blake3 of ``content``. For a directory,
    ``digest`` is the tree digest (its identity in a derived config) and
    ``content`` is the deterministic zip that carries it, stored under
    ``zip_digest``.
    """

    name: str
    path: str
    kind: str  # "file" or "directory"
    digest: str
    content: bytes
    executable: bool = False
    zip_digest: str | None = None


@dataclass(frozen=True)
class Component:
    name: str
    file: str
    description: str
    inputs: tuple[InputDef, ...]
    outputs: tuple[OutputDef, ...]
    configs: tuple[ConfigEntry, ...]
    files: tuple[AttachedFile, ...]
    options: dict[str, Any]
    timeout: float = DEFAULT_TIMEOUT
    # Heat's StructuredDeployment: ``{<input_key>: name}`` in the configs is
    # replaced by that input's value when rendered. None: configs go as written.
    input_key: str | None = None

    def input(self, name: str) -> InputDef | None:
        return next((i for i in self.inputs if i.name == name), None)

    def output(self, name: str) -> OutputDef | None:
        return next((o for o in self.outputs if o.name == name), None)


@dataclass(frozen=True)
class GetAttr:
    """``{get_attr: [deployment, output(, server)]}``: an output another deployment reports."""

    deployment: str  # qualified: <stack>/<deployment>
    output: str
    server: str | None
    file: str
    line: int


class ComputeError(ValueError):
    """A function that cannot give a value from its arguments (for a ``Computed``:
    from the values agents reported); the message says why."""


@dataclass(frozen=True)
class Computed:
    """A value computed at render time from values known only then (Heat's
    ``str_replace`` or ``list_join`` over a ``get_attr``): ``fn(resolved args)``,
    which raises ``ComputeError`` when the reported values do not fit."""

    label: str
    fn: Callable[[Any], Any]
    args: Any


@dataclass(frozen=True)
class ParamDef:
    name: str
    type: str
    default: Any = None
    has_default: bool = False
    description: str = ""


@dataclass(frozen=True)
class Deployment:
    stack: str
    name: str
    component: str
    servers: tuple[str, ...]
    group: str | None
    actions: tuple[str, ...]
    input_values: dict[str, Any]
    depends_on: tuple[str, ...]
    timeout: float | None
    file: str
    line: int
    update_policy: UpdatePolicy | None = None
    batch_create: UpdatePolicy | None = None
    update_order: str = "parallel"
    on_failure: str = "halt"
    state: str = "active"
    run: RunRequest | None = None
    converge: bool = False
    # Heat's ``signal_transport: NO_SIGNAL``: COMPLETE once delivered, for the
    # groups Heat's agents only deliver (``Heat::Ungrouped``, ``os-apply-config``).
    no_signal: bool = False
    # Check a change on every server (the tools' check modes) before its first
    # batch (None: no preflight).
    preflight: Preflight | None = None
    on_drift: str = "report"

    @property
    def qualified(self) -> str:
        return f"{self.stack}/{self.name}"

    @property
    def reports_a_map(self) -> bool:
        """Whether ``get_attr`` on it yields {server: value} rather than one value.

        A group always does (its size may change); an explicit list does when it
        names more than one server.
        """
        return self.group is not None or len(self.servers) > 1

    def policy(self, creating: bool) -> UpdatePolicy:
        """The batch policy for servers that get this deployment for the first
        time (``creating``) or that change it."""
        if creating:
            return self.batch_create or ALL_AT_ONCE
        if self.update_policy is not None:
            return self.update_policy
        return ONE_AT_A_TIME if self.update_order == "serial" else ALL_AT_ONCE

    def attr_refs(self) -> list[GetAttr]:
        return attrs_in(self.input_values)

    def upstreams(self) -> set[str]:
        """Deployments this one waits for: data flow and explicit ``depends_on``."""
        return {r.deployment for r in self.attr_refs()} | set(self.depends_on)


def attrs_in(value: Any) -> list[GetAttr]:
    """Every ``get_attr`` in an input value, however deep."""
    refs: list[GetAttr] = []
    _collect_attrs(value, refs)
    return refs


def _collect_attrs(value: Any, into: list[GetAttr]) -> None:
    if isinstance(value, GetAttr):
        into.append(value)
    elif isinstance(value, Computed):
        _collect_attrs(value.args, into)
    elif isinstance(value, dict):
        for v in value.values():
            _collect_attrs(v, into)
    elif isinstance(value, list):
        for v in value:
            _collect_attrs(v, into)


@dataclass(frozen=True)
class StackOutput:
    """One of a Heat template's ``outputs:``. Its value is known when the commit
    is read, or holds ``GetAttr``/``Computed`` parts known once agents reported
    (as an input value does); ``not_computed`` says why setpoint gives none."""

    name: str
    description: str
    value: Any
    file: str
    line: int
    not_computed: str = ""
    secret: bool = False  # made from a hidden parameter: shown masked


@dataclass(frozen=True)
class Stack:
    name: str
    file: str
    description: str
    parameters: dict[str, ParamDef]
    deployments: dict[str, Deployment]
    outputs: dict[str, StackOutput] = field(default_factory=dict)


@dataclass(frozen=True)
class Inventory:
    servers: dict[str, dict[str, Any]]
    groups: dict[str, tuple[str, ...]]


# The events a notification target may be told of (``notifications.yaml``).
EVENT_KINDS = ("rollout_started", "batch_failed", "rollback", "converged", "agent_unreachable")
TARGET_TYPES = ("webhook", "slack")


@dataclass(frozen=True)
class NotifyTarget:
    """Where notifications go: a generic JSON webhook or a Slack incoming webhook.

    The HMAC secret of a webhook is never in git: ``secret_env`` names the
    environment variable and ``secret_file`` the file the controller reads it
    from when it sends.
    """

    name: str
    type: str
    url: str
    events: tuple[str, ...] = EVENT_KINDS
    secret_env: str | None = None
    secret_file: str | None = None


@dataclass(frozen=True)
class Model:
    commit: str
    components: dict[str, Component]
    stacks: dict[str, Stack]
    inventory: Inventory
    order: tuple[str, ...] = field(default=())  # qualified deployments, dependencies first
    # Declared contextualization cycles (``converge: true``), each a tuple of deployments.
    cycles: tuple[tuple[str, ...], ...] = field(default=())
    environment: str | None = None  # environments/<name>.yaml the model was loaded with
    notifications: tuple[NotifyTarget, ...] = field(default=())  # notifications.yaml

    def deployment(self, qualified: str) -> Deployment:
        stack, name = qualified.split("/", 1)
        return self.stacks[stack].deployments[name]

    def deployments(self) -> list[Deployment]:
        """Every deployment, dependencies before dependents."""
        return [self.deployment(q) for q in self.order]

    def cycle_of(self, qualified: str) -> tuple[str, ...] | None:
        return next((c for c in self.cycles if qualified in c), None)

    def servers_in_use(self) -> set[str]:
        return {s for d in self.deployments() for s in d.servers}
