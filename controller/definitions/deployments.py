"""A native stack's ``deployments``: component, servers, actions, input
values, ``depends_on`` and the rollout and lifecycle keys."""

from __future__ import annotations

from typing import Any

from setpoint.controller.definitions.checks import Where, did_you_mean
from setpoint.controller.definitions.fields import (
    read_actions,
    read_preflight,
    read_timeout,
    read_update_policy,
)
from setpoint.controller.definitions.files import CommitFiles
from setpoint.controller.definitions.intrinsics import INVALID, NativeIntrinsics, has_deferred
from setpoint.controller.definitions.model import (
    DEFAULT_DEPLOYMENT_ACTIONS,
    ON_DRIFT,
    ON_FAILURE,
    STATES,
    UPDATE_ORDERS,
    Component,
    Deployment,
    Inventory,
    RunRequest,
)
from setpoint.controller.definitions.references import References, qualify
from setpoint.controller.definitions.values import kind_of
from setpoint.controller.definitions.yamlsource import YList, YMap
from setpoint.store.documents import LIFECYCLE_ACTIONS

ROLLOUT_KEYS = (
    "update_policy", "batch_create", "update_order", "on_failure", "state", "run", "converge",
    "preflight", "on_drift",
)  # fmt: skip
DEPLOYMENT_KEYS = (
    "component", "servers", "actions", "input_values", "depends_on", "timeout", *ROLLOUT_KEYS,
)  # fmt: skip


