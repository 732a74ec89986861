"""Heat's ``resource_registry``: resource types mapped to other types or to
template files, and template resources (a ``type:`` that is a template file).

Mappings come from the template's environment file (``stacks/<stem>.env.yaml``)
and from the selected setpoint environment (``environments/<name>.yaml``),
which wins. A file a mapping names is relative to the file the mapping is
written in, as in Heat; a file a ``type:`` names is relative to its template.
The mappings apply to the nested templates too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from setpoint.controller.definitions.checks import Checks, Where
from setpoint.controller.definitions.files import CommitFiles
from setpoint.controller.definitions.heat.resources import Resource
from setpoint.controller.definitions.yamlsource import YMap

TEMPLATE_SUFFIXES = (".yaml", ".yml", ".template")
# What a registry maps a type to in order to turn its resources off.
NONE_TYPE = "OS::Heat::None"
# A chain of type aliases longer than this is a loop.
MAX_ALIASES = 16


def is_template_type(rtype: str) -> bool:
    """Heat's rule: a type that names a template file ends like one."""
    return rtype.endswith(TEMPLATE_SUFFIXES)


@dataclass(frozen=True)
class Mapping:
    """One registry entry: ``target`` is a type, or a commit path when ``template``."""

    target: str
    template: bool
    where: Where


@dataclass
class ResourceRegistry:
    mappings: dict[str, Mapping] = field(default_factory=dict)

    def read(self, files: CommitFiles, raw: Any, where: Where) -> None:
        """Add the mappings of a ``resource_registry`` section written at ``where``."""
        checks = files.checks
        if checks.mapping(raw, where, "resource_registry") is None:
            return
        for key, value in raw.items():
            c = where.at(raw, key)
            if key == "resources" or "*" in str(key):
                checks.warn(c, f"resource_registry: {key!r} is not used by setpoint")
                continue
            if not isinstance(value, str) or not value:
                checks.error(c, "expected a resource type or a template file")
                continue
            if not is_template_type(value):
                self.mappings[str(key)] = Mapping(value, False, c)
                continue
            path = template_path(files, where.file, value, c)
            if path is not None:
                self.mappings[str(key)] = Mapping(path, True, c)

    def resolve(self, checks: Checks, rtype: str, where: Where) -> tuple[str, Mapping | None]:
        """The type ``rtype`` stands for once mapped, and the mapping to a
        template that ends the chain (``None`` when it ends at a type)."""
        seen = [rtype]
        while rtype in self.mappings:
            mapping = self.mappings[rtype]
            if mapping.template:
                return rtype, mapping
            rtype = mapping.target
            seen.append(rtype)
            if len(seen) > MAX_ALIASES or rtype in seen[:-1]:
                checks.error(
                    where, f"resource_registry: the types map in a loop: {' -> '.join(seen)}"
                )
                return rtype, None
        return rtype, None


def template_path(files: CommitFiles, base_file: str, name: str, where: Where) -> str | None:
    """The commit path of template ``name`` written in ``base_file``; ``None``
    (reported) when it is a URL, leaves the repository or is not a file."""
    if "://" in name:
        files.checks.error(
            where, f"template {name!r}: setpoint reads templates from the commit only"
        )
        return None
    path = files.resolve_path(base_file, name, where, "template")
    if path is None:
        return None
    if files.kind(path) != "file":
        files.checks.error(where, f"template {name!r}: no file {path!r} in the commit")
        return None
    return path


class NoneResources:
    """``OS::Heat::None`` resources (usually a type the registry turned off):
    nothing to run, and every attribute is null, as in Heat."""

    def handles(self, res: Resource) -> bool:
        return res.type == NONE_TYPE

    def attr(self, res: Resource, attribute: str, path: list[Any], c: Where) -> Any:
        return None

    def attribute_names(self, res: Resource, c: Where) -> tuple[str, ...]:
        return ()


def registry_of(files: CommitFiles, sections: list[tuple[Any, Where]]) -> ResourceRegistry:
    """The registry of the ``resource_registry`` sections given, later ones winning."""
    registry = ResourceRegistry()
    for raw, where in sections:
        if raw is not None:
            registry.read(files, raw, where)
    return registry


def registry_section(m: YMap, where: Where) -> tuple[Any, Where]:
    return m.get("resource_registry"), where.at(m, "resource_registry")
