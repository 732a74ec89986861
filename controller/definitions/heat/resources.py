"""A Heat template's resources: the types setpoint reads, each resource's
references (Heat's implicit dependencies), and the scope every part of the
template reader shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from setpoint.controller.definitions.checks import Checks, Where
from setpoint.controller.definitions.files import CommitFiles
from setpoint.controller.definitions.heat.versions import DATES, TemplateVersion
from setpoint.controller.definitions.model import Inventory, ParamDef
from setpoint.controller.definitions.yamlsource import YList, YMap

SERVER_TYPES = ("OS::Nova::Server", "OS::Heat::DeployedServer")
CONFIG_TYPES = (
    "OS::Heat::SoftwareConfig",
    "OS::Heat::SoftwareComponent",
    "OS::Heat::StructuredConfig",
    "OS::Heat::MultipartMime",
    "OS::Heat::CloudConfig",
)
SINGLE_TYPES = ("OS::Heat::SoftwareDeployment", "OS::Heat::StructuredDeployment")
GROUP_TYPES = ("OS::Heat::SoftwareDeploymentGroup", "OS::Heat::StructuredDeploymentGroup")
STRUCTURED = ("OS::Heat::StructuredDeployment", "OS::Heat::StructuredDeploymentGroup")
RESOURCE_KEYS = (
    "type", "properties", "depends_on", "metadata", "update_policy", "deletion_policy",
    "condition", "external_id",
)  # fmt: skip
DEPLOY_OUTPUTS = ("deploy_stdout", "deploy_stderr", "deploy_status_code")


# Decides an ``if`` while references are collected: the arguments of ``if``
# give the branch taken (``None``: not known, both count).
ChooseBranch = Callable[[Any], Any]


@dataclass
class Resource:
    name: str
    type: str
    body: YMap
    props: YMap
    where: Where
    refs: set[str] = field(default_factory=set)

    @property
    def props_where(self) -> Where:
        return self.where.at(self.body, "properties")


@dataclass
class TemplateScope:
    """What the parts of one template's reader share."""

    files: CommitFiles
    path: str
    stem: str
    inventory: Inventory
    resources: dict[str, Resource] = field(default_factory=dict)
    params: dict[str, ParamDef] = field(default_factory=dict)
    # Parameters declared ``hidden: true``: the inputs they feed are secret.
    hidden: set[str] = field(default_factory=set)
    version: TemplateVersion = field(default_factory=lambda: TemplateVersion(DATES[-1]))
    # Resources a false ``condition:`` leaves out, with that condition as written.
    disabled: dict[str, str] = field(default_factory=dict)

    @property
    def checks(self) -> Checks:
        return self.files.checks

    def unknown_resource(self, name: Any) -> str:
        """Why resource ``name`` is not there, for a reference to it."""
        if isinstance(name, str) and name in self.disabled:
            return f"resource {name!r} is left out by its condition {self.disabled[name]}"
        return f"unknown resource {name!r}"


def walk_refs(value: Any, choose: ChooseBranch | None = None) -> set[str]:
    """Resources a snippet names with get_resource or get_attr (Heat's implicit
    deps); of an ``if``, only the branch ``choose`` takes, when it knows."""
    out: set[str] = set()
    if isinstance(value, dict):
        if len(value) == 1:
            fn, arg = next(iter(value.items()))
            if fn == "get_resource" and isinstance(arg, str):
                out.add(arg)
            elif fn == "get_attr" and isinstance(arg, list) and arg and isinstance(arg[0], str):
                out.add(arg[0])
            elif fn == "if" and choose is not None and isinstance(arg, list):
                taken = choose(arg)
                if taken is not None:
                    return walk_refs(taken, choose)
        for v in value.values():
            out |= walk_refs(v, choose)
    elif isinstance(value, list):
        for v in value:
            out |= walk_refs(v, choose)
    return out


def read_resources(
    checks: Checks, raw: YMap, rwhere: Where, choose: ChooseBranch | None = None
) -> dict[str, Resource]:
    """The resources of a template that parse (type given, properties a mapping);
    ``choose`` decides each ``if`` that references pass through."""
    resources: dict[str, Resource] = {}
    for rname, body in raw.items():
        c = rwhere.at(raw, rname)
        bm = checks.mapping(body, c, "a resource")
        if bm is None:
            continue
        checks.check_keys(bm, c, RESOURCE_KEYS, ("type",))
        props = bm.get("properties") or YMap()
        if not isinstance(props, YMap):
            checks.error(c.at(bm, "properties"), "expected properties (a mapping)")
            props = YMap()
        rtype = bm.get("type")
        if not isinstance(rtype, str):
            continue
        res = Resource(str(rname), rtype, bm, props, c)
        res.refs = walk_refs(props, choose)
        for dep, dwhere in _depends_on(checks, bm, c):
            res.refs.add(dep)
            if dep not in raw:
                checks.error(dwhere, f"depends_on: unknown resource {dep!r}")
        resources[res.name] = res
    for res in resources.values():
        for ref in sorted(walk_refs(res.props, choose)):
            if ref not in resources and ref in raw:
                continue  # a resource that did not parse: already reported
            if ref not in resources:
                checks.error(res.where, f"resource {res.name!r} refers to unknown resource {ref!r}")
    return resources


def _depends_on(checks: Checks, bm: YMap, c: Where) -> list[tuple[str, Where]]:
    raw = bm.get("depends_on")
    if raw is None:
        return []
    dc = c.at(bm, "depends_on")
    if isinstance(raw, str):
        return [(raw, dc)]
    if isinstance(raw, YList) and all(isinstance(x, str) for x in raw):
        return [(str(x), dc.at(raw, i)) for i, x in enumerate(raw)]
    checks.error(dc, "expected a resource name or a list of them")
    return []


def upstream_deployments(resources: dict[str, Resource], res: Resource) -> set[str]:
    """Deployments reached from ``res`` through its references, as Heat orders
    them: a chain through configs, servers or other resources counts."""
    found: set[str] = set()
    seen = {res.name}
    todo = list(res.refs)
    while todo:
        name = todo.pop()
        if name in seen or name not in resources:
            continue
        seen.add(name)
        other = resources[name]
        if other.type in SINGLE_TYPES + GROUP_TYPES:
            found.add(name)
        else:
            todo += other.refs
    return found
