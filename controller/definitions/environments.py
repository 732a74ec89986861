"""``environments/<name>.yaml``: ``kind: Environment``, read only when an
environment is asked for: parameter values for the stacks, optionally the
environment's own inventory in place of ``inventory.yaml``, and a Heat
``resource_registry`` that applies to every Heat template."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from setpoint.controller.definitions.checks import NAME_RE, Checks, Where, did_you_mean
from setpoint.controller.definitions.files import CommitFiles, Tree
from setpoint.controller.definitions.inventory import inventory_body
from setpoint.controller.definitions.model import Inventory, ParamDef, Stack
from setpoint.controller.definitions.yamlsource import YMap

ENVIRONMENTS = "environments"


def environment_names(tree: Tree) -> list[str]:
    """The environments a commit defines (``environments/<name>.yaml``), sorted."""
    if tree.kind(ENVIRONMENTS) != "dir":
        return []
    return sorted(
        name.rsplit(".", 1)[0]
        for name in tree.listdir(ENVIRONMENTS)
        if name.endswith((".yaml", ".yml")) and tree.kind(f"{ENVIRONMENTS}/{name}") == "file"
    )


@dataclass
class EnvironmentValues:
    """The selected environment's parameter values (raw, with where they were
    written) and which of them some stack declares."""

    checks: Checks
    values: dict[str, tuple[Any, Where]] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)
    # ``resource_registry`` for Heat templates, and where it is written (Heat's ``registry``).
    registry: tuple[Any, Where] = (None, Where("", 0, ""))

    def read(self, files: CommitFiles, env: str) -> Inventory | None:
        """Read ``environments/<env>.yaml``: keep its parameter values, return its inventory.

        ``None`` when the environment has no ``inventory`` (``inventory.yaml`` applies).
        """
        path = self._path(files, env)
        if path is None:
            known = ", ".join(environment_names(files.tree)) or "none"
            self.checks.error(
                Where(f"{ENVIRONMENTS}/{env}.yaml", 0, ""),
                f"no environment {env!r} in the commit (environments: {known})",
            )
            return None
        where = Where(path, 1, "")
        doc = files.parse(path)
        m = self.checks.mapping(doc, where, "an environment") if doc is not None else YMap()
        if m is None:
            return None
        self.checks.check_keys(
            m,
            where,
            ("kind", "description", "parameters", "inventory", "resource_registry"),
            ("kind",),
        )
        self.registry = (m.get("resource_registry"), where.at(m, "resource_registry"))
        if "kind" in m and m["kind"] != "Environment":
            self.checks.error(where.at(m, "kind"), f"expected kind: Environment, got {m['kind']!r}")
        raw = m.get("parameters")
        pwhere = where.at(m, "parameters")
        if raw is not None and self.checks.mapping(raw, pwhere, "parameters") is not None:
            for pname, value in raw.items():
                self.values[str(pname)] = (value, pwhere.at(raw, pname))
        if "inventory" not in m:
            return None
        iwhere = where.at(m, "inventory")
        inv = self.checks.mapping(m["inventory"], iwhere, "an inventory")
        if inv is None:
            return Inventory({}, {})
        self.checks.check_keys(inv, iwhere, ("servers", "groups"))
        return inventory_body(self.checks, inv, iwhere)

    @staticmethod
    def _path(files: CommitFiles, env: str) -> str | None:
        # The name is checked before it is used in a path: "../x" names no environment.
        if not NAME_RE.match(env):
            return None
        return next(
            (
                f"{ENVIRONMENTS}/{env}{ext}"
                for ext in (".yaml", ".yml")
                if files.kind(f"{ENVIRONMENTS}/{env}{ext}") == "file"
            ),
            None,
        )

    def apply(self, params: dict[str, ParamDef]) -> dict[str, ParamDef]:
        """A stack's parameters with the environment's values as their values.

        As Heat's ``parameter_defaults``: a value applies to every stack that
        declares a parameter of that name, and is checked against each one's type.
        """
        out = dict(params)
        for pname, param in params.items():
            if pname not in self.values:
                continue
            raw, where = self.values[pname]
            self.used.add(pname)
            value = self.checks.literal(param.type, raw, where)
            out[pname] = ParamDef(
                name=pname,
                type=param.type,
                default=value,
                has_default=True,
                description=param.description,
            )
        return out

    def check_unused(self, stacks: dict[str, Stack]) -> None:
        """Every value names a parameter some stack declares."""
        declared = tuple(sorted({p for s in stacks.values() for p in s.parameters}))
        for pname, (_raw, where) in self.values.items():
            if pname not in self.used:
                hint = did_you_mean(pname, declared)
                self.checks.error(where, f"no stack declares a parameter {pname!r}{hint}")
