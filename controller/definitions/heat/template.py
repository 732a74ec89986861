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
  a map keyed as the group's ``servers`` map is. The data functions
  (``builtins``) over such values are computed when the values are known.
- ``conditions:`` are decided when the template is read (``conditions``): a
  resource whose ``condition:`` is false is left out; ``outputs:`` are
  computed (``outputs``).
- Template resources, ``resource_registry`` mappings and ResourceGroups of
  deployments are nested stacks read into the same stack (``nested``); a
  RandomString's value derives from the render secret (``randomstring``).

The parts: ``versions``, ``resources``, ``environment_file``, ``registry``,
``parameters``, ``intrinsics`` (with ``servers``, ``conditions`` and
``builtins``), ``nested``, ``randomstring`` (with ``secrets``), ``configs``,
``deployments`` and ``outputs``.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

from setpoint.controller.definitions.checks import NAME_RE, Checks, Where, did_you_mean
from setpoint.controller.definitions.environments import EnvironmentValues
from setpoint.controller.definitions.files import CommitFiles
from setpoint.controller.definitions.heat.configs import ConfigReader
from setpoint.controller.definitions.heat.deployments import HeatDeploymentReader
from setpoint.controller.definitions.heat.environment_file import (
    HeatEnvironment,
    read_environment_file,
)
from setpoint.controller.definitions.heat.intrinsics import Evaluator
from setpoint.controller.definitions.heat.nested import NestedStacks, Nesting
from setpoint.controller.definitions.heat.outputs import read_outputs
from setpoint.controller.definitions.heat.parameters import read_parameters
from setpoint.controller.definitions.heat.randomstring import RandomStrings
from setpoint.controller.definitions.heat.registry import (
    NONE_TYPE,
    NoneResources,
    is_template_type,
    registry_of,
    template_targets,
)
from setpoint.controller.definitions.heat.resources import (
    CONFIG_TYPES,
    GROUP_TYPES,
    RANDOM_STRING,
    RESOURCE_GROUP,
    SERVER_TYPES,
    SINGLE_TYPES,
    Resource,
    TemplateScope,
    read_resources,
)
from setpoint.controller.definitions.heat.secrets import mark_secret
from setpoint.controller.definitions.heat.versions import known_versions, template_version
from setpoint.controller.definitions.intrinsics import INVALID
from setpoint.controller.definitions.model import (
    Component,
    Deployment,
    Inventory,
    OutputDef,
    Stack,
    StackOutput,
)
from setpoint.controller.definitions.yamlsource import YMap, load_yaml

HEAT_MARK = "heat_template_version"
TEMPLATE_KEYS = (
    HEAT_MARK, "description", "parameter_groups", "parameters", "resources", "outputs",
    "conditions",
)  # fmt: skip


def is_heat_template(raw: bytes) -> bool:
    """Whether a file's first meaningful line starts with ``heat_template_version``
    (after a UTF-8 byte-order mark, which editors on some systems write)."""
    for line in raw.decode("utf-8-sig", "replace").splitlines():
        text = line.strip()
        if not text or text.startswith("#") or text == "---":
            continue
        return text.startswith(HEAT_MARK)
    return False


@dataclass
class HeatSources:
    """What every template of a commit is read against."""

    files: CommitFiles
    environment: EnvironmentValues
    # Each template's components are added here, under ``<stem>/<deployment>``.
    components: dict[str, Component]
    inventory: Inventory
    # The controller's render secret: RandomString values derive from it.
    render_secret: bytes | None = None
    # Each template file parsed once, however many times it is nested (its
    # parse problems reported once); never changed once parsed.
    documents: dict[str, Any] = field(default_factory=dict)

    def document(self, path: str) -> Any:
        if path not in self.documents:
            raw = self.files.tree.read(path)
            self.documents[path] = load_yaml(raw, path, self.files.checks.problems)
        return self.documents[path]


def nested_template_paths(sources: HeatSources, paths: list[str]) -> set[str]:
    """The files among ``paths`` (and beyond) that templates in ``paths`` read
    as part of themselves: templates they nest, by ``type:`` or through a
    ``resource_registry`` mapping, and the environment files their
    ``setpoint.environment_files`` list. They are read where they are used,
    not as stacks of their own. A first look, which reports nothing: the
    templates' own reading reports what is wrong."""
    named: set[str] = set()
    registries = [(sources.environment.registry[0], sources.environment.registry[1].file)]
    # A reader of its own, so that nothing it meets counts as reported.
    quiet = CommitFiles(sources.files.tree, Checks())
    for path in paths:
        doc = sources.document(path)
        resources = doc.get("resources") if isinstance(doc, YMap) else None
        for body in resources.values() if isinstance(resources, YMap) else ():
            named |= {_relative(path, t) for t in _template_types(body)}
        env = read_environment_file(quiet, path)
        named.update(env.listed)
        registries += [(raw, where.file) for raw, where in env.registries]
    for raw, base in registries:
        named |= {_relative(base, target) for target in template_targets(raw)}
    return named


