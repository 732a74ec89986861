"""Heat's ``resource_registry``: resource types mapped to other types or to
template files, and template resources (a ``type:`` that is a template file).

Mappings come from the files ``setpoint.environment_files`` lists, the
template's environment file (``stacks/<stem>.env.yaml``) and the selected
setpoint environment (``environments/<name>.yaml``), merged in that order key
by key, later winning and ``null`` removing, as Heat loads several ``-e``
files. A file a mapping names is relative to the file the mapping is written
in, as in Heat; a file a ``type:`` names is relative to its template. The
mappings apply to the nested templates too.

Which mapping a type takes is Heat's rule (``heat.engine.environment``): a
per-resource entry (``resources: {name: {Type: target}}``) first, then the
top-level keys that match, sorted as strings: a key ending in ``*`` matches
every type with that prefix and, since ``*`` sorts before letters, is tried
before an exact mapping it covers and before a longer wildcard. A wildcard
target ending in ``*`` keeps the rest of the type (``"OS::Net::*": "OS::Neutron::*"``).
"""

from __future__ import annotations

import fnmatch
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
# Keys of a per-resource entry that are Heat's own and not a mapping.
NOT_USED = {
    "hooks": "hooks are not used by setpoint (it never pauses on a resource)",
    "restricted_actions": "restricted_actions are not used by setpoint (it updates and "
    "replaces as the commit says)",
}


def is_template_type(rtype: str) -> bool:
    """Heat's rule: a type that names a template file ends like one."""
    return rtype.endswith(TEMPLATE_SUFFIXES)


@dataclass(frozen=True)
class Mapping:
    """One registry entry: ``key`` as written (a type, or a prefix ending in
    ``*``); ``target`` a type, or a commit path when ``template``."""

    key: str
    target: str
    template: bool
    where: Where

    @property
    def wildcard(self) -> bool:
        return self.key.endswith("*")

    def matches(self, rtype: str) -> bool:
        if not self.wildcard:
            return rtype == self.key
        # Heat's: a many-to-one wildcard does not map its own target again.
        return rtype != self.target and rtype.startswith(self.key[:-1])

    def mapped(self, rtype: str) -> str:
        """The type ``rtype`` becomes through this mapping (not a template)."""
        if self.wildcard and self.target.endswith("*"):
            return self.target[:-1] + rtype[len(self.key) - 1 :]
        return self.target


@dataclass
class ResourceEntries:
    """A per-resource entry: the mappings for resource ``name`` and the entries
    of the resources of its nested stack (by name, or a pattern with ``*``)."""

    mappings: dict[str, Mapping] = field(default_factory=dict)
    children: dict[str, ResourceEntries] = field(default_factory=dict)


