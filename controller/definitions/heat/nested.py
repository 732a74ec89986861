"""Nested stacks: template resources (a ``type:`` that is a template file, or a
type the ``resource_registry`` maps to one) and ``OS::Heat::ResourceGroup``
of deployments or of template resources.

A nested template is read like a top-level one, with the template resource's
``properties`` as its parameter values; its deployments are named by their
path (``stack/outer_res/inner_deployment``) and wait for what the template
resource waits for. ``get_attr: [res, name]`` or ``[res, outputs, name]``
reads the nested template's output ``name``.

A ResourceGroup's members are ``<group>/0`` … ``<group>/<count - 1>``, each
its ``resource_def`` with ``%index%`` (or ``index_var``) replaced by its
index; ``get_attr`` of the group gives the list of its members' attributes,
``[group, resource.<n>, ...]`` one member's, and ``refs``, ``refs_map``,
``attributes`` and ``removed_rsrc_list`` as Heat's ResourceGroup gives them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from setpoint.controller.definitions.checks import Checks, Where
from setpoint.controller.definitions.heat.functions import select
from setpoint.controller.definitions.heat.parameter_merge import MergedSection
from setpoint.controller.definitions.heat.registry import (
    NONE_TYPE,
    ResourceRegistry,
    is_template_type,
    template_path,
)
from setpoint.controller.definitions.heat.resources import (
    SINGLE_TYPES,
    ChooseBranch,
    Resource,
    TemplateScope,
    walk_refs,
)
from setpoint.controller.definitions.intrinsics import INVALID, has_deferred
from setpoint.controller.definitions.model import Computed, Deployment
from setpoint.controller.definitions.yamlsource import YList, YMap

GROUP_KEYS = ("count", "resource_def", "index_var", "removal_policies", "removal_policies_mode")
RESOURCE_DEF_KEYS = ("type", "properties", "metadata")


@dataclass(frozen=True)
class Nesting:
    """Where a template sits in its stack: empty for a top-level template."""

    registry: ResourceRegistry
    state: str
    # The template files from the top-level one to this one (cycles are named by them).
    chain: tuple[str, ...]
    prefix: str = ""
    # The parameter values the template resource's properties give.
    values: dict[str, tuple[Any, Where]] = field(default_factory=dict)
    # Deployments (qualified) every deployment of this template waits for.
    depends_on: tuple[str, ...] = ()
    # The environment file's ``parameter_defaults``, for every template of the stack.
    defaults: MergedSection = field(default_factory=MergedSection)
    # Every parameter name the stack's templates declare (filled as they are read).
    declared: set[str] = field(default_factory=set)

    @property
    def nested(self) -> bool:
        return len(self.chain) > 1


class NestedTemplate(Protocol):
    """What a template resource's template gives its parent, once read."""

    # Its deployments (and those of the templates it nests), by name in the stack.
    found: dict[str, Deployment]

    def all_deployments(self) -> set[str]: ...

    def output_names(self) -> tuple[str, ...]: ...

    def output(self, name: str, c: Where) -> Any: ...


# Reads the template at a commit path, nested as ``Nesting`` says.
OpenTemplate = Callable[[str, Nesting], NestedTemplate | None]
Evaluate = Callable[[Any, Where], Any]
# The attribute of one resource (``Evaluator.attr_of``).
AttrOf = Callable[[Resource, str, list[Any], Where], Any]
# What ``get_resource`` of one resource gives (``Evaluator.reference``).
RefOf = Callable[[Resource, Where], Any]


def substitute_index(value: Any, index_var: str, index: int) -> Any:
    """Heat's ``%index%`` substitution in every string of a member's definition;
    YAML positions are kept so that errors still name the line."""
    if isinstance(value, str):
        return value.replace(index_var, str(index))
    if isinstance(value, YMap):
        return YMap(
            {k: substitute_index(v, index_var, index) for k, v in value.items()},
            line=value.line,
            key_lines=value.key_lines,
        )
    if isinstance(value, YList):
        out = YList(line=value.line)
        out.extend(substitute_index(v, index_var, index) for v in value)
        out.item_lines = list(value.item_lines)
        return out
    return value