def _template_types(body: Any) -> list[str]:
    """The template files a resource's ``type`` (or its group's ``resource_def``) names."""
    if not isinstance(body, YMap):
        return []
    rtype = body.get("type")
    if rtype == RESOURCE_GROUP:
        props = body.get("properties")
        rdef = props.get("resource_def") if isinstance(props, YMap) else None
        return _template_types(rdef)
    return [rtype] if isinstance(rtype, str) and is_template_type(rtype) else []


def declared_types(m: YMap) -> dict[str, str]:
    """The parameters a template declares, each with its Heat type as written
    (an unknown or missing one is reported where it is declared)."""
    raw = m.get("parameters")
    if not isinstance(raw, YMap):
        return {}
    return {
        str(name): str(body.get("type")) if isinstance(body, YMap) else ""
        for name, body in raw.items()
    }


def _relative(base_file: str, name: str) -> str:
    return posixpath.normpath(posixpath.join(posixpath.dirname(base_file), name))


def load_template(sources: HeatSources, path: str, stem: str) -> Stack | None:
    """Read the Heat template at ``path`` as stack ``stem``; its components go into
    ``sources.components`` under ``<stem>/<deployment>``."""
    return HeatTemplate(sources, path, stem).load()


class HeatTemplate:
    """One Heat template read into a ``Stack`` (and components); a nested
    template (``nesting`` given) is read into its parent's stack."""

    def __init__(
        self, sources: HeatSources, path: str, stem: str, nesting: Nesting | None = None
    ) -> None:
        self.sources = sources
        self.scope = TemplateScope(sources.files, path, stem, sources.inventory)
        self.checks = sources.files.checks
        self.nesting = nesting
        self.found: dict[str, Deployment] = {}
        self.outputs: dict[str, StackOutput] = {}

    def load(self) -> Stack | None:
        scope = self.scope
        where = Where(scope.path, 1, "")
        m = self.checks.mapping(self.sources.document(scope.path), where, "a Heat template")
        if m is None:
            return None
        self.check_template(m, where)
        found = self.read(m, where)
        if found is None:
            return None
        self.found = found
        description = m.get("description")
        return Stack(
            name=scope.stem,
            file=scope.path,
            description=description if isinstance(description, str) else "",
            parameters=scope.params,
            deployments=found,
            outputs=self.outputs,
        )

    def read(self, m: YMap, where: Where) -> dict[str, Deployment] | None:
        """Parameters, resources and deployments of the template (``None``: no resources)."""
        scope, checks = self.scope, self.checks
        env_file = HeatEnvironment()
        if self.nesting is None:
            env_file = read_environment_file(scope.files, scope.path)
            registry = registry_of(
                scope.files, [*env_file.registries, self.sources.environment.registry]
            )
            self.nesting = Nesting(
                registry, env_file.state, (scope.path,), defaults=env_file.defaults
            )
            given = env_file.values_for(checks, declared_types(m))
            scope.params, scope.hidden = read_parameters(
                checks, m, where, given, self.sources.environment
            )
        else:
            scope.prefix = self.nesting.prefix
            scope.params, scope.hidden = read_parameters(
                checks, m, where, self.given_values(m), EnvironmentValues(checks)
            )
        self.nesting.declared.update(scope.params)
        raw = m.get("resources") or YMap()
        rwhere = where.at(m, "resources")
        if checks.mapping(raw, rwhere, "resources") is None:
            return None
        evaluator = Evaluator(
            scope, env_file.server_map, self.config_outputs, self.conditions_section(m, where)
        )
        evaluator.conditions.check_all()
        scope.resources = read_resources(checks, raw, rwhere, evaluator.branch)
        self.leave_out_disabled(evaluator)
        self.nested = NestedStacks(
            scope,
            self.nesting,
            evaluator.evaluate,
            self.open_nested,
            self.deployments_of,
            evaluator.branch,
        )
        self.nested.attr_of = evaluator.attr_of
        self.nested.ref_of = evaluator.reference
        evaluator.attribute_sources += [
            self.nested,
            RandomStrings(scope, self.sources.render_secret, evaluator.evaluate),
            NoneResources(),
        ]
        self.resolve_types()
        self.configs = ConfigReader(scope, evaluator)
        reader = HeatDeploymentReader(
            scope,
            evaluator,
            self.configs,
            self.sources.components,
            self.nesting.state,
            self.deployments_of,
            self.nesting.depends_on,
        )
        deployments = self.by_config_name(self.deployments(reader))
        for pname, pwhere in env_file.given().items():
            if pname in self.nesting.declared:  # by this template or one it nests
                continue
            if pwhere.file == env_file.path:
                checks.warn(pwhere, f"the template declares no parameter {pname!r}")
            # A listed file may be shared by many templates: its defaults that
            # this one does not declare are ignored, as Heat ignores them.
            elif not pwhere.field.startswith("parameter_defaults"):
                checks.warn(pwhere, f"{scope.path} declares no parameter {pname!r}")
        for name, (_server, swhere) in env_file.server_map.items():
            is_server = name in scope.resources and scope.resources[name].type in SERVER_TYPES
            if not is_server and name not in scope.disabled:
                checks.error(swhere, f"setpoint.servers: no server resource {name!r}")
        self.outputs = read_outputs(scope, evaluator, m, where)
        return deployments

    def given_values(self, m: YMap) -> dict[str, tuple[Any, Where]]:
        """The values of this nested template's parameters: the template
        resource's properties (one it does not declare is an error), else the
        selected setpoint environment's, else the environment file's
        ``parameter_defaults``, as Heat gives them to nested stacks."""
        assert self.nesting is not None
        types = declared_types(m)
        names = set(types)
        given = self.nesting.values
        for pname, (_value, pwhere) in given.items():
            if pname not in names:
                hint = did_you_mean(pname, tuple(sorted(names)))
                self.checks.error(
                    pwhere, f"{self.scope.path} declares no parameter {pname!r}{hint}"
                )
        environment = self.sources.environment
        values: dict[str, tuple[Any, Where]] = {}
        for name in sorted(names):
            if name in given:
                values[name] = given[name]
            elif name in environment.values:
                environment.used.add(name)
                values[name] = environment.values[name]
            elif name in self.nesting.defaults:
                values[name] = self.nesting.defaults.value(self.checks, name, types[name])
        return values

    def resolve_types(self) -> None:
        """Types the registry maps, templates named, and resource groups' members."""
        for res in list(self.scope.resources.values()):
            res.type, res.template = self.nested.resolve_type(
                res.type, res.where.at(res.body, "type"), res.name
            )
            if res.type == RESOURCE_GROUP:
                for member in self.nested.expand_group(res) or ():
                    self.scope.resources[member.name] = member

    def open_nested(self, path: str, nesting: Nesting) -> HeatTemplate | None:
        """The template at ``path``, read as nested as ``nesting`` says."""
        doc = self.sources.document(path)
        if not isinstance(doc, YMap) or HEAT_MARK not in doc:
            self.checks.error(
                Where(path, 1, ""),
                f"{path} is used as a nested template but is not a Heat template",
            )
            return None
        child = HeatTemplate(self.sources, path, self.scope.stem, nesting)
        return child if child.load() is not None else None

    def all_deployments(self) -> set[str]:
        """Every deployment of this template and of the templates it nests (qualified)."""
        return {f"{self.scope.stem}/{name}" for name in self.found}

    def deployments_of(self, res: Resource) -> set[str]:
        """The deployments (qualified) resource ``res`` stands for when ordering."""
        if res.type in SINGLE_TYPES + GROUP_TYPES:
            return {self.scope.qualified(res.name)}
        if res.template is not None:
            nested = self.nested.template_of(res)
            return nested.all_deployments() if nested is not None else set()
        found: set[str] = set()
        for member in self.nested.members.get(res.name, ()):
            found |= self.deployments_of(member)
        return found

    def output_names(self) -> tuple[str, ...]:
        return tuple(self.outputs)

    def output(self, name: str, c: Where) -> Any:
        """The value of output ``name`` (for ``get_attr`` of a template resource);
        one made from a hidden parameter stays secret in the parent too."""
        output = self.outputs.get(name)
        if output is None:
            known = ", ".join(self.outputs) or "none"
            self.checks.error(
                c, f"get_attr: {self.scope.path} has no output {name!r} (outputs: {known})"
            )
            return INVALID
        if output.not_computed:
            self.checks.error(
                c,
                f"get_attr: output {name!r} of {self.scope.path} is not computed by "
                f"setpoint: {output.not_computed}",
            )
            return INVALID
        return mark_secret(output.value) if output.secret else output.value

    def check_template(self, m: YMap, where: Where) -> None:
        """The template's top-level keys, version and name."""
        checks = self.checks
        checks.check_keys(m, where, TEMPLATE_KEYS, ("resources",))
        written = m.get(HEAT_MARK)
        version = template_version(written)
        if version is None:
            checks.error(
                where.at(m, HEAT_MARK),
                f"unknown heat_template_version {written!r} (Heat knows {known_versions()})",
            )
        else:
            self.scope.version = version
        stem = self.scope.stem
        if not NAME_RE.match(stem):
            checks.error(where, f"invalid stack name {stem!r} (letters, digits, '_', '.', '-')")

    def conditions_section(self, m: YMap, where: Where) -> tuple[YMap, Where]:
        """The ``conditions:`` section (from 2016-10-14 on), empty when absent."""
        cwhere = where.at(m, "conditions")
        raw = m.get("conditions")
        if raw is None:
            return YMap(), cwhere
        if not self.scope.version.conditions:
            self.checks.error(
                cwhere,
                "conditions need heat_template_version 2016-10-14 or later "
                f"(this template: {self.scope.version.date})",
            )
            return YMap(), cwhere
        return (self.checks.mapping(raw, cwhere, "conditions") or YMap()), cwhere

    def leave_out_disabled(self, evaluator: Evaluator) -> None:
        """Resources whose ``condition:`` is false are not in the stack, as in
        Heat: no deployment, no warning, and a reference to one is an error."""
        scope = self.scope
        for res in list(scope.resources.values()):
            if "condition" not in res.body:
                continue
            c = res.where.at(res.body, "condition")
            if not scope.version.conditions:
                self.checks.error(c, "condition: needs heat_template_version 2016-10-14 or later")
                continue
            written = res.body["condition"]
            if evaluator.conditions.truth(written, c) is False:
                scope.disabled[res.name] = repr(written) if isinstance(written, str) else "(false)"
                del scope.resources[res.name]
        for res in scope.resources.values():
            res.refs -= set(scope.disabled)  # depends_on one is dropped, as Heat does

    def deployments(self, reader: HeatDeploymentReader) -> dict[str, Deployment]:
        """Every deployment resource read, and those of the templates nested here,
        with the configs they run (through MultipartMime parts too). A config no
        deployment runs (a server's ``user_data``, say) is Heat's to evaluate,
        not setpoint's: it is warned about like any resource setpoint does not
        manage, and parameters only it uses need no value."""
        deployments: dict[str, Deployment] = {}
        unmanaged: list[Resource] = []
        for res in self.scope.resources.values():
            if res.type in SERVER_TYPES or res.type in CONFIG_TYPES:
                continue  # bound when a deployment targets it; configs: below
            if res.template is not None:
                nested = self.nested.template_of(res)
                deployments.update(nested.found if nested is not None else {})
            elif res.type in SINGLE_TYPES or res.type in GROUP_TYPES:
                member = res.name in self.nested.member_names
                if not member and not NAME_RE.match(res.name):
                    self.checks.error(res.where, f"invalid deployment name {res.name!r}")
                    continue
                made = reader.deployment(res)
                if made is not None:
                    deployments[made.name] = made
            elif res.name not in self.nested.members and res.type not in (RANDOM_STRING, NONE_TYPE):
                unmanaged.append(res)
        for res in self.scope.resources.values():
            if res.type in CONFIG_TYPES and not self.configs.was_read(res.name):
                unmanaged.append(res)
        for res in sorted(unmanaged, key=lambda r: r.where.line):
            self.checks.warn(
                res.where.at(res.body, "type"), f"{res.type} is not managed by setpoint"
            )
        return deployments

    def by_config_name(self, deployments: dict[str, Deployment]) -> dict[str, Deployment]:
        """Heat's order where nothing else orders deployments: by the name of the
        derived config (the deployment's ``name``, else ``<stack>-<config>``);
        file order among equal names. Data flow and ``depends_on`` still come
        first (``ordering``)."""
        components = self.sources.components

        def config_name(item: tuple[int, Deployment]) -> tuple[str, int]:
            index, dep = item
            return components[dep.component].name, index

        ranked = sorted(enumerate(deployments.values()), key=config_name)
        return {dep.name: dep for _index, dep in ranked}

    def config_outputs(self, res: Resource) -> tuple[OutputDef, ...] | None:
        """The outputs the config of deployment ``res`` declares."""
        config = self.configs.of_deployment(res)
        return None if config is None else config.outputs
