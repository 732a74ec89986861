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

The parts: ``resources``, ``environment_file``, ``parameters``, ``intrinsics``
(with ``servers``), ``configs`` and ``deployments``.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from setpoint.controller.definitions.checks import NAME_RE, Where
from setpoint.controller.definitions.environments import EnvironmentValues
from setpoint.controller.definitions.files import CommitFiles
from setpoint.controller.definitions.heat.configs import ConfigReader
from setpoint.controller.definitions.heat.deployments import HeatDeploymentReader
from setpoint.controller.definitions.heat.environment_file import read_environment_file
from setpoint.controller.definitions.heat.intrinsics import Evaluator
from setpoint.controller.definitions.heat.parameters import read_parameters
from setpoint.controller.definitions.heat.resources import (
    CONFIG_TYPES,
    GROUP_TYPES,
    SERVER_TYPES,
    SINGLE_TYPES,
    Resource,
    TemplateScope,
    read_resources,
    walk_refs,
)
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
        scope.resources = read_resources(checks, raw, rwhere)
        evaluator = Evaluator(scope, env_file.server_map, self.config_outputs)
        self.configs = ConfigReader(scope, evaluator)
        reader = HeatDeploymentReader(
            scope, evaluator, self.configs, self.sources.components, env_file.state
        )
        deployments = self.by_config_name(self.deployments(reader))
        self.check_outputs(m, where)
        for name, (_server, swhere) in env_file.server_map.items():
            if name not in scope.resources or scope.resources[name].type not in SERVER_TYPES:
                checks.error(swhere, f"setpoint.servers: no server resource {name!r}")
        description = m.get("description")
        return Stack(
            name=scope.stem,
            file=scope.path,
            description=description if isinstance(description, str) else "",
            parameters=scope.params,
            deployments=deployments,
        )

    def check_template(self, m: YMap, where: Where) -> None:
        """The template's top-level keys, version and name."""
        checks = self.checks
        checks.check_keys(m, where, TEMPLATE_KEYS, ("resources",))
        version = m.get(HEAT_MARK)
        if not isinstance(version, str | datetime.date):
            checks.error(where.at(m, HEAT_MARK), "expected a template version (a date or a name)")
        if m.get("conditions"):
            checks.error(where.at(m, "conditions"), "conditions are not supported by setpoint")
        stem = self.scope.stem
        if not NAME_RE.match(stem):
            checks.error(where, f"invalid stack name {stem!r} (letters, digits, '_', '.', '-')")

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

    def check_outputs(self, m: YMap, where: Where) -> None:
        """Stack outputs are checked for references; their values are Heat's, not setpoint's."""
        raw = m.get("outputs")
        if raw is None:
            return
        ow = where.at(m, "outputs")
        if self.checks.mapping(raw, ow, "outputs") is None:
            return
        for oname, body in raw.items():
            c = ow.at(raw, oname)
            for ref in sorted(walk_refs(body)):
                if ref not in self.scope.resources:
                    self.checks.error(c, f"output {oname!r} refers to unknown resource {ref!r}")
