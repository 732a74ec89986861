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

The parts: ``versions``, ``resources``, ``environment_file``, ``parameters``,
``intrinsics`` (with ``servers``, ``conditions`` and ``builtins``), ``configs``,
``deployments`` and ``outputs``.
"""

from __future__ import annotations

from dataclasses import dataclass

from setpoint.controller.definitions.checks import NAME_RE, Where
from setpoint.controller.definitions.environments import EnvironmentValues
from setpoint.controller.definitions.files import CommitFiles
from setpoint.controller.definitions.heat.configs import ConfigReader
from setpoint.controller.definitions.heat.deployments import HeatDeploymentReader
from setpoint.controller.definitions.heat.environment_file import read_environment_file
from setpoint.controller.definitions.heat.intrinsics import Evaluator
from setpoint.controller.definitions.heat.outputs import read_outputs
from setpoint.controller.definitions.heat.parameters import read_parameters
from setpoint.controller.definitions.heat.resources import (
    CONFIG_TYPES,
    GROUP_TYPES,
    SERVER_TYPES,
    SINGLE_TYPES,
    Resource,
    TemplateScope,
    read_resources,
)
from setpoint.controller.definitions.heat.versions import known_versions, template_version
from setpoint.controller.definitions.model import (
    Component,
    Deployment,
    Inventory,
    OutputDef,
    Stack,
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


def load_template(sources: HeatSources, path: str, stem: str) -> Stack | None:
    """Read the Heat template at ``path`` as stack ``stem``; its components go into
    ``sources.components`` under ``<stem>/<deployment>``."""
    return HeatTemplate(sources, path, stem).load()


class HeatTemplate:
    """One Heat template read into a ``Stack`` (and components)."""

    def __init__(self, sources: HeatSources, path: str, stem: str) -> None:
        self.sources = sources
        self.scope = TemplateScope(sources.files, path, stem, sources.inventory)
        self.checks = sources.files.checks

    def load(self) -> Stack | None:
        scope, checks = self.scope, self.checks
        where = Where(scope.path, 1, "")
        doc = load_yaml(scope.files.tree.read(scope.path), scope.path, checks.problems)
        m = checks.mapping(doc, where, "a Heat template")
        if m is None:
            return None
        self.check_template(m, where)
        env_file = read_environment_file(scope.files, scope.path)
        scope.params, scope.hidden = read_parameters(
            checks, m, where, env_file.values, self.sources.environment
        )
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
        self.configs = ConfigReader(scope, evaluator)
        reader = HeatDeploymentReader(
            scope, evaluator, self.configs, self.sources.components, env_file.state
        )
        deployments = self.by_config_name(self.deployments(reader))
        outputs = read_outputs(scope, evaluator, m, where)
        for name, (_server, swhere) in env_file.server_map.items():
            is_server = name in scope.resources and scope.resources[name].type in SERVER_TYPES
            if not is_server and name not in scope.disabled:
                checks.error(swhere, f"setpoint.servers: no server resource {name!r}")
        description = m.get("description")
        return Stack(
            name=scope.stem,
            file=scope.path,
            description=description if isinstance(description, str) else "",
            parameters=scope.params,
            deployments=deployments,
            outputs=outputs,
        )

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
        """Every deployment resource read, with the configs they run (through
        MultipartMime parts too). A config no deployment runs (a server's
        ``user_data``, say) is Heat's to evaluate, not setpoint's: it is warned
        about like any resource setpoint does not manage, and parameters only it
        uses need no value."""
        deployments: dict[str, Deployment] = {}
        unmanaged: list[Resource] = []
        for res in self.scope.resources.values():
            if res.type in SERVER_TYPES or res.type in CONFIG_TYPES:
                continue  # bound when a deployment targets it; configs: below
            if res.type in SINGLE_TYPES or res.type in GROUP_TYPES:
                if not NAME_RE.match(res.name):
                    self.checks.error(res.where, f"invalid deployment name {res.name!r}")
                    continue
                made = reader.deployment(res)
                if made is not None:
                    deployments[res.name] = made
            else:
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