class DeploymentReader:
    """Reads the deployments of native stacks against the commit's components
    and inventory; references between them go to ``references``."""

    def __init__(
        self,
        files: CommitFiles,
        references: References,
        components: dict[str, Component],
        inventory: Inventory,
    ) -> None:
        self.files = files
        self.checks = files.checks
        self.references = references
        self.components = components
        self.inventory = inventory

    def deployment(
        self,
        name: str,
        body: Any,
        where: Where,
        intrinsics: NativeIntrinsics,
        defaults: dict[str, Any],
    ) -> Deployment | None:
        """Deployment ``name`` of the stack ``intrinsics`` resolves values for;
        ``defaults`` are the stack's ``on_failure``, ``state``, ``preflight`` and
        ``on_drift``."""
        checks = self.checks
        stack = intrinsics.stack
        dm = checks.mapping(body, where, "a deployment")
        if dm is None:
            return None
        checks.check_keys(dm, where, DEPLOYMENT_KEYS, ("component", "servers"))
        component_name = checks.text(dm, "component", where)
        component = self.components.get(component_name)
        if component is None and "component" in dm:
            hint = did_you_mean(component_name, tuple(self.components))
            checks.error(where.at(dm, "component"), f"unknown component {component_name!r}{hint}")
        servers, group = self.servers(dm, where)
        actions = read_actions(checks, dm, where, DEFAULT_DEPLOYMENT_ACTIONS)
        values = self.input_values(dm, where, component, intrinsics)
        depends = [
            (qualify(stack, dep), dwhere)
            for dep, dwhere in checks.list_of_text(dm, "depends_on", where)
        ]
        self.references.depends.append((stack, name, depends))
        return Deployment(
            stack=stack,
            name=name,
            component=component_name,
            servers=servers,
            group=group,
            actions=actions,
            input_values=values,
            depends_on=tuple(d for d, _ in depends),
            timeout=read_timeout(checks, dm, where),
            file=where.file,
            line=where.line,
            **self.rollout_keys(dm, where, component, defaults),
        )

    def input_values(
        self, dm: YMap, where: Where, component: Component | None, intrinsics: NativeIntrinsics
    ) -> dict[str, Any]:
        """``input_values``, resolved and typed by the component's inputs."""
        values: dict[str, Any] = {}
        raw_values = dm.get("input_values")
        vwhere = where.at(dm, "input_values")
        if raw_values is not None and self.checks.mapping(raw_values, vwhere, "input_values"):
            for iname, raw in raw_values.items():
                c = vwhere.at(raw_values, iname)
                resolved = intrinsics.resolve(raw, c)
                if component is None:
                    continue
                idef = component.input(str(iname))
                if idef is None:
                    hint = did_you_mean(str(iname), tuple(i.name for i in component.inputs))
                    self.checks.error(
                        c, f"component {component.name!r} has no input {iname!r}{hint}"
                    )
                    continue
                if resolved is INVALID:
                    continue
                if not has_deferred(resolved):
                    resolved = self.checks.literal(idef.type, resolved, c)
                values[str(iname)] = resolved
        # A value that is not a mapping is reported above; it gives no input a value.
        given = raw_values if isinstance(raw_values, YMap) else None
        if component is not None and (raw_values is None or given is not None):
            for idef in component.inputs:
                if (
                    idef.name not in values
                    and not idef.has_default
                    and idef.name not in (given or {})
                ):
                    self.checks.error(
                        where,
                        f"input {idef.name!r} of component {component.name!r} needs a value "
                        "(it has no default)",
                    )
        return values

    def servers(self, dm: YMap, where: Where) -> tuple[tuple[str, ...], str | None]:
        """The servers a deployment runs on, and the group that named them."""
        raw = dm.get("servers")
        swhere = where.at(dm, "servers")
        if raw is None:
            return (), None
        if isinstance(raw, YMap):
            return self.group_servers(raw, swhere)
        if isinstance(raw, YList):
            return self.listed_servers(raw, swhere), None
        self.checks.error(
            swhere, f"expected a list of servers or {{group: NAME}}, got {kind_of(raw)}"
        )
        return (), None

    def group_servers(self, raw: YMap, swhere: Where) -> tuple[tuple[str, ...], str | None]:
        groups = self.inventory.groups
        self.checks.check_keys(raw, swhere, ("group",), ("group",))
        group = raw.get("group")
        if not isinstance(group, str):
            return (), None
        if group not in groups:
            hint = did_you_mean(group, tuple(groups))
            self.checks.error(swhere.at(raw, "group"), f"unknown group {group!r}{hint}")
            return (), group
        if not groups[group]:
            self.checks.error(swhere.at(raw, "group"), f"group {group!r} has no servers")
        return groups[group], group

    def listed_servers(self, raw: YList, swhere: Where) -> tuple[str, ...]:
        names: list[str] = []
        for index, item in enumerate(raw):
            c = swhere.at(raw, index)
            if not isinstance(item, str):
                self.checks.error(c, f"expected a server name, got {kind_of(item)}")
            elif item not in self.inventory.servers:
                hint = did_you_mean(str(item), tuple(self.inventory.servers))
                self.checks.error(c, f"unknown server {item!r}{hint}")
            elif item in names:
                self.checks.error(c, f"server {item!r} listed twice")
            else:
                names.append(item)
        if not raw:
            self.checks.error(swhere, "expected at least one server")
        return tuple(names)

    # -- rollout and lifecycle keys of a deployment -------------------------------------

    def rollout_keys(
        self, dm: YMap, where: Where, component: Component | None, defaults: dict[str, Any]
    ) -> dict[str, Any]:
        """``update_policy``, ``batch_create``, ``update_order``, ``on_failure``,
        ``state``, ``run``, ``converge``, ``preflight`` and ``on_drift`` of a deployment."""
        checks = self.checks
        servers = dm.get("servers")
        count = len(servers) if isinstance(servers, YList) else 0
        run = self.run_request(dm, where, component) if "run" in dm else None
        return {
            "update_policy": read_update_policy(checks, dm, "update_policy", where, count),
            "batch_create": read_update_policy(checks, dm, "batch_create", where, 0),
            "update_order": checks.choice(dm, "update_order", where, UPDATE_ORDERS, "parallel"),
            "on_failure": checks.choice(
                dm, "on_failure", where, ON_FAILURE, defaults.get("on_failure", "halt")
            ),
            "state": checks.choice(dm, "state", where, STATES, defaults.get("state", "active")),
            "run": run,
            "converge": checks.boolean(dm, "converge", where),
            "preflight": read_preflight(checks, dm, where, defaults.get("preflight"), count),
            "on_drift": checks.choice(
                dm, "on_drift", where, ON_DRIFT, defaults.get("on_drift", "report")
            ),
        }

    def run_request(self, dm: YMap, where: Where, component: Component | None) -> RunRequest | None:
        """``run: {action, token}``: run one of the component's custom actions once."""
        checks = self.checks
        c = where.at(dm, "run")
        rm = checks.mapping(dm["run"], c, "run")
        if rm is None:
            return None
        checks.check_keys(rm, c, ("action", "token"), ("action", "token"))
        action = checks.text(rm, "action", c)
        token = rm.get("token")
        if isinstance(token, bool) or not isinstance(token, str | int | float):
            checks.error(c.at(rm, "token"), f"expected a string, got {kind_of(token)}")
            return None
        if not action or component is None:
            return None
        custom = {a for e in component.configs for a in e.actions}
        custom -= set(LIFECYCLE_ACTIONS)
        if action not in custom:
            known = ", ".join(sorted(custom)) or "none"
            checks.error(
                c.at(rm, "action"),
                f"component {component.name!r} has no custom action {action!r} "
                f"(custom actions: {known})",
            )
            return None
        return RunRequest(action, str(token))
