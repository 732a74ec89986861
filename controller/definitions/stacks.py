"""``stacks/<name>.yaml``: ``kind: Stack`` read here, a Heat template (its first
line starts with ``heat_template_version``) read by ``heat``."""

from __future__ import annotations

from typing import Any

from setpoint.controller.definitions.checks import NAME_RE, Where
from setpoint.controller.definitions.deployments import DeploymentReader
from setpoint.controller.definitions.environments import EnvironmentValues
from setpoint.controller.definitions.fields import read_preflight, read_typed_default
from setpoint.controller.definitions.files import CommitFiles
from setpoint.controller.definitions.heat.environment_file import is_environment_file
from setpoint.controller.definitions.heat.template import (
    HeatSources,
    is_heat_template,
    load_template,
    nested_template_paths,
)
from setpoint.controller.definitions.intrinsics import NativeIntrinsics
from setpoint.controller.definitions.model import (
    ON_DRIFT,
    ON_FAILURE,
    STATES,
    Component,
    Deployment,
    Inventory,
    ParamDef,
    Stack,
)
from setpoint.controller.definitions.references import References
from setpoint.controller.definitions.yamlsource import YMap

STACKS = "stacks"
STACK_KEYS = (
    "kind", "name", "description", "parameters", "deployments", "on_failure", "state",
    "preflight", "on_drift",
)  # fmt: skip


class StackReader:
    """Every stack of a commit, native or Heat, checked against the components
    and inventory; references between deployments go to ``references``."""

    def __init__(
        self,
        files: CommitFiles,
        environment: EnvironmentValues,
        references: References,
        components: dict[str, Component],
        inventory: Inventory,
        render_secret: bytes | None = None,
    ) -> None:
        self.files = files
        self.render_secret = render_secret
        self.checks = files.checks
        self.environment = environment
        self.references = references
        self.components = components
        self.inventory = inventory
        self.deployments = DeploymentReader(files, references, components, inventory)

    def stacks(self) -> dict[str, Stack]:
        out: dict[str, Stack] = {}
        tree = self.files.tree
        if self.files.kind(STACKS) != "dir":
            return out
        heat = HeatSources(
            self.files, self.environment, self.components, self.inventory, self.render_secret
        )
        paths = [
            f"{STACKS}/{fname}"
            for fname in tree.listdir(STACKS)
            # A Heat environment file is read with its template.
            if fname.endswith((".yaml", ".yml")) and not is_environment_file(fname)
        ]
        heat_paths = [
            p for p in paths if self.files.kind(p) == "file" and is_heat_template(tree.read(p))
        ]
        nested = nested_template_paths(heat, heat_paths)
        for path in paths:
            if self.files.kind(path) != "file" or path in nested:
                continue  # a nested template is read where it is used
            stem = path.split("/", 1)[1].rsplit(".", 1)[0]
            if path in heat_paths:
                stack = load_template(heat, path, stem)
            else:
                stack = self.stack(path, stem)
            if stack is None:
                continue
            if stack.name in out:
                self.checks.error(
                    Where(path, 1, "name"),
                    f"stack {stack.name!r} is also defined in {out[stack.name].file}",
                )
                continue
            out[stack.name] = stack
        return out

    def stack(self, path: str, stem: str) -> Stack | None:
        checks = self.checks
        where = Where(path, 1, "")
        m = checks.mapping(self.files.parse(path), where, "a stack")
        if m is None:
            return None
        checks.check_keys(m, where, STACK_KEYS, ("kind",))
        defaults: dict[str, Any] = {
            "on_failure": checks.choice(m, "on_failure", where, ON_FAILURE, "halt"),
            "state": checks.choice(m, "state", where, STATES, "active"),
            "preflight": read_preflight(checks, m, where, None, 0),
            "on_drift": checks.choice(m, "on_drift", where, ON_DRIFT, "report"),
        }
        if "kind" in m and m["kind"] != "Stack":
            checks.error(where.at(m, "kind"), f"expected kind: Stack, got {m['kind']!r}")
        name = checks.name(m, "name", where, stem, "stack")
        params = self.environment.apply(self.parameters(m, where))
        intrinsics = NativeIntrinsics(self.files, self.references, name, params)
        deployments: dict[str, Deployment] = {}
        raw = m.get("deployments") or YMap()
        dwhere = where.at(m, "deployments")
        if checks.mapping(raw, dwhere, "deployments") is not None:
            for dname, body in raw.items():
                c = dwhere.at(raw, dname)
                if not isinstance(dname, str) or not NAME_RE.match(dname):
                    checks.error(c, f"invalid deployment name {dname!r}")
                    continue
                dep = self.deployments.deployment(dname, body, c, intrinsics, defaults)
                if dep is not None:
                    deployments[dname] = dep
        return Stack(
            name=name,
            file=path,
            description=checks.text(m, "description", where),
            parameters=params,
            deployments=deployments,
        )

    def parameters(self, m: YMap, where: Where) -> dict[str, ParamDef]:
        checks = self.checks
        out: dict[str, ParamDef] = {}
        raw = m.get("parameters")
        if raw is None:
            return out
        pwhere = where.at(m, "parameters")
        if checks.mapping(raw, pwhere, "parameters") is None:
            return out
        for pname, body in raw.items():
            c = pwhere.at(raw, pname)
            pm = checks.mapping(body, c, "a parameter")
            if pm is None:
                continue
            checks.check_keys(pm, c, ("type", "default", "description"))
            typed = read_typed_default(checks, pm, c)
            if typed is None:
                continue
            type_name, default, has_default = typed
            out[str(pname)] = ParamDef(
                name=str(pname),
                type=type_name,
                default=default,
                has_default=has_default,
                description=checks.text(pm, "description", c),
            )
        return out
