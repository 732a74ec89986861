"""Heat templates under ``stacks/``, read as they are, into setpoint's model.

A file under ``stacks/`` whose first line starts with ``heat_template_version``
is a Heat template. Its software-config resources become what the native
loader builds: one ``Component`` per deployment (the derived config Heat would
build: the config's inputs, plus a String input for each undeclared
``input_values`` key, its outputs plus ``deploy_stdout``, ``deploy_stderr`` and
``deploy_status_code``), one ``Deployment`` per SoftwareDeployment,
StructuredDeployment or deployment group, and the stack's parameters.

- ``OS::Nova::Server`` and ``OS::Heat::DeployedServer`` resources are inventory
  servers, by resource name or through ``setpoint: {servers: {Resource: name}}``
  in the template's environment file (``stacks/<stem>.env.yaml``).
- Every other resource type is reported as a warning, "not managed by
  setpoint"; its properties are never evaluated, so parameters only it uses
  need no value. Its references still order the deployments, as in Heat.
- Ordering is Heat's: ``depends_on`` and every ``get_resource``/``get_attr``
  reference, followed through resources that are not deployments.
- ``get_attr`` of a deployment names an output its server reports; of a group,
  a map keyed as the group's ``servers`` map is. ``str_replace`` and
  ``list_join`` over such values are computed when the values are known.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from setpoint.controller.definitions.heat.functions import (
    cloud_config,
    input_names,
    list_join,
    multipart_mime,
    select,
    str_replace,
)
from setpoint.controller.definitions.model import (
    DEFAULT_DEPLOYMENT_ACTIONS,
    INPUT_TYPES,
    STATES,
    Component,
    Computed,
    ConfigEntry,
    Deployment,
    GetAttr,
    InputDef,
    Inventory,
    OutputDef,
    ParamDef,
    Stack,
    UpdatePolicy,
)
from setpoint.controller.definitions.values import plain
from setpoint.controller.definitions.yamlsource import YList, YMap, load_yaml
from setpoint.controller.errors import Problem
from setpoint.store.documents import COMPONENT_GROUP, LIFECYCLE_ACTIONS

if TYPE_CHECKING:
    from setpoint.controller.definitions.loader import _Ctx, _Loader

HEAT_MARK = "heat_template_version"
UNGROUPED = "Heat::Ungrouped"
DEPLOY_OUTPUTS = ("deploy_stdout", "deploy_stderr", "deploy_status_code")
GROUP_ATTRS = {
    "deploy_stdouts": "deploy_stdout",
    "deploy_stderrs": "deploy_stderr",
    "deploy_status_codes": "deploy_status_code",
}
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
PARAM_TYPES = {
    "string": "String",
    "number": "Number",
    "comma_delimited_list": "CommaDelimitedList",
    "json": "Json",
    "boolean": "Boolean",
}
SIGNAL_TRANSPORTS = ("CFN_SIGNAL", "TEMP_URL_SIGNAL", "HEAT_SIGNAL", "NO_SIGNAL", "ZAQAR_SIGNAL")
TEMPLATE_KEYS = (
    HEAT_MARK, "description", "parameter_groups", "parameters", "resources", "outputs",
    "conditions",
)  # fmt: skip
RESOURCE_KEYS = (
    "type", "properties", "depends_on", "metadata", "update_policy", "deletion_policy",
    "condition", "external_id",
)  # fmt: skip
ENV_KEYS = (
    "parameters", "parameter_defaults", "resource_registry", "event_sinks",
    "encrypted_param_names", "parameter_merge_strategies", "setpoint",
)  # fmt: skip
# Functions of HOT that setpoint does not evaluate: named in an error, never data.
UNSUPPORTED_FUNCTIONS = (
    "repeat", "map_merge", "map_replace", "yaql", "if", "equals", "not", "and", "or",
    "contains", "digest", "str_split", "resource_facade", "filter", "make_url",
    "list_concat", "list_concat_unique", "str_replace_strict", "str_replace_vstrict",
    "get_resource_facade", "Fn::GetAtt", "Ref", "Fn::Join", "Fn::Base64",
)  # fmt: skip
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def is_heat_template(raw: bytes) -> bool:
    """Whether a file's first meaningful line starts with ``heat_template_version``."""
    for line in raw.decode("utf-8", "replace").splitlines():
        text = line.strip()
        if not text or text.startswith("#") or text == "---":
            continue
        return text.startswith(HEAT_MARK)
    return False


def is_environment_file(name: str) -> bool:
    """``<stem>.env.yaml``: a Heat environment file, read with its template."""
    return name.endswith((".env.yaml", ".env.yml"))


class _Invalid:
    pass


INVALID: Any = _Invalid()


@dataclass
class _Resource:
    name: str
    type: str
    body: YMap
    props: YMap
    ctx: _Ctx
    refs: set[str] = field(default_factory=set)


@dataclass
class _Config:
    """What a config resource gives a deployment."""

    group: str
    entries: tuple[ConfigEntry, ...]
    inputs: tuple[InputDef, ...]
    outputs: tuple[OutputDef, ...]
    options: dict[str, Any]
    text: Any  # the ``config`` a MultipartMime part takes from it