class NestedStacks:
    """The template resources and resource groups of one template."""

    def __init__(
        self,
        scope: TemplateScope,
        nesting: Nesting,
        evaluate: Evaluate,
        open_template: OpenTemplate,
        deployments_of: Callable[[Resource], set[str]],
        choose: ChooseBranch | None = None,
    ) -> None:
        self.scope = scope
        self.checks: Checks = scope.checks
        self.nesting = nesting
        self.evaluate = evaluate
        self.open_template = open_template
        self.deployments_of = deployments_of
        self.choose = choose  # the branch an ``if`` takes, for members' references
        self.templates: dict[str, NestedTemplate | None] = {}
        self.members: dict[str, list[Resource]] = {}
        self.loading: set[str] = set()  # template resources being read, to find cycles
        # The registries of group members' nested stacks (Heat's, drilled down twice).
        self.registries: dict[str, ResourceRegistry] = {}
        self.attr_of: AttrOf | None = None  # set by the evaluator that reads attributes
        self.ref_of: RefOf | None = None  # ``get_resource`` of a member, set likewise

    @property
    def member_names(self) -> set[str]:
        return {m.name for members in self.members.values() for m in members}

    def handles(self, res: Resource) -> bool:
        return res.template is not None or res.name in self.members

    # -- template resources --------------------------------------------------------

    def template_of(self, res: Resource) -> NestedTemplate | None:
        """The nested template of template resource ``res``, read once."""
        if res.name in self.loading:
            self.checks.error(
                res.where,
                f"resource {res.name!r} needs its own nested stack's outputs or deployments "
                "before it can be read (a dependency cycle)",
            )
            self.templates[res.name] = None
        if res.name in self.templates:
            return self.templates[res.name]
        assert res.template is not None
        self.loading.add(res.name)
        try:
            got = self.read_template(res, res.template)
        finally:
            self.loading.discard(res.name)
        self.templates[res.name] = got
        return got

    def read_template(self, res: Resource, template: str) -> NestedTemplate | None:
        chain = self.nesting.chain
        if template in chain:
            cycle = " -> ".join([*chain[chain.index(template) :], template])
            self.checks.error(
                res.where.at(res.body, "type"), f"nested templates form a cycle: {cycle}"
            )
            return None
        values = self.property_values(res)
        if values is None:
            return None
        depends = self.deployments_waited_for(res)
        nesting = Nesting(
            registry=self.registry_of(res),
            state=self.nesting.state,
            chain=(*chain, template),
            prefix=f"{self.scope.prefix}{res.name}/",
            values=values,
            depends_on=tuple(sorted({*self.nesting.depends_on, *depends})),
            defaults=self.nesting.defaults,
            declared=self.nesting.declared,
        )
        return self.open_template(template, nesting)

    def property_values(self, res: Resource) -> dict[str, tuple[Any, Where]] | None:
        """The template resource's properties, evaluated here: its template's parameters."""
        values: dict[str, tuple[Any, Where]] = {}
        c = res.props_where
        for pname, raw in res.props.items():
            pc = c.at(res.props, pname)
            got = self.evaluate(raw, pc)
            if got is INVALID:
                return None
            values[str(pname)] = (got, pc)
        return values

    def deployments_waited_for(self, res: Resource) -> set[str]:
        """Deployments of this template that ``res`` refers to, as Heat orders a
        nested stack after everything its properties and ``depends_on`` name."""
        found: set[str] = set()
        for ref in sorted(res.refs):
            other = self.scope.resources.get(ref)
            if other is not None:
                found |= self.deployments_of(other)
        return found

    # -- resource groups ------------------------------------------------------------

    def expand_group(self, res: Resource) -> list[Resource] | None:
        """The members of ResourceGroup ``res`` when they are deployments or
        template resources; ``None`` (to be warned about) when they are not."""
        props, c = res.props, res.props_where
        rdef = props.get("resource_def")
        if not isinstance(rdef, YMap) or not isinstance(rdef.get("type"), str):
            return None
        # As Heat reads a group: its members are resources "0", "1", ... of its
        # nested stack, each typed through that stack's registry.
        registry = self.nesting.registry.child(res.name)
        count = self.count(props, c)
        types = [
            self.resolve_type(rdef["type"], c.at(props, "resource_def"), str(index), registry)
            for index in range(max(count, 1))
        ]
        if not any(rtype in SINGLE_TYPES or template for rtype, template in types):
            return None
        self.checks.check_keys(props, c, GROUP_KEYS, ("resource_def",))
        dc = c.at(props, "resource_def")
        self.checks.check_keys(rdef, dc, RESOURCE_DEF_KEYS, ("type",))
        if props.get("removal_policies"):
            self.checks.error(
                c.at(props, "removal_policies"),
                "removal_policies is not supported by setpoint: a group's members are "
                "always 0 to count - 1 (lower count to remove the last ones)",
            )
        index_var = props.get("index_var", "%index%")
        if not isinstance(index_var, str) or not index_var:
            self.checks.error(c.at(props, "index_var"), "expected index_var: a non-empty string")
            return []
        raw_props = rdef.get("properties") or YMap()
        if not isinstance(raw_props, YMap):
            self.checks.error(dc.at(rdef, "properties"), "expected properties (a mapping)")
            return []
        members: list[Resource] = []
        for index in range(count):
            member_type, template = types[index]
            if member_type not in (*SINGLE_TYPES, NONE_TYPE) and template is None:
                self.checks.error(
                    dc.at(rdef, "type"),
                    f"member {index} of {res.name!r} is mapped to {member_type}: setpoint "
                    "reads groups of deployments or of template resources",
                )
                continue
            body = substitute_index(rdef, index_var, index)
            member_props = body.get("properties") or YMap()
            member = Resource(
                f"{res.name}/{index}", member_type, body, member_props, dc, template=template
            )
            member.refs = walk_refs(member_props, self.choose) | res.refs
            members.append(member)
            self.registries[member.name] = registry.child(str(index))
        self.members[res.name] = members
        return members

    def registry_of(self, res: Resource) -> ResourceRegistry:
        """The registry of the nested stack of template resource ``res``."""
        return self.registries.get(res.name) or self.nesting.registry.child(res.name)

    def resolve_type(
        self, rtype: str, c: Where, name: str, registry: ResourceRegistry | None = None
    ) -> tuple[str, str | None]:
        """The type of resource ``name`` once mapped by the registry, and the
        template it names (if any)."""
        registry = registry or self.nesting.registry
        mapped, mapping = registry.resolve(self.checks, rtype, c, name)
        if mapping is not None:
            return mapped, mapping.target
        if is_template_type(mapped):
            return mapped, template_path(self.scope.files, self.scope.path, mapped, c)
        return mapped, None

    def count(self, props: YMap, c: Where) -> int:
        if "count" not in props:
            return 1  # Heat's default
        got = self.evaluate(props["count"], c.at(props, "count"))
        if got is INVALID:
            return 0
        if isinstance(got, str) and got.isdigit():
            got = int(got)
        if not isinstance(got, int) or isinstance(got, bool) or got < 0:
            self.checks.error(c.at(props, "count"), f"expected count: a number >= 0, got {got!r}")
            return 0
        return got

    # -- attributes -----------------------------------------------------------------

    def attr(self, res: Resource, attribute: str, path: list[Any], c: Where) -> Any:
        if res.name in self.members:
            return self.group_attr(res, attribute, path, c)
        nested = self.template_of(res)
        if nested is None:
            return INVALID
        if attribute == "outputs":
            if not path or not isinstance(path[0], str):
                self.checks.error(c, "get_attr: outputs takes the name of an output after it")
                return INVALID
            attribute, path = path[0], path[1:]
        value = nested.output(attribute, c)
        if value is INVALID or not path:
            return value
        return self.select(value, path)

    def attribute_names(self, res: Resource, c: Where) -> tuple[str, ...] | None:
        """A nested template's outputs (a template resource's attributes, in Heat)."""
        if res.name in self.members:
            self.checks.error(
                c, "get_attr: every attribute of a ResourceGroup is not known to setpoint"
            )
            return None
        nested = self.template_of(res)
        return None if nested is None else nested.output_names()

    def group_attr(self, res: Resource, attribute: str, path: list[Any], c: Where) -> Any:
        """A ResourceGroup's attributes, as Heat's: ``[group, attr]`` the list of
        every member's; ``resource.<n>`` member n's (its reference alone);
        ``refs`` and ``refs_map`` the members' references (what ``get_resource``
        of each gives); ``attributes`` a map of index to member attribute;
        ``removed_rsrc_list`` is empty, since setpoint never removes members by
        name. As in Heat, ``refs_map`` and ``removed_rsrc_list`` take no path."""
        members = self.members[res.name]
        if attribute.startswith("resource."):
            parts = attribute.split(".", 2)  # and Heat's resource.<n>.<attr> form
            return self.member_attr(res, parts[1], [*parts[2:], *path], c)
        if attribute == "refs":
            refs = self.member_refs(members, c)
            return refs if refs is INVALID or not path else self.select(refs, path)
        if attribute == "refs_map":
            refs = self.member_refs(members, c)
            return refs if refs is INVALID else dict(zip(self.indexes(members), refs, strict=True))
        if attribute == "removed_rsrc_list":
            return []
        if attribute == "attributes":
            if not path or not isinstance(path[0], str):
                self.checks.error(
                    c,
                    f"get_attr: attributes of ResourceGroup {res.name!r} takes the name of "
                    "the members' attribute after it",
                )
                return INVALID
            values = self.member_attrs(members, str(path[0]), list(path[1:]), c)
            return (
                values
                if values is INVALID
                else dict(zip(self.indexes(members), values, strict=True))
            )
        return self.member_attrs(members, attribute, path, c)

    def member_attr(self, res: Resource, index: str, path: list[Any], c: Where) -> Any:
        """``resource.<n>``: member n's reference, or its attribute ``path[0]``."""
        assert self.attr_of is not None
        assert self.ref_of is not None
        members = self.members[res.name]
        if not index.isdigit() or int(index) >= len(members):
            self.checks.error(
                c, f"get_attr: {res.name!r} has members 0 to {len(members) - 1}, not {index!r}"
            )
            return INVALID
        member = members[int(index)]
        if not path:
            return self.ref_of(member, c)
        return self.attr_of(member, str(path[0]), list(path[1:]), c)

    def member_attrs(
        self, members: list[Resource], attribute: str, path: list[Any], c: Where
    ) -> Any:
        assert self.attr_of is not None
        values = []
        for member in members:
            got = self.attr_of(member, attribute, path, c)
            if got is INVALID:
                return INVALID
            values.append(got)
        return values

    def member_refs(self, members: list[Resource], c: Where) -> Any:
        assert self.ref_of is not None
        refs = []
        for member in members:
            got = self.ref_of(member, c)
            if got is INVALID:
                return INVALID
            refs.append(got)
        return refs

    @staticmethod
    def indexes(members: list[Resource]) -> list[str]:
        """Each member's index, as Heat names a group's members: "0", "1", ..."""
        return [m.name.rsplit("/", 1)[1] for m in members]

    def select(self, value: Any, path: list[Any]) -> Any:
        if has_deferred(value):

            def pick(got: Any, path: list[Any] = path) -> Any:
                return select(got, path)

            return Computed("get_attr", pick, value)
        return select(value, path)
