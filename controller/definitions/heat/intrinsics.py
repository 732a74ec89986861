"""Heat's intrinsic functions in a template's values: ``get_param``,
``get_file`` and ``get_resource`` of a server resolved now; ``get_attr`` of a
deployment kept as a ``GetAttr``; ``str_replace`` and ``list_join`` computed
now when their arguments are known, else when rendered (``Computed``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from setpoint.controller.definitions.checks import Where, did_you_mean
from setpoint.controller.definitions.heat.functions import list_join, select, str_replace
from setpoint.controller.definitions.heat.resources import (
    DEPLOY_OUTPUTS,
    GROUP_TYPES,
    INVALID,
    RANDOM_STRING,
    SERVER_TYPES,
    SINGLE_TYPES,
    Resource,
    TemplateScope,
)
from setpoint.controller.definitions.heat.secrets import keep_secret
from setpoint.controller.definitions.heat.servers import ServerBinding
from setpoint.controller.definitions.model import Computed, GetAttr, OutputDef
from setpoint.controller.definitions.yamlsource import YList, YMap

# Group attributes Heat names in the plural, by the output each one maps.
GROUP_ATTRS = {
    "deploy_stdouts": "deploy_stdout",
    "deploy_stderrs": "deploy_stderr",
    "deploy_status_codes": "deploy_status_code",
}
# Functions of HOT that setpoint does not evaluate: named in an error, never data.
UNSUPPORTED_FUNCTIONS = (
    "repeat", "map_merge", "map_replace", "yaql", "if", "equals", "not", "and", "or",
    "contains", "digest", "str_split", "resource_facade", "filter", "make_url",
    "list_concat", "list_concat_unique", "str_replace_strict", "str_replace_vstrict",
    "get_resource_facade", "Fn::GetAtt", "Ref", "Fn::Join", "Fn::Base64",
)  # fmt: skip


class AttributeSource(Protocol):
    """Resources whose attributes another part of the reader knows (nested
    stacks, resource groups, RandomString)."""

    def handles(self, res: Resource) -> bool: ...

    def attr(self, res: Resource, attribute: str, path: list[Any], c: Where) -> Any: ...


def has_deferred(value: Any) -> bool:
    """Whether ``value`` is known only once an upstream reported."""
    if isinstance(value, GetAttr | Computed):
        return True
    if isinstance(value, dict):
        return any(has_deferred(v) for v in value.values())
    if isinstance(value, list):
        return any(has_deferred(v) for v in value)
    return False


def _computed(label: str, fn: Callable[[Any], Any], args: Any) -> Any:
    """``fn(args)`` now when every arg is known, else when rendered."""
    if has_deferred(args):
        return Computed(label, fn, args)
    return keep_secret(fn(args), args)


class Evaluator:
    """Evaluates the snippets of one template.

    ``config_outputs(res)`` gives the outputs the config of deployment ``res``
    declares (``None`` when it has no config to read): ``get_attr`` names one.
    """

    def __init__(
        self,
        scope: TemplateScope,
        server_map: dict[str, tuple[str, Where]],
        config_outputs: Callable[[Resource], tuple[OutputDef, ...] | None],
    ) -> None:
        self.scope = scope
        self.checks = scope.checks
        self.config_outputs = config_outputs
        self.servers = ServerBinding(scope, server_map, self.evaluate)
        self.attribute_sources: list[AttributeSource] = []
        self.functions: dict[str, Callable[[Any, Where], Any]] = {
            "get_param": self.get_param,
            "get_file": self.get_file,
            "get_resource": self.get_resource,
            "get_attr": self.get_attr,
            "str_replace": self.str_replace,
            "list_join": self.list_join,
        }

    def evaluate(self, value: Any, c: Where) -> Any:
        """Resolve a snippet: get_param, get_file, get_resource (of a server) now;
        get_attr of a deployment as ``GetAttr``; str_replace and list_join."""
        if isinstance(value, YMap) and len(value) == 1:
            fn, arg = next(iter(value.items()))
            function = self.functions.get(fn)
            if function is not None:
                return function(arg, c.at(value, fn))
            if fn in UNSUPPORTED_FUNCTIONS:
                self.checks.error(c.at(value, fn), f"{fn} is not supported by setpoint")
                return INVALID
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, item in value.items():
                got = self.evaluate(item, c.at(value, key))
                if got is INVALID:
                    return INVALID
                out[str(key)] = got
            return out
        if isinstance(value, list):
            items = []
            for index, item in enumerate(value):
                got = self.evaluate(item, c.at(value, index))
                if got is INVALID:
                    return INVALID
                items.append(got)
            return items
        return value

    def get_param(self, arg: Any, c: Where) -> Any:
        """``{get_param: name}`` or ``{get_param: [name, key or index, ...]}``."""
        if isinstance(arg, YList):
            arg = self.evaluate(arg, c)  # the path may itself use functions
            if arg is INVALID:
                return INVALID
        path: list[Any] = []
        if isinstance(arg, list) and arg and isinstance(arg[0], str):
            name, path = arg[0], arg[1:]
        elif isinstance(arg, str):
            name = arg
        else:
            self.checks.error(c, "get_param takes a parameter name (and a path)")
            return INVALID
        if not all(_is_path_item(item) for item in path):
            self.checks.error(c, "get_param: each item of the path is a key or an index")
            return INVALID
        if name == "OS::stack_name":
            return self.scope.stem
        param = self.scope.params.get(name)
        if param is None:
            hint = did_you_mean(name, tuple(self.scope.params))
            self.checks.error(c, f"unknown parameter {name!r}{hint}")
            return INVALID
        if not param.has_default:
            nested_in = self.scope.prefix.rstrip("/")
            given_by = f"the properties of {nested_in!r}, or " if nested_in else ""
            self.checks.error(
                c,
                f"parameter {name!r} has no value (give it a default, or a value in "
                f"{given_by}the environment file's parameter_defaults)",
            )
            return INVALID
        return select(param.default, path) if path else param.default

    def get_file(self, arg: Any, c: Where) -> Any:
        text = self.scope.files.read_text(self.scope.path, arg, c)
        return INVALID if text is None else text

    def get_resource(self, arg: Any, c: Where) -> Any:
        resources = self.scope.resources
        if not isinstance(arg, str) or arg not in resources:
            self.checks.error(c, f"get_resource: unknown resource {arg!r}")
            return INVALID
        if resources[arg].type in SERVER_TYPES:
            return self.servers.server_of(arg, c)
        if resources[arg].type == RANDOM_STRING:  # its id is its value, in Heat
            return self.attr_of(resources[arg], "value", [], c)
        self.checks.error(
            c,
            f"get_resource: the id of {arg!r} ({resources[arg].type}) is not "
            "known to setpoint here",
        )
        return INVALID

    def str_replace(self, arg: Any, c: Where) -> Any:
        if not isinstance(arg, YMap) or set(arg) != {"template", "params"}:
            self.checks.error(c, "str_replace takes {template: ..., params: {...}}")
            return INVALID
        got = self.evaluate(arg, c)
        if got is INVALID:
            return INVALID
        if not isinstance(got["params"], dict):
            self.checks.error(c.at(arg, "params"), "str_replace params must be a mapping")
            return INVALID
        if not isinstance(got["template"], str | Computed):
            self.checks.error(c.at(arg, "template"), "str_replace template must be a string")
            return INVALID

        def apply(args: Any) -> Any:
            return str_replace(str(args["template"]), args["params"])

        return _computed("str_replace", apply, got)

    def list_join(self, arg: Any, c: Where) -> Any:
        if not isinstance(arg, YList) or len(arg) < 2 or not isinstance(arg[0], str):
            self.checks.error(c, "list_join takes [delimiter, list, ...]")
            return INVALID
        got = self.evaluate(arg, c)
        if got is INVALID:
            return INVALID
        for index, item in enumerate(got[1:], start=1):
            if not isinstance(item, list | GetAttr | Computed):
                self.checks.error(c.at(arg, index), "list_join joins lists")
                return INVALID

        def apply(args: Any) -> Any:
            lists = [a if isinstance(a, list) else [a] for a in args[1:]]
            return list_join(args[0], lists)

        return _computed("list_join", apply, got)

    def get_attr(self, arg: Any, c: Where) -> Any:
        if not isinstance(arg, YList) or len(arg) < 2 or not isinstance(arg[0], str):
            self.checks.error(c, "get_attr takes [resource, attribute, ...]")
            return INVALID
        args = self.evaluate(arg, c)
        if args is INVALID:
            return INVALID
        rname, attribute, path = args[0], args[1], list(args[2:])
        if not isinstance(attribute, str) or not all(_is_path_item(item) for item in path):
            self.checks.error(
                c, "get_attr: the attribute is a name, each item of the path a key or an index"
            )
            return INVALID
        res = self.scope.resources.get(rname)
        if res is None:
            self.checks.error(c, f"get_attr: unknown resource {rname!r}")
            return INVALID
        return self.attr_of(res, attribute, path, c)

    def attr_of(self, res: Resource, attribute: str, path: list[Any], c: Where) -> Any:
        """Attribute ``attribute`` of ``res``, then ``path`` selected in it."""
        source = next((s for s in self.attribute_sources if s.handles(res)), None)
        if source is not None:
            return source.attr(res, attribute, path, c)
        if res.type in SERVER_TYPES:
            return self.server_attr(res.name, attribute, path, c)
        if res.type not in SINGLE_TYPES + GROUP_TYPES:
            self.checks.error(c, f"get_attr: attributes of {res.type} are not known to setpoint")
            return INVALID
        if res.type in GROUP_TYPES:
            got = self.group_attr(res, attribute, path, c)
            if got is INVALID:
                return INVALID
            value, path = got
        else:
            if not self.check_output(res, attribute, c):
                return INVALID
            server = self.servers.single_server(res, quiet=True)
            if server is None:
                return INVALID
            value = GetAttr(
                self.scope.qualified(res.name), attribute, server, self.scope.path, c.line
            )
        if path:

            def pick(got: Any, path: list[Any] = path) -> Any:
                return select(got, path)

            return Computed("get_attr", pick, value)
        return value

    def server_attr(self, rname: str, attribute: str, path: list[Any], c: Where) -> Any:
        """A server resource's attribute, from its inventory server's labels
        (``servers.server_labels``), then ``path`` selected in it."""
        server = self.servers.server_of(rname, c)
        if server is INVALID:
            return INVALID
        value = self.servers.label_attr(rname, server, attribute, c)
        if value is INVALID or not path:
            return value
        return select(value, path)

    def group_attr(self, res: Resource, attribute: Any, path: list[Any], c: Where) -> Any:
        """A group's attribute: a map keyed as its ``servers`` map (or one member of
        it), and the path still to select in it; ``INVALID`` when reported."""
        if isinstance(attribute, str) and attribute.startswith("resource."):
            key = attribute.split(".", 1)[1]
            if not path:
                self.checks.error(c, "get_attr: resource.<key> takes an attribute after it")
                return INVALID
            attribute, path = path[0], [key, *path[1:]]
            attribute = {v: k for k, v in GROUP_ATTRS.items()}.get(attribute, attribute)
        output = GROUP_ATTRS.get(attribute, attribute)
        if not self.check_output(res, output, c):
            return INVALID
        qualified = self.scope.qualified(res.name)
        members = self.servers.group_servers(res, quiet=True)
        value: Any = {
            key: GetAttr(qualified, output, server, self.scope.path, c.line)
            for key, server in members.items()
        }
        if path and path[0] in value:
            return value[path[0]], path[1:]
        if path:
            self.checks.error(c, f"get_attr: {res.name!r} has no member {path[0]!r}")
            return INVALID
        return value, path

    def check_output(self, res: Resource, output: Any, c: Where) -> bool:
        """Whether deployment ``res`` reports ``output`` (its config declares it)."""
        if not isinstance(output, str):
            self.checks.error(c, "get_attr: the attribute must be a name")
            return False
        if output in DEPLOY_OUTPUTS:
            return True
        outputs = self.config_outputs(res)
        if outputs is None:
            return False
        if not any(o.name == output for o in outputs):
            known = ", ".join([*(o.name for o in outputs), *DEPLOY_OUTPUTS])
            self.checks.error(
                c,
                f"get_attr: the config of {res.name!r} declares no output {output!r} "
                f"(outputs: {known})",
            )
            return False
        return True


def _is_path_item(item: Any) -> bool:
    """A key of a map or an index of a list; anything else cannot select."""
    return isinstance(item, str | int) and not isinstance(item, bool)