def _walk_refs(value: Any) -> set[str]:
    """Resources a snippet names with get_resource or get_attr (Heat's implicit deps)."""
    out: set[str] = set()
    if isinstance(value, dict):
        if len(value) == 1:
            fn, arg = next(iter(value.items()))
            if fn == "get_resource" and isinstance(arg, str):
                out.add(arg)
            elif fn == "get_attr" and isinstance(arg, list) and arg and isinstance(arg[0], str):
                out.add(arg[0])
        for v in value.values():
            out |= _walk_refs(v)
    elif isinstance(value, list):
        for v in value:
            out |= _walk_refs(v)
    return out


def _has_deferred(value: Any) -> bool:
    if isinstance(value, GetAttr | Computed):
        return True
    if isinstance(value, dict):
        return any(_has_deferred(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_deferred(v) for v in value)
    return False


def _computed(label: str, fn: Callable[[Any], Any], args: Any) -> Any:
    """``fn(args)`` now when every arg is known, else when rendered."""
    if _has_deferred(args):
        return Computed(label, fn, args)
    return fn(args)


class HeatTemplate:
    """One Heat template read into a ``Stack`` (and components) for the loader."""

    def __init__(
        self,
        loader: _Loader,
        path: str,
        stem: str,
        components: dict[str, Component],
        inventory: Inventory,
    ) -> None:
        self.loader = loader
        self.path = path
        self.stem = stem
        self.components = components
        self.inventory = inventory
        self.resources: dict[str, _Resource] = {}
        self.params: dict[str, ParamDef] = {}
        self.hidden: set[str] = set()
        self.server_map: dict[str, tuple[str, _Ctx]] = {}
        self.state = "active"
        self.configs: dict[str, _Config | None] = {}
        self.env_values: dict[str, tuple[Any, _Ctx]] = {}

    # -- helpers ---------------------------------------------------------------------

    def error(self, ctx: _Ctx, message: str) -> None:
        self.loader.error(ctx, message)

    def warn(self, ctx: _Ctx, message: str) -> None:
        self.loader.problems.append(Problem(ctx.file, ctx.line, ctx.field, message, "warning"))

    def ctx(self) -> _Ctx:
        from setpoint.controller.definitions.loader import _Ctx

        return _Ctx(self.path, 1, "")

    # -- the template ----------------------------------------------------------------

    def load(self) -> Stack | None:
        ctx = self.ctx()
        doc = load_yaml(self.loader.tree.read(self.path), self.path, self.loader.problems)
        m = self.loader.mapping(doc, ctx, "a Heat template")
        if m is None:
            return None
        self.loader.check_keys(m, ctx, TEMPLATE_KEYS, ("resources",))
        version = m.get(HEAT_MARK)
        if not isinstance(version, str | datetime.date):
            self.error(ctx.at(m, HEAT_MARK), "expected a template version (a date or a name)")
        if m.get("conditions"):
            self.error(ctx.at(m, "conditions"), "conditions are not supported by setpoint")
        if not _NAME_RE.match(self.stem):
            self.error(ctx, f"invalid stack name {self.stem!r} (letters, digits, '_', '.', '-')")
        self.environment_file()
        self.parameters(m, ctx)
        raw = m.get("resources") or _empty_map()
        rctx = ctx.at(m, "resources")
        if self.loader.mapping(raw, rctx, "resources") is None:
            return None
        for rname, body in raw.items():
            c = rctx.at(raw, rname)
            bm = self.loader.mapping(body, c, "a resource")
            if bm is None:
                continue
            self.loader.check_keys(bm, c, RESOURCE_KEYS, ("type",))
            if "condition" in bm:
                self.error(c.at(bm, "condition"), "conditions are not supported by setpoint")
            props = bm.get("properties") or _empty_map()
            if not isinstance(props, YMap):
                self.error(c.at(bm, "properties"), "expected properties (a mapping)")
                props = _empty_map()
            rtype = bm.get("type")
            if not isinstance(rtype, str):
                continue
            res = _Resource(str(rname), rtype, bm, props, c)
            res.refs = _walk_refs(props)
            for dep, dctx in self.depends_on(bm, c):
                res.refs.add(dep)
                if dep not in raw:
                    self.error(dctx, f"depends_on: unknown resource {dep!r}")
            self.resources[res.name] = res
        for res in self.resources.values():
            for ref in sorted(_walk_refs(res.props)):
                if ref not in self.resources and ref in raw:
                    continue  # a resource that did not parse: already reported
                if ref not in self.resources:
                    self.error(res.ctx, f"resource {res.name!r} refers to unknown resource {ref!r}")
        deployments: dict[str, Deployment] = {}
        for res in self.resources.values():
            if res.type in SERVER_TYPES:
                continue  # bound when a deployment targets it
            if res.type in CONFIG_TYPES:
                self.config(res.name)
            elif res.type in SINGLE_TYPES or res.type in GROUP_TYPES:
                if not _NAME_RE.match(res.name):
                    self.error(res.ctx, f"invalid deployment name {res.name!r}")
                    continue
                made = self.deployment(res)
                if made is not None:
                    deployments[res.name] = made
            else:
                self.warn(res.ctx.at(res.body, "type"), f"{res.type} is not managed by setpoint")
        self.outputs(m, ctx)
        for name in self.server_map:
            if name not in self.resources or self.resources[name].type not in SERVER_TYPES:
                self.error(
                    self.server_map[name][1], f"setpoint.servers: no server resource {name!r}"
                )
        description = m.get("description")
        return Stack(
            name=self.stem,
            file=self.path,
            description=description if isinstance(description, str) else "",
            parameters=self.params,
            deployments=deployments,
        )

    def depends_on(self, bm: YMap, c: _Ctx) -> list[tuple[str, _Ctx]]:
        raw = bm.get("depends_on")
        if raw is None:
            return []
        dc = c.at(bm, "depends_on")
        if isinstance(raw, str):
            return [(raw, dc)]
        if isinstance(raw, YList) and all(isinstance(x, str) for x in raw):
            return [(str(x), dc.at(raw, i)) for i, x in enumerate(raw)]
        self.error(dc, "expected a resource name or a list of them")
        return []

    # -- environment file and parameters ---------------------------------------------

    def environment_file(self) -> None:
        from setpoint.controller.definitions.loader import _Ctx

        base = self.path.rsplit(".", 1)[0]
        path = next(
            (
                p
                for p in (base + ".env.yaml", base + ".env.yml")
                if self.loader.tree.kind(p) == "file"
            ),
            None,
        )
        if path is None:
            return
        ctx = _Ctx(path, 1, "")
        doc = load_yaml(self.loader.tree.read(path), path, self.loader.problems)
        m = self.loader.mapping(doc, ctx, "a Heat environment") if doc is not None else YMap()
        if m is None:
            return
        self.loader.check_keys(m, ctx, ENV_KEYS)
        for key in ("parameter_defaults", "parameters"):  # parameters win
            raw = m.get(key)
            kctx = ctx.at(m, key)
            if raw is not None and self.loader.mapping(raw, kctx, key) is not None:
                for pname, value in raw.items():
                    self.env_values[str(pname)] = (value, kctx.at(raw, pname))
        for key in ("resource_registry", "event_sinks"):
            if m.get(key):
                self.warn(ctx.at(m, key), f"{key} is not used by setpoint")
        own = m.get("setpoint")
        if own is None:
            return
        sctx = ctx.at(m, "setpoint")
        sm = self.loader.mapping(own, sctx, "setpoint's settings")
        if sm is None:
            return
        self.loader.check_keys(sm, sctx, ("servers", "state"))
        self.state = self.loader.choice(sm, "state", sctx, STATES, "active")
        servers = sm.get("servers")
        mctx = sctx.at(sm, "servers")
        if servers is not None and self.loader.mapping(servers, mctx, "servers") is not None:
            for rname, server in servers.items():
                c = mctx.at(servers, rname)
                if not isinstance(server, str):
                    self.error(c, "expected an inventory server name")
                    continue
                self.server_map[str(rname)] = (server, c)

    def parameters(self, m: YMap, ctx: _Ctx) -> None:
        raw = m.get("parameters")
        if raw is None:
            return
        pctx = ctx.at(m, "parameters")
        if self.loader.mapping(raw, pctx, "parameters") is None:
            return
        declared: dict[str, ParamDef] = {}
        for pname, body in raw.items():
            c = pctx.at(raw, pname)
            pm = self.loader.mapping(body, c, "a parameter")
            if pm is None:
                continue
            self.loader.check_keys(
                pm,
                c,
                (
                    "type",
                    "default",
                    "description",
                    "label",
                    "hidden",
                    "constraints",
                    "immutable",
                    "tags",
                ),
                ("type",),
            )
            heat_type = pm.get("type")
            type_name = PARAM_TYPES.get(str(heat_type))
            if type_name is None:
                self.error(
                    c.at(pm, "type"),
                    f"unknown parameter type {heat_type!r} (one of {', '.join(PARAM_TYPES)})",
                )
                continue
            if pm.get("hidden") is True:
                self.hidden.add(str(pname))
            has = "default" in pm
            value = (
                self.loader.literal(type_name, pm["default"], c.at(pm, "default")) if has else None
            )
            if str(pname) in self.env_values:
                env_raw, env_ctx = self.env_values[str(pname)]
                value, has = self.loader.literal(type_name, env_raw, env_ctx), True
            if has:
                self.constraints(pm, c, value)
            description = pm.get("description")
            declared[str(pname)] = ParamDef(
                name=str(pname),
                type=type_name,
                default=value,
                has_default=has,
                description=description if isinstance(description, str) else "",
            )
        for pname, (_v, env_ctx) in self.env_values.items():
            if pname not in declared:
                self.warn(env_ctx, f"the template declares no parameter {pname!r}")
        self.params = self.loader.with_environment(declared)

    def constraints(self, pm: YMap, c: _Ctx, value: Any) -> None:
        raw = pm.get("constraints")
        if not isinstance(raw, YList):
            return
        for i, item in enumerate(raw):
            if not isinstance(item, YMap):
                continue
            cc = c.at(pm, "constraints").at(raw, i)
            why = item.get("description")
            bad = None
            if "allowed_values" in item and value not in (item["allowed_values"] or []):
                bad = f"{value!r} is not one of {list(item['allowed_values'])}"
            rng = item.get("range") or item.get("length")
            if isinstance(rng, YMap):
                size = len(value) if "length" in item and hasattr(value, "__len__") else value
                if isinstance(size, int | float) and not isinstance(size, bool):
                    low, high = rng.get("min"), rng.get("max")
                    if (low is not None and size < low) or (high is not None and size > high):
                        bad = f"{value!r} is out of range {dict(rng)}"
            pattern = item.get("allowed_pattern")
            if (
                isinstance(pattern, str)
                and isinstance(value, str)
                and not re.fullmatch(pattern, value)
            ):
                bad = f"{value!r} does not match {pattern!r}"
            if bad:
                self.error(cc, f"parameter value {bad}" + (f" ({why})" if why else ""))

    # -- intrinsic functions ---------------------------------------------------------

    def param(self, arg: Any, c: _Ctx) -> Any:
        path: list[Any] = []
        if isinstance(arg, YList) and arg and isinstance(arg[0], str):
            name, path = arg[0], list(arg[1:])
        elif isinstance(arg, str):
            name = arg
        else:
            self.error(c, "get_param takes a parameter name (and a path)")
            return INVALID
        if name == "OS::stack_name":
            return self.stem
        param = self.params.get(name)
        if param is None:
            hint = _hint(name, tuple(self.params))
            self.error(c, f"unknown parameter {name!r}{hint}")
            return INVALID
        if not param.has_default:
            self.error(
                c,
                f"parameter {name!r} has no value (give it a default, or a value in "
                "the environment file's parameter_defaults)",
            )
            return INVALID
        return select(param.default, path) if path else param.default

    def evaluate(self, value: Any, c: _Ctx) -> Any:
        """Resolve a snippet: get_param, get_file, get_resource (of a server) now;
        get_attr of a deployment as ``GetAttr``; str_replace and list_join."""
        if isinstance(value, YMap) and len(value) == 1:
            fn, arg = next(iter(value.items()))
            fc = c.at(value, fn)
            if fn == "get_param":
                return self.param(self.evaluate(arg, fc) if isinstance(arg, YList) else arg, fc)
            if fn == "get_file":
                text = self.loader.read_text(self.path, arg, fc)
                return INVALID if text is None else text
            if fn == "get_resource":
                if not isinstance(arg, str) or arg not in self.resources:
                    self.error(fc, f"get_resource: unknown resource {arg!r}")
                    return INVALID
                if self.resources[arg].type in SERVER_TYPES:
                    return self.server_of(arg, fc)
                self.error(
                    fc,
                    f"get_resource: the id of {arg!r} ({self.resources[arg].type}) is not "
                    "known to setpoint here",
                )
                return INVALID
            if fn == "get_attr":
                return self.attr(arg, fc)
            if fn == "str_replace":
                return self.str_replace(arg, fc)
            if fn == "list_join":
                return self.list_join(arg, fc)
            if fn in UNSUPPORTED_FUNCTIONS:
                self.error(fc, f"{fn} is not supported by setpoint")
                return INVALID
        if isinstance(value, YMap | dict):
            out: dict[str, Any] = {}
            for key, item in value.items():
                got = self.evaluate(item, c.at(value, key))
                if got is INVALID:
                    return INVALID
                out[str(key)] = got
            return out
        if isinstance(value, YList | list):
            items = []
            for index, item in enumerate(value):
                got = self.evaluate(item, c.at(value, index))
                if got is INVALID:
                    return INVALID
                items.append(got)
            return items
        return value

    def str_replace(self, arg: Any, c: _Ctx) -> Any:
        if not isinstance(arg, YMap) or set(arg) != {"template", "params"}:
            self.error(c, "str_replace takes {template: ..., params: {...}}")
            return INVALID
        got = self.evaluate(arg, c)
        if got is INVALID:
            return INVALID
        if not isinstance(got["params"], dict):
            self.error(c.at(arg, "params"), "str_replace params must be a mapping")
            return INVALID
        if not isinstance(got["template"], str | Computed):
            self.error(c.at(arg, "template"), "str_replace template must be a string")
            return INVALID

        def apply(args: Any) -> Any:
            return str_replace(str(args["template"]), args["params"])

        return _computed("str_replace", apply, got)

    def list_join(self, arg: Any, c: _Ctx) -> Any:
        if not isinstance(arg, YList) or len(arg) < 2 or not isinstance(arg[0], str):
            self.error(c, "list_join takes [delimiter, list, ...]")
            return INVALID
        got = self.evaluate(arg, c)
        if got is INVALID:
            return INVALID
        for index, item in enumerate(got[1:], start=1):
            if not isinstance(item, list | GetAttr | Computed):
                self.error(c.at(arg, index), "list_join joins lists")
                return INVALID

        def apply(args: Any) -> Any:
            lists = [a if isinstance(a, list) else [a] for a in args[1:]]
            return list_join(args[0], lists)

        return _computed("list_join", apply, got)

    def attr(self, arg: Any, c: _Ctx) -> Any:
        if not isinstance(arg, YList) or len(arg) < 2 or not isinstance(arg[0], str):
            self.error(c, "get_attr takes [resource, attribute, ...]")
            return INVALID
        args = self.evaluate(arg, c)
        if args is INVALID:
            return INVALID
        rname, attribute, path = args[0], args[1], list(args[2:])
        res = self.resources.get(rname)
        if res is None:
            self.error(c, f"get_attr: unknown resource {rname!r}")
            return INVALID
        if res.type in SERVER_TYPES:
            if attribute == "name":
                return self.server_of(rname, c)
            self.error(c, f"get_attr: attribute {attribute!r} of a server is not known to setpoint")
            return INVALID
        if res.type not in SINGLE_TYPES + GROUP_TYPES:
            self.error(c, f"get_attr: attributes of {res.type} are not known to setpoint")
            return INVALID
        qualified = f"{self.stem}/{rname}"
        if res.type in GROUP_TYPES:
            if isinstance(attribute, str) and attribute.startswith("resource."):
                key = attribute.split(".", 1)[1]
                if not path:
                    self.error(c, "get_attr: resource.<key> takes an attribute after it")
                    return INVALID
                attribute, path = path[0], [key, *path[1:]]
                attribute = {v: k for k, v in GROUP_ATTRS.items()}.get(attribute, attribute)
            output = GROUP_ATTRS.get(attribute, attribute)
            if not self.check_output(res, output, c):
                return INVALID
            members = self.group_servers(res, quiet=True)
            value: Any = {
                key: GetAttr(qualified, output, server, self.path, c.line)
                for key, server in members.items()
            }
            if path and path[0] in value:
                value = value[path[0]]
                path = path[1:]
            elif path:
                self.error(c, f"get_attr: {rname!r} has no member {path[0]!r}")
                return INVALID
        else:
            if not self.check_output(res, attribute, c):
                return INVALID
            server = self.single_server(res, quiet=True)
            if server is None:
                return INVALID
            value = GetAttr(qualified, attribute, server, self.path, c.line)
        if path:

            def pick(got: Any, path: list[Any] = path) -> Any:
                return select(got, path)

            return Computed("get_attr", pick, value)
        return value

    def check_output(self, res: _Resource, output: Any, c: _Ctx) -> bool:
        if not isinstance(output, str):
            self.error(c, "get_attr: the attribute must be a name")
            return False
        if output in DEPLOY_OUTPUTS:
            return True
        config = self.deployment_config(res)
        if config is None:
            return False
        if not any(o.name == output for o in config.outputs):
            known = ", ".join([*(o.name for o in config.outputs), *DEPLOY_OUTPUTS])
            self.error(
                c,
                f"get_attr: the config of {res.name!r} declares no output {output!r} "
                f"(outputs: {known})",
            )
            return False
        return True

    # -- servers -----------------------------------------------------------------------

    def server_of(self, rname: str, c: _Ctx) -> Any:
        """The inventory server a server resource is bound to."""
        name, where = self.server_map.get(rname, (rname, c))
        if name not in self.inventory.servers:
            hint = _hint(name, tuple(self.inventory.servers))
            self.error(
                where,
                f"server resource {rname!r} is bound to no inventory server: {name!r} is "
                f"not in the inventory{hint} (map it under setpoint.servers in the "
                "environment file)",
            )
            return INVALID
        return name

    def server_value(self, value: Any, c: _Ctx) -> str | None:
        got = self.evaluate(value, c)
        if got is INVALID:
            return None
        if isinstance(got, str) and got in self.inventory.servers:
            return got
        self.error(c, f"expected a server (get_resource of a server resource), got {got!r}")
        return None

    def single_server(self, res: _Resource, quiet: bool = False) -> str | None:
        c = res.ctx.at(res.body, "properties")
        if "server" not in res.props:
            if not quiet:
                self.error(c, "missing required property 'server'")
            return None
        if quiet:
            probe: list[Problem] = []
            saved, self.loader.problems = self.loader.problems, probe
            try:
                return self.server_value(res.props["server"], c.at(res.props, "server"))
            finally:
                self.loader.problems = saved
        return self.server_value(res.props["server"], c.at(res.props, "server"))

    def group_servers(self, res: _Resource, quiet: bool = False) -> dict[str, str]:
        c = res.ctx.at(res.body, "properties")
        saved = self.loader.problems
        if quiet:
            self.loader.problems = []
        try:
            raw = res.props.get("servers")
            sc = c.at(res.props, "servers")
            if not isinstance(raw, YMap) or not raw:
                self.error(sc, "expected servers: a map of keys to servers")
                return {}
            out: dict[str, str] = {}
            for key, value in raw.items():
                server = self.server_value(value, sc.at(raw, key))
                if server is not None:
                    out[str(key)] = server
            if len(set(out.values())) != len(out):
                self.error(sc, "a server is listed twice")
            return out
        finally:
            self.loader.problems = saved

    # -- configs -----------------------------------------------------------------------

    def config(self, rname: str) -> _Config | None:
        if rname in self.configs:
            return self.configs[rname]
        self.configs[rname] = None  # a config that refers to itself finds nothing
        res = self.resources[rname]
        c = res.ctx.at(res.body, "properties")
        props = res.props
        allowed = {
            "OS::Heat::SoftwareConfig": ("group", "config", "inputs", "outputs", "options"),
            "OS::Heat::StructuredConfig": ("group", "config", "inputs", "outputs", "options"),
            "OS::Heat::SoftwareComponent": ("configs", "inputs", "outputs", "options"),
            "OS::Heat::MultipartMime": ("parts", "group"),
            "OS::Heat::CloudConfig": ("cloud_config",),
        }[res.type]
        self.loader.check_keys(props, c, allowed)
        # A MultipartMime's parts name other configs: read by ``mime``.
        kept = YMap({k: v for k, v in props.items() if k != "parts"})
        kept.line, kept.key_lines = props.line, props.key_lines
        got = self.evaluate(kept, c)
        if got is INVALID:
            return None
        if _has_deferred(got):
            self.error(
                c,
                f"the config {rname!r} uses a deployment's attribute: pass it to the "
                "deployment as an input instead",
            )
            return None
        inputs = self.inputs(props, c)
        outputs = self.outputs_of(props, c)
        options = got.get("options") or {}
        if not isinstance(options, dict):
            self.error(c.at(props, "options"), "options must be a mapping")
            options = {}
        config: _Config | None = None
        if res.type in ("OS::Heat::SoftwareConfig", "OS::Heat::StructuredConfig"):
            group = got.get("group") or UNGROUPED
            text = got.get("config")
            if res.type == "OS::Heat::SoftwareConfig" and not isinstance(text, str | None):
                self.error(c.at(props, "config"), "a SoftwareConfig's config is text")
                return None
            entry = ConfigEntry(
                str(group), LIFECYCLE_ACTIONS, plain(text) if text is not None else ""
            )
            config = _Config(str(group), (entry,), inputs, outputs, options, text)
        elif res.type == "OS::Heat::SoftwareComponent":
            entries = self.component_configs(props, c, got.get("configs"))
            if entries is None:
                return None
            config = _Config(COMPONENT_GROUP, entries, inputs, outputs, options, None)
        elif res.type == "OS::Heat::CloudConfig":
            text = cloud_config(got.get("cloud_config") or {})
            config = _Config(
                UNGROUPED, (ConfigEntry(UNGROUPED, LIFECYCLE_ACTIONS, text),), (), (), {}, text
            )
        else:
            text = self.mime(props, c)
            if text is None:
                return None
            group = str(got.get("group") or UNGROUPED)
            config = _Config(
                group, (ConfigEntry(group, LIFECYCLE_ACTIONS, text),), (), (), {}, text
            )
        self.configs[rname] = config
        return config

    def component_configs(self, props: YMap, c: _Ctx, got: Any) -> tuple[ConfigEntry, ...] | None:
        raw = props.get("configs")
        cc = c.at(props, "configs")
        if not isinstance(raw, YList) or not raw or not isinstance(got, list):
            self.error(cc, "expected a non-empty list of configs")
            return None
        entries: list[ConfigEntry] = []
        claimed: dict[str, int] = {}
        for index, (item, value) in enumerate(zip(raw, got, strict=True)):
            ic = cc.at(raw, index)
            if not isinstance(item, YMap):
                self.error(ic, "expected a config (a mapping)")
                continue
            self.loader.check_keys(item, ic, ("actions", "config", "tool"), ("config", "tool"))
            actions = self.loader.actions(item, ic, DEFAULT_DEPLOYMENT_ACTIONS)
            for action in actions:
                if action in claimed:
                    self.error(
                        ic.at(item, "actions"),
                        f"action {action} already has a config (configs[{claimed[action]}])",
                    )
                claimed[action] = index
            tool = value.get("tool")
            if not isinstance(tool, str) or not tool:
                self.error(ic.at(item, "tool"), "expected a tool name")
                continue
            entries.append(ConfigEntry(tool, actions, plain(value.get("config"))))
        return tuple(entries)

    def mime(self, props: YMap, c: _Ctx) -> str | None:
        raw = props.get("parts") or _empty_list()
        pc = c.at(props, "parts")
        if not isinstance(raw, YList):
            self.error(pc, "expected a list of parts")
            return None
        parts: list[tuple[str, str, str, str]] = []
        for index, item in enumerate(raw):
            ic = pc.at(raw, index)
            if not isinstance(item, YMap):
                self.error(ic, "expected a part (a mapping)")
                return None
            self.loader.check_keys(item, ic, ("config", "type", "subtype", "filename"), ("config",))
            ref = item.get("config")
            if isinstance(ref, YMap) and list(ref) == ["get_resource"]:
                target = ref["get_resource"]
                tres = self.resources.get(target) if isinstance(target, str) else None
                if tres is None or tres.type not in CONFIG_TYPES:
                    self.error(ic.at(item, "config"), f"get_resource: {target!r} is not a config")
                    return None
                sub = self.config(str(target))
                if sub is None or not isinstance(sub.text, str):
                    self.error(ic.at(item, "config"), f"config {target!r} has no text to include")
                    return None
                text = sub.text
            else:
                got = self.evaluate(ref, ic.at(item, "config"))
                if got is INVALID:
                    return None
                if not isinstance(got, str):
                    self.error(ic.at(item, "config"), "a part's config is text")
                    return None
                text = got
            kind = item.get("type", "text")
            if kind not in ("text", "multipart"):
                self.error(ic.at(item, "type"), "expected text or multipart")
                return None
            parts.append(
                (text, str(kind), str(item.get("subtype") or ""), str(item.get("filename") or ""))
            )
        return multipart_mime(parts)

    def inputs(self, props: YMap, c: _Ctx) -> tuple[InputDef, ...]:
        raw = props.get("inputs")
        if raw is None:
            return ()
        ic = c.at(props, "inputs")
        if not isinstance(raw, YList):
            self.error(ic, "expected a list of inputs")
            return ()
        out: list[InputDef] = []
        for index, item in enumerate(raw):
            ec = ic.at(raw, index)
            if not isinstance(item, YMap):
                self.error(ec, "expected an input (a mapping)")
                continue
            self.loader.check_keys(
                item, ec, ("name", "type", "default", "description", "replace_on_change"), ("name",)
            )
            name = item.get("name")
            type_name = item.get("type", "String")
            if not isinstance(name, str):
                self.error(ec.at(item, "name"), "expected an input name")
                continue
            if type_name not in INPUT_TYPES:
                self.error(
                    ec.at(item, "type"),
                    f"unknown type {type_name!r} (one of {', '.join(INPUT_TYPES)})",
                )
                continue
            default = None
            if "default" in item:
                raw_default = self.evaluate(item["default"], ec.at(item, "default"))
                default = self.loader.literal(type_name, raw_default, ec.at(item, "default"))
            description = item.get("description")
            out.append(
                InputDef(
                    name=name,
                    type=type_name,
                    default=default,
                    has_default="default" in item,
                    description=description if isinstance(description, str) else "",
                    replace_on_change=item.get("replace_on_change") is True,
                )
            )
        return tuple(out)

    def outputs_of(self, props: YMap, c: _Ctx) -> tuple[OutputDef, ...]:
        raw = props.get("outputs")
        if raw is None:
            return ()
        oc = c.at(props, "outputs")
        if not isinstance(raw, YList):
            self.error(oc, "expected a list of outputs")
            return ()
        out: list[OutputDef] = []
        for index, item in enumerate(raw):
            ec = oc.at(raw, index)
            if not isinstance(item, YMap) or not isinstance(item.get("name"), str):
                self.error(ec, "expected an output with a name")
                continue
            self.loader.check_keys(item, ec, ("name", "type", "description", "error_output"))
            description = item.get("description")
            out.append(
                OutputDef(
                    name=item["name"],
                    description=description if isinstance(description, str) else "",
                    error_output=item.get("error_output") is True,
                )
            )
        return tuple(out)

    # -- deployments -------------------------------------------------------------------

    def deployment_config(self, res: _Resource) -> _Config | None:
        ref = res.props.get("config")
        if isinstance(ref, YMap) and list(ref) == ["get_resource"]:
            target = ref["get_resource"]
            res_type = self.resources[target].type if target in self.resources else None
            if isinstance(target, str) and res_type in CONFIG_TYPES:
                return self.config(target)
        return None

    def deployment(self, res: _Resource) -> Deployment | None:
        c = res.ctx.at(res.body, "properties")
        props = res.props
        group = res.type in GROUP_TYPES
        structured = res.type in STRUCTURED
        allowed = ["config", "input_values", "actions", "name", "signal_transport"]
        allowed.append("servers" if group else "server")
        if structured:
            allowed += ["input_key", "input_values_validate"]
        self.loader.check_keys(
            props, c, tuple(allowed), ("config", "servers" if group else "server")
        )
        ref = props.get("config")
        rc = c.at(props, "config")
        if not (isinstance(ref, YMap) and list(ref) == ["get_resource"]):
            if "config" in props:
                self.error(rc, "expected {get_resource: <a config resource>}")
            return None
        target = ref["get_resource"]
        if not isinstance(target, str) or target not in self.resources:
            self.error(rc.at(ref, "get_resource"), f"get_resource: unknown resource {target!r}")
            return None
        if self.resources[target].type not in CONFIG_TYPES:
            self.error(rc.at(ref, "get_resource"), f"{target!r} is not a config resource")
            return None
        config = self.config(target)
        if group:
            servers = tuple(self.group_servers(res).values())
        else:
            one = self.single_server(res)
            servers = (one,) if one is not None else ()
        actions = self.loader.actions(props, c, DEFAULT_DEPLOYMENT_ACTIONS)
        transport = props.get("signal_transport")
        if transport is not None and transport not in SIGNAL_TRANSPORTS:
            self.error(
                c.at(props, "signal_transport"),
                f"unknown signal_transport {transport!r} (one of {', '.join(SIGNAL_TRANSPORTS)})",
            )
        name = props.get("name")
        if name is not None and not isinstance(name, str):
            self.error(c.at(props, "name"), "expected a name")
            name = None
        values: dict[str, Any] = {}
        raw_values = props.get("input_values")
        vc = c.at(props, "input_values")
        if (
            raw_values is not None
            and self.loader.mapping(raw_values, vc, "input_values") is not None
        ):
            for iname, raw in raw_values.items():
                got = self.evaluate(raw, vc.at(raw_values, iname))
                if got is not INVALID:
                    values[str(iname)] = got
        if config is None:
            return None
        input_key: str | None = None
        if structured:
            input_key = str(props.get("input_key", "get_input"))
            self.check_structured(props, c, config, values, input_key)
        component = self.component(res, target, config, values, name, input_key, raw_values)
        self.components[f"{self.stem}/{res.name}"] = component
        depends = sorted(self.upstream_deployments(res))
        return Deployment(
            stack=self.stem,
            name=res.name,
            component=f"{self.stem}/{res.name}",
            servers=servers,
            group=None,
            actions=actions,
            input_values={
                k: v if _has_deferred(v) else self.typed(component, k, v, vc.at(raw_values, k))
                for k, v in values.items()
            },
            depends_on=tuple(f"{self.stem}/{d}" for d in depends),
            timeout=None,
            file=self.path,
            line=res.ctx.line,
            update_policy=self.policy(res, "rolling_update", len(servers)) if group else None,
            batch_create=self.policy(res, "batch_create", 0) if group else None,
            state=self.state,
        )

    def typed(self, component: Component, name: str, value: Any, c: _Ctx) -> Any:
        idef = component.input(name)
        if idef is None:
            return value
        return self.loader.literal(idef.type, value, c)

    def check_structured(
        self, props: YMap, c: _Ctx, config: _Config, values: dict[str, Any], input_key: str
    ) -> None:
        mode = props.get("input_values_validate", "LAX")
        if mode not in ("LAX", "STRICT"):
            self.error(c.at(props, "input_values_validate"), "expected LAX or STRICT")
        known = {i.name for i in config.inputs} | set(values)
        for entry in config.entries:
            for asked in input_names(entry.config, input_key):
                if asked.startswith("deploy_"):
                    self.error(
                        c.at(props, "config"),
                        f"{{{input_key}: {asked}}}: the deploy_* inputs are known only on "
                        "the server; setpoint cannot put them in a structured config",
                    )
                elif mode == "STRICT" and asked not in known:
                    self.error(
                        c.at(props, "input_values"), f"no value for input {asked!r} (STRICT)"
                    )

    def component(
        self,
        res: _Resource,
        config_name: str,
        config: _Config,
        values: dict[str, Any],
        name: str | None,
        input_key: str | None,
        raw_values: Any,
    ) -> Component:
        inputs = list(config.inputs)
        declared = {i.name for i in inputs}
        for iname, value in values.items():
            if iname in declared:
                continue
            # Heat declares them String and passes the value as it is: the type
            # that keeps the value as it is.
            kind = "Json" if isinstance(value, dict | list) else "String"
            if isinstance(value, bool):
                kind = "Boolean"
            elif isinstance(value, int | float) or (
                isinstance(value, GetAttr) and value.output == "deploy_status_code"
            ):
                kind = "Number"
            secret = _hidden_param(raw_values, iname, self.hidden)
            inputs.append(InputDef(name=iname, type=kind, secret=secret))
        for index, idef in enumerate(inputs):
            if idef.name in declared and _hidden_param(raw_values, idef.name, self.hidden):
                inputs[index] = InputDef(
                    idef.name, idef.type, idef.default, idef.has_default, idef.description,
                    idef.replace_on_change, True,
                )  # fmt: skip
        outputs = [*config.outputs]
        outputs += [OutputDef(n) for n in DEPLOY_OUTPUTS if n not in {o.name for o in outputs}]
        return Component(
            name=name or f"{self.stem}-{config_name}",
            # One component per deployment: the fragment keeps render caches apart.
            file=f"{self.path}#{res.name}",
            description="",
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            configs=config.entries,
            files=(),
            options=config.options,
            input_key=input_key,
        )

    def policy(self, res: _Resource, key: str, servers: int) -> UpdatePolicy | None:
        raw = res.body.get("update_policy")
        if not isinstance(raw, YMap) or key not in raw:
            return None
        c = res.ctx.at(res.body, "update_policy")
        self.loader.check_keys(raw, c, ("rolling_update", "batch_create"))
        wrapped = YMap({key: raw[key]})
        wrapped.key_lines = {key: raw.line_of(key)}
        return self.loader.update_policy(wrapped, key, c, servers)

    def upstream_deployments(self, res: _Resource) -> set[str]:
        """Deployments reached from ``res`` through its references, as Heat orders
        them: a chain through configs, servers or other resources counts."""
        found: set[str] = set()
        seen = {res.name}
        todo = list(res.refs)
        while todo:
            name = todo.pop()
            if name in seen or name not in self.resources:
                continue
            seen.add(name)
            other = self.resources[name]
            if other.type in SINGLE_TYPES + GROUP_TYPES:
                found.add(name)
            else:
                todo += other.refs
        return found

    # -- outputs -------------------------------------------------------------------

    def outputs(self, m: YMap, ctx: _Ctx) -> None:
        """Stack outputs are checked for references; their values are Heat's, not setpoint's."""
        raw = m.get("outputs")
        if raw is None:
            return
        oc = ctx.at(m, "outputs")
        if self.loader.mapping(raw, oc, "outputs") is None:
            return
        for oname, body in raw.items():
            c = oc.at(raw, oname)
            for ref in sorted(_walk_refs(body)):
                if ref not in self.resources:
                    self.error(c, f"output {oname!r} refers to unknown resource {ref!r}")


def _empty_map() -> YMap:
    m = YMap()
    m.key_lines = {}
    return m


def _empty_list() -> YList:
    items = YList()
    items.item_lines = []
    return items


def _hidden_param(raw_values: Any, name: str, hidden: set[str]) -> bool:
    if not isinstance(raw_values, YMap):
        return False
    raw = raw_values.get(name)
    return isinstance(raw, YMap) and list(raw) == ["get_param"] and raw["get_param"] in hidden


def _hint(word: str, choices: tuple[str, ...]) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load_template(
    loader: _Loader, path: str, stem: str, components: dict[str, Component], inventory: Inventory
) -> Stack | None:
    """Read the Heat template at ``path`` as stack ``stem``; its components go into
    ``components`` under ``<stem>/<deployment>``."""
    return HeatTemplate(loader, path, stem, components, inventory).load()