@dataclass
class ResourceRegistry:
    mappings: dict[str, Mapping] = field(default_factory=dict)
    resources: dict[str, ResourceEntries] = field(default_factory=dict)

    def read(self, files: CommitFiles, raw: Any, where: Where) -> None:
        """Add the mappings of a ``resource_registry`` section written at ``where``."""
        checks = files.checks
        if checks.mapping(raw, where, "resource_registry") is None:
            return
        for written, value in raw.items():
            c = where.at(raw, written)
            key = str(written)
            if key == "resources":
                if checks.mapping(value, c, "resources") is not None:
                    _read_entries(files, value, c, self.resources)
                continue
            if value is None:
                remove(self.mappings, key)
                continue
            mapping = read_mapping(files, key, value, c)
            if mapping is None:
                continue
            if mapping.wildcard and mapping.template:
                checks.warn(
                    c,
                    "a wildcard mapped to a template file matches no type in Heat (map it "
                    "to a type, and that type to the file)",
                )
                continue
            if "*" in key[:-1]:
                checks.warn(c, f"{key!r} matches no type: only a final '*' is a wildcard")
            self.mappings[key] = mapping

    def warn_unused(self, checks: Checks) -> None:
        """An exact mapping that a wildcard is always tried before is never
        used, which is rarely what its author meant."""
        for key, mapping in self.mappings.items():
            if mapping.wildcard:
                continue
            first = self.first_match(key)
            if first is not None and first is not mapping:
                checks.warn(
                    mapping.where,
                    f"never used: Heat tries the wildcard {first.key!r} (line "
                    f"{first.where.line}) first for {key}, as it sorts the matching keys "
                    "as strings",
                )

    def first_match(self, rtype: str, name: str | None = None) -> Mapping | None:
        """The entry Heat takes for type ``rtype`` of resource ``name``."""
        entries = self.resources.get(name) if name is not None else None
        if entries is not None and rtype in entries.mappings:
            return entries.mappings[rtype]
        matching = sorted((m for m in self.mappings.values() if m.matches(rtype)), key=_key)
        return matching[0] if matching else None

    def resolve(
        self, checks: Checks, rtype: str, where: Where, name: str | None = None
    ) -> tuple[str, Mapping | None]:
        """The type ``rtype`` (of resource ``name``) stands for once mapped, and
        the mapping to a template that ends the chain (``None`` when it ends at
        a type)."""
        seen = [rtype]
        while (mapping := self.first_match(rtype, name)) is not None:
            if mapping.template:
                return rtype, mapping
            rtype = mapping.mapped(rtype)
            seen.append(rtype)
            if len(seen) > MAX_ALIASES or rtype in seen[:-1]:
                checks.error(
                    where, f"resource_registry: the types map in a loop: {' -> '.join(seen)}"
                )
                return rtype, None
        return rtype, None

    def child(self, name: str) -> ResourceRegistry:
        """The registry of the nested stack of resource ``name``, as Heat builds
        it: the same mappings, and as per-resource entries those written under
        every pattern that matches ``name``, then under ``name`` itself."""
        merged: dict[str, ResourceEntries] = {}
        for pattern, entries in self.resources.items():
            if fnmatch.fnmatchcase(name, pattern):
                merged.update(entries.children)
        if name in self.resources:
            merged.update(self.resources[name].children)
        return ResourceRegistry(self.mappings, merged)


def _key(mapping: Mapping) -> str:
    return mapping.key


def remove(mappings: dict[str, Mapping], key: str) -> None:
    """``key: null``: the mapping is removed; a wildcard removes every one it covers."""
    for written in list(mappings):
        if written == key or (key.endswith("*") and written.startswith(key[:-1])):
            del mappings[written]


def read_mapping(files: CommitFiles, key: str, value: Any, c: Where) -> Mapping | None:
    if not isinstance(value, str) or not value:
        files.checks.error(c, "expected a resource type or a template file")
        return None
    if not is_template_type(value):
        return Mapping(key, value, False, c)
    path = template_path(files, c.file, value, c)
    return None if path is None else Mapping(key, path, True, c)


def _read_entries(
    files: CommitFiles, raw: YMap, where: Where, into: dict[str, ResourceEntries]
) -> None:
    """A ``resources:`` section: per resource name, its mappings, Heat's own
    keys (warned about) and the entries of its nested stack's resources."""
    checks = files.checks
    for name, body in raw.items():
        c = where.at(raw, name)
        if checks.mapping(body, c, f"the entries of resource {name!r}") is None:
            continue
        entries = into.setdefault(str(name), ResourceEntries())
        for key, value in body.items():
            kc = c.at(body, key)
            if key in NOT_USED:
                checks.warn(kc, NOT_USED[str(key)])
            elif isinstance(value, YMap):
                _read_entries(
                    files, YMap({key: value}, key_lines=body.key_lines), c, entries.children
                )
            elif value is None:
                remove(entries.mappings, str(key))
            elif (mapping := read_mapping(files, str(key), value, kc)) is not None:
                entries.mappings[str(key)] = mapping


def template_targets(raw: Any) -> list[str]:
    """Every template file a ``resource_registry`` section names, as written
    (per-resource entries too), for a first look that reports nothing."""
    if not isinstance(raw, dict):
        return []
    found: list[str] = []
    for value in raw.values():
        if isinstance(value, str) and is_template_type(value):
            found.append(value)
        found += template_targets(value)
    return found


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
    registry.warn_unused(files.checks)
    return registry
