"""A Heat template's deployments (SoftwareDeployment, StructuredDeployment and
their groups): one ``Deployment`` each, with its own ``Component``, the derived
config Heat would build (the config's inputs, plus an input for each
undeclared ``input_values`` key, its outputs plus the ``deploy_*`` ones)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from setpoint.controller.definitions.checks import Where
from setpoint.controller.definitions.fields import read_actions, read_update_policy
from setpoint.controller.definitions.heat.configs import Config, ConfigReader
from setpoint.controller.definitions.heat.functions import input_names
from setpoint.controller.definitions.heat.intrinsics import Evaluator
from setpoint.controller.definitions.heat.resources import (
    CONFIG_TYPES,
    DEPLOY_OUTPUTS,
    GROUP_TYPES,
    STRUCTURED,
    Resource,
    TemplateScope,
    upstream_deployments,
)
from setpoint.controller.definitions.intrinsics import ABSENT, INVALID, has_deferred
from setpoint.controller.definitions.model import (
    DEFAULT_DEPLOYMENT_ACTIONS,
    Component,
    Deployment,
    GetAttr,
    InputDef,
    OutputDef,
    UpdatePolicy,
)
from setpoint.controller.definitions.yamlsource import YMap
from setpoint.store.documents import COMPONENT_GROUP, LIFECYCLE_ACTIONS

SIGNAL_TRANSPORTS = ("CFN_SIGNAL", "TEMP_URL_SIGNAL", "HEAT_SIGNAL", "NO_SIGNAL", "ZAQAR_SIGNAL")


def _hidden_param(raw_values: Any, name: str, hidden: set[str]) -> bool:
    """Whether input ``name`` is given a hidden parameter (``get_param``)."""
    if not isinstance(raw_values, YMap):
        return False
    raw = raw_values.get(name)
    if not isinstance(raw, YMap) or list(raw) != ["get_param"]:
        return False
    param = raw["get_param"]
    if isinstance(param, list) and param:  # [name, path...]
        param = param[0]
    return isinstance(param, str) and param in hidden


def _input_type(value: Any) -> str:
    """Heat declares undeclared inputs String and passes the value as it is:
    the type that keeps the value as it is."""
    kind = "Json" if isinstance(value, dict | list) else "String"
    if isinstance(value, bool):
        kind = "Boolean"
    elif isinstance(value, int | float) or (
        isinstance(value, GetAttr) and value.output == "deploy_status_code"
    ):
        kind = "Number"
    return kind


def _component_actions(config: Config) -> tuple[str, ...]:
    """A SoftwareComponent runs for the actions its configs name, whatever the
    deployment's ``actions`` say (Heat's rule for ``group: component``)."""
    named = {a for entry in config.entries for a in entry.actions}
    return tuple(a for a in LIFECYCLE_ACTIONS if a in named)


class HeatDeploymentReader:
    """The deployments of one template; each one's component goes into ``components``."""

    def __init__(
        self,
        scope: TemplateScope,
        evaluator: Evaluator,
        configs: ConfigReader,
        components: dict[str, Component],
        state: str,
    ) -> None:
        self.scope = scope
        self.checks = scope.checks
        self.evaluator = evaluator
        self.configs = configs
        self.components = components
        self.state = state

    def deployment(self, res: Resource) -> Deployment | None:
        c = res.props_where
        props = res.props
        group = res.type in GROUP_TYPES
        target = self.config_target(res)
        if target is None:
            return None
        config = self.configs.config(target)
        if group:
            servers = tuple(self.evaluator.servers.group_servers(res).values())
        else:
            one = self.evaluator.servers.single_server(res)
            servers = (one,) if one is not None else ()
        actions = read_actions(self.checks, props, c, DEFAULT_DEPLOYMENT_ACTIONS)
        name = self.signal_and_name(props, c)
        raw_values = props.get("input_values")
        vc = c.at(props, "input_values")
        values = self.input_values(raw_values, vc)
        if config is None:
            return None
        if config.group == COMPONENT_GROUP:
            actions = _component_actions(config)
        input_key: str | None = None
        if res.type in STRUCTURED:
            input_key = str(props.get("input_key", "get_input"))
            self.check_structured(props, c, config, values, input_key)
        component = self.component(res, target, config, values, name, input_key, raw_values)
        stem = self.scope.stem
        self.components[f"{stem}/{res.name}"] = component
        depends = sorted(upstream_deployments(self.scope.resources, res))
        return Deployment(
            stack=stem,
            name=res.name,
            component=f"{stem}/{res.name}",
            servers=servers,
            group=None,
            actions=actions,
            input_values={
                k: v if has_deferred(v) else self.typed(component, k, v, vc.at(raw_values, k))
                for k, v in values.items()
            },
            depends_on=tuple(f"{stem}/{d}" for d in depends),
            timeout=None,
            file=self.scope.path,
            line=res.where.line,
            no_signal=props.get("signal_transport") == "NO_SIGNAL",
            update_policy=self.policy(res, "rolling_update", len(servers)) if group else None,
            batch_create=self.policy(res, "batch_create", 0) if group else None,
            state=self.state,
        )

    def config_target(self, res: Resource) -> str | None:
        """The config resource a deployment names (its properties checked first)."""
        c = res.props_where
        props = res.props
        group = res.type in GROUP_TYPES
        allowed = ["config", "input_values", "actions", "name", "signal_transport"]
        allowed.append("servers" if group else "server")
        if res.type in STRUCTURED:
            allowed += ["input_key", "input_values_validate"]
        self.checks.check_keys(
            props, c, tuple(allowed), ("config", "servers" if group else "server")
        )
        ref = props.get("config")
        rc = c.at(props, "config")
        if not (isinstance(ref, YMap) and list(ref) == ["get_resource"]):
            if "config" in props:
                self.checks.error(rc, "expected {get_resource: <a config resource>}")
            return None
        target = ref["get_resource"]
        resources = self.scope.resources
        if not isinstance(target, str) or target not in resources:
            self.checks.error(
                rc.at(ref, "get_resource"),
                f"get_resource: {self.scope.unknown_resource(target)}",
            )
            return None
        if resources[target].type not in CONFIG_TYPES:
            self.checks.error(rc.at(ref, "get_resource"), f"{target!r} is not a config resource")
            return None
        return target

    def signal_and_name(self, props: YMap, c: Where) -> str | None:
        """Checks ``signal_transport``; the deployment's ``name``, if it has one."""
        transport = props.get("signal_transport")
        if transport is not None and transport not in SIGNAL_TRANSPORTS:
            self.checks.error(
                c.at(props, "signal_transport"),
                f"unknown signal_transport {transport!r} (one of {', '.join(SIGNAL_TRANSPORTS)})",
            )
        name = props.get("name")
        if name is not None and not isinstance(name, str):
            self.checks.error(c.at(props, "name"), "expected a name")
            name = None
        return name

    def input_values(self, raw_values: Any, vc: Where) -> dict[str, Any]:
        """``input_values``, evaluated (a value with a problem is left out)."""
        values: dict[str, Any] = {}
        if raw_values is not None and self.checks.mapping(raw_values, vc, "input_values"):
            for iname, raw in raw_values.items():
                got = self.evaluator.evaluate(raw, vc.at(raw_values, iname))
                if got is not INVALID and got is not ABSENT:
                    values[str(iname)] = got
        return values

    def typed(self, component: Component, name: str, value: Any, c: Where) -> Any:
        idef = component.input(name)
        if idef is None:
            return value
        try:
            return idef.typed(value)
        except ValueError as exc:
            self.checks.error(c, str(exc))
            return None

    def check_structured(
        self, props: YMap, c: Where, config: Config, values: dict[str, Any], input_key: str
    ) -> None:
        """Every ``{get_input: x}`` of a structured config can be given a value."""
        mode = props.get("input_values_validate", "LAX")
        if mode not in ("LAX", "STRICT"):
            self.checks.error(c.at(props, "input_values_validate"), "expected LAX or STRICT")
        known = {i.name for i in config.inputs} | set(values)
        for entry in config.entries:
            for asked in input_names(entry.config, input_key):
                if asked.startswith("deploy_"):
                    self.checks.error(
                        c.at(props, "config"),
                        f"{{{input_key}: {asked}}}: the deploy_* inputs are known only on "
                        "the server; setpoint cannot put them in a structured config",
                    )
                elif mode == "STRICT" and asked not in known:
                    self.checks.error(
                        c.at(props, "input_values"), f"no value for input {asked!r} (STRICT)"
                    )

    def component(
        self,
        res: Resource,
        config_name: str,
        config: Config,
        values: dict[str, Any],
        name: str | None,
        input_key: str | None,
        raw_values: Any,
    ) -> Component:
        """The derived config Heat would build for deployment ``res``."""
        hidden = self.scope.hidden
        inputs = list(config.inputs)
        declared = {i.name for i in inputs}
        for iname, value in values.items():
            if iname in declared:
                continue
            secret = _hidden_param(raw_values, iname, hidden)
            inputs.append(
                InputDef(name=iname, type=_input_type(value), secret=secret, as_given=True)
            )
        for index, idef in enumerate(inputs):
            if idef.name in declared and _hidden_param(raw_values, idef.name, hidden):
                inputs[index] = replace(idef, secret=True)
        outputs = [*config.outputs]
        outputs += [OutputDef(n) for n in DEPLOY_OUTPUTS if n not in {o.name for o in outputs}]
        return Component(
            name=name or f"{self.scope.stem}-{config_name}",
            # One component per deployment: the fragment keeps render caches apart.
            file=f"{self.scope.path}#{res.name}",
            description="",
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            configs=config.entries,
            files=(),
            options=config.options,
            input_key=input_key,
        )

    def policy(self, res: Resource, key: str, servers: int) -> UpdatePolicy | None:
        """A group's ``update_policy.rolling_update`` or ``batch_create``."""
        raw = res.body.get("update_policy")
        if not isinstance(raw, YMap) or key not in raw:
            return None
        c = res.where.at(res.body, "update_policy")
        self.checks.check_keys(raw, c, ("rolling_update", "batch_create"))
        wrapped = YMap({key: raw[key]}, line=raw.line, key_lines={key: raw.line_of(key)})
        return read_update_policy(self.checks, wrapped, key, c, servers)
