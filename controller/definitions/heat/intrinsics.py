"""Heat's intrinsic functions in a template's values: ``get_param``,
``get_file`` and ``get_resource`` of a server resolved now; ``get_attr`` of a
deployment kept as a ``GetAttr``; ``if`` decided by the template's
conditions; the data functions of ``builtins`` (``list_join``...) computed now
when their arguments are known, else when rendered (``Computed``). Which
functions a template has depends on its version (``versions``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from setpoint.controller.definitions.checks import Where, did_you_mean
from setpoint.controller.definitions.heat.builtins import Builtin, builtins_of, call_builtin
from setpoint.controller.definitions.heat.conditions import Conditions
from setpoint.controller.definitions.heat.functions import param_path, select
from setpoint.controller.definitions.heat.resources import (
    GROUP_TYPES,
    RANDOM_STRING,
    RESOURCE_GROUP,
    SERVER_TYPES,
    SINGLE_TYPES,
    Resource,
    TemplateScope,
)
from setpoint.controller.definitions.heat.secrets import keep_secret
from setpoint.controller.definitions.heat.servers import SERVER_LABELS, ServerBinding
from setpoint.controller.definitions.heat.versions import (
    CONDITION_FUNCTIONS,
    NOT_EVALUATED,
    since,
)
from setpoint.controller.definitions.intrinsics import ABSENT, INVALID, has_deferred, walk
from setpoint.controller.definitions.model import Computed, GetAttr, OutputDef
from setpoint.controller.definitions.yamlsource import YList, YMap
from setpoint.store.documents import DEPLOY_OUTPUTS

# Group attributes Heat names in the plural, by the output each one maps.
GROUP_ATTRS = {
    "deploy_stdouts": "deploy_stdout",
    "deploy_stderrs": "deploy_stderr",
    "deploy_status_codes": "deploy_status_code",
}


class AttributeSource(Protocol):
    """Resources whose attributes another part of the reader knows (nested
    stacks, resource groups, RandomString, OS::Heat::None)."""

    def handles(self, res: Resource) -> bool: ...

    def attr(self, res: Resource, attribute: str, path: list[Any], c: Where) -> Any: ...

    def attribute_names(self, res: Resource, c: Where) -> tuple[str, ...] | None:
        """Every attribute of ``res`` (``get_attr: [res]``); ``None``: reported."""
        ...


def _computed(label: str, fn: Callable[[Any], Any], args: Any) -> Any:
    """``fn(args)`` now when every arg is known, else when rendered. What is
    computed from a secret (a RandomString's value) is secret too, whichever
    data function computed it."""
    if has_deferred(args):
        return Computed(label, fn, args)
    return keep_secret(fn(args), args)


class Evaluator:
    """Evaluates the snippets of one template.

    ``config_outputs(res)`` gives the outputs the config of deployment ``res``
    declares (``None`` when it has no config to read): ``get_attr`` names one.
    ``conditions`` is the template's ``conditions:`` section (``if`` and the
    ``condition:`` of resources and outputs read it).
    """

    def __init__(
        self,
        scope: TemplateScope,
        server_map: dict[str, tuple[str, Where]],
        config_outputs: Callable[[Resource], tuple[OutputDef, ...] | None],
        conditions: tuple[YMap, Where],
    ) -> None:
        self.scope = scope
        self.checks = scope.checks
        self.version = scope.version
        self.config_outputs = config_outputs
        self.servers = ServerBinding(scope, server_map, self.evaluate)
        self.conditions = Conditions(self.checks, self.version, *conditions, self.get_param)
        self.builtins: dict[str, Builtin] = builtins_of(self.version)
        self.attribute_sources: list[AttributeSource] = []
        self.functions: dict[str, Callable[[Any, Where], Any]] = {
            "get_param": self.get_param,
            "get_file": self.get_file,
            "get_resource": self.get_resource,
            "get_attr": self.get_attr,
        }
        if self.version.has("if"):
            self.functions["if"] = self.if_
        self.seen_as_data: set[tuple[str, int]] = set()

    def evaluate(self, value: Any, c: Where) -> Any:
        """Resolve a snippet: get_param, get_file, get_resource (of a server) now;
        get_attr of a deployment as ``GetAttr``; the other functions computed."""
        return walk(value, c, self.call)

    def call(self, fn: str, arg: Any, c: Where) -> Any:
        """One function call; ``NotImplemented`` when ``fn`` is data here."""
        function = self.functions.get(fn)
        if function is not None:
            return function(arg, c)
        builtin = self.builtins.get(fn)
        if builtin is not None:
            return call_builtin(fn, builtin, arg, c, self.checks, self.evaluate, _computed)
        if fn in NOT_EVALUATED:
            self.checks.error(c, f"{fn} is not supported by setpoint")
            return INVALID
        self.warn_if_data(fn, c)
        return NotImplemented

    def warn_if_data(self, fn: str, c: Where) -> None:
        """A one-key mapping named as a function this version lacks is data, as in
        Heat; said once per place, since it is rarely what the author meant."""
        introduced = since(fn)
        if introduced is None and fn in CONDITION_FUNCTIONS:
            message = f"{fn} is a function of conditions only: kept here as data, as Heat does"
        elif introduced is not None:
            message = (
                f"{fn} is a function from heat_template_version {introduced} on (this "
                f"template: {self.version.date}): kept as data, as Heat does"
            )
        else:
            return
        if (c.file, c.line) not in self.seen_as_data:
            self.seen_as_data.add((c.file, c.line))
            self.checks.warn(c, message)

    def if_(self, arg: Any, c: Where) -> Any:
        """``if: [condition, value_if_true, value_if_false]``: only the branch
        taken is evaluated (Heat's macro), so the other may name anything."""
        sizes = (2, 3) if self.version.if_without_else else (3,)
        if not isinstance(arg, YList) or len(arg) not in sizes:
            form = "value_if_false" if len(sizes) == 1 else "(value_if_false)"
            self.checks.error(
                c, f'Arguments to "if" must be of the form: [condition_name, value_if_true, {form}]'
            )
            return INVALID
        truth = self.conditions.truth(arg[0], c.at(arg, 0))
        if truth is None:
            return INVALID
        index = 1 if truth else 2
        if index >= len(arg):
            return ABSENT
        return self.evaluate(arg[index], c.at(arg, index))

    def branch(self, arg: Any) -> Any:
        """The branch an ``if`` takes, for collecting references (quietly: the
        ``if`` itself reports its problems when evaluated); ``None``: unknown."""
        if not self.version.has("if") or not isinstance(arg, list) or len(arg) not in (2, 3):
            return None
        where = Where(self.scope.path, 0, "")
        with self.checks.quiet():
            truth = self.conditions.truth(arg[0], where)
        if truth is None:
            return None
        return arg[1] if truth else (arg[2] if len(arg) == 3 else [])

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
        return param_path(param.default, path)

    def get_file(self, arg: Any, c: Where) -> Any:
        text = self.scope.files.read_text(self.scope.path, arg, c)
        return INVALID if text is None else text

    def get_resource(self, arg: Any, c: Where) -> Any:
        resources = self.scope.resources
        if not isinstance(arg, str) or arg not in resources:
            self.checks.error(c, f"get_resource: {self.scope.unknown_resource(arg)}")
            return INVALID
        return self.reference(resources[arg], c)

    def reference(self, res: Resource, c: Where) -> Any:
        """What ``get_resource`` of ``res`` gives. Heat gives a physical id;
        setpoint has one where it names the thing: a server's inventory name, a
        deployment's, a group's (its nested stack's id, in Heat) or a nested
        stack's name in setpoint (``<stack>/<path>``), a RandomString's value
        (its id, in Heat): the same on every render."""
        if res.type in SERVER_TYPES:
            return self.servers.server_of(res.name, c)
        if res.type == RANDOM_STRING:
            return self.attr_of(res, "value", [], c)
        if res.type in (*SINGLE_TYPES, *GROUP_TYPES, RESOURCE_GROUP) or res.template is not None:
            return self.scope.qualified(res.name)
        self.checks.error(
            c,
            f"get_resource: the id of {res.name!r} ({res.type}) is not known to setpoint here",
        )
        return INVALID

    def get_attr(self, arg: Any, c: Where) -> Any:
        fewest = 1 if self.version.get_attr_all else 2
        if not isinstance(arg, YList) or len(arg) < fewest or not isinstance(arg[0], str):
            later = (
                ""
                if self.version.get_attr_all
                else " (the resource alone, for all its attributes, from "
                "heat_template_version 2015-10-15)"
            )
            self.checks.error(c, f"get_attr takes [resource, attribute, ...]{later}")
            return INVALID
        args = self.evaluate(arg, c)
        if args is INVALID:
            return INVALID
        if len(args) == 1:
            res = self.scope.resources.get(args[0])
            if res is None:
                self.checks.error(c, f"get_attr: {self.scope.unknown_resource(args[0])}")
                return INVALID
            return self.all_attributes(res, c)
        rname, attribute, path = args[0], args[1], list(args[2:])
        if not isinstance(attribute, str) or not all(_is_path_item(item) for item in path):
            self.checks.error(
                c, "get_attr: the attribute is a name, each item of the path a key or an index"
            )
            return INVALID
        res = self.scope.resources.get(rname)
        if res is None:
            self.checks.error(c, f"get_attr: {self.scope.unknown_resource(rname)}")
            return INVALID
        return self.attr_of(res, attribute, path, c)

    def all_attributes(self, res: Resource, c: Where) -> Any:
        """Every attribute of ``res`` as a map, as Heat's ``GetAttAllAttributes``
        gives it: the names of its attribute schema (a deployment's are the
        ``deploy_*`` ones, not its config's outputs)."""
        source = next((s for s in self.attribute_sources if s.handles(res)), None)
        names: tuple[str, ...] | None = None
        if source is not None:
            names = source.attribute_names(res, c)
        elif res.type in SINGLE_TYPES:
            names = DEPLOY_OUTPUTS
        elif res.type in GROUP_TYPES:
            names = tuple(GROUP_ATTRS)
        elif res.type in SERVER_TYPES:
            self.checks.error(
                c,
                "get_attr: every attribute of a server is not known to setpoint: name the "
                f"ones wanted ({', '.join(SERVER_LABELS)})",
            )
        else:
            self.checks.error(c, f"get_attr: attributes of {res.type} are not known to setpoint")
        if names is None:
            return INVALID
        values: dict[str, Any] = {}
        for name in names:
            got = self.attr_of(res, name, [], c)
            if got is INVALID:
                return INVALID
            values[name] = got
        return values

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
