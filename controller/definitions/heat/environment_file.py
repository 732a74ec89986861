"""A Heat template's environment file, ``stacks/<stem>.env.yaml``: parameter
values (``parameter_defaults``, then ``parameters``, which win), a
``resource_registry``, and setpoint's own settings (``setpoint: {servers:
{Resource: inventory server}, state, environment_files}``).

``environment_files`` lists further Heat environment files, as operators pass
them with ``openstack stack create -e a.yaml -e b.yaml -e <stem>.env.yaml``:
the listed files in order, then the stack's own file, last and winning. They
merge as Heat's ``merge_environments`` merges ``-e`` files: each section key
by key, a later file's value replacing an earlier one's, or joined to it
where ``parameter_merge_strategies`` says ``merge`` or ``deep_merge``
(``parameter_merge``); a parameter's value is its merged ``parameters``
entry, else its merged ``parameter_defaults`` entry, whichever file gave them.

A parameter's strategy is Heat's: the one named for it in the first file
that gives it a value, else that file's ``default``, else ``overwrite``; a
later file that names another for it is Heat's error ("Conflicting merge
strategy")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from setpoint.controller.definitions.checks import Checks, Where
from setpoint.controller.definitions.files import CommitFiles
from setpoint.controller.definitions.heat.parameter_merge import (
    OVERWRITE,
    STRATEGIES,
    MergedSection,
)
from setpoint.controller.definitions.model import STATES
from setpoint.controller.definitions.yamlsource import YList, YMap, load_yaml

ENV_KEYS = (
    "parameters", "parameter_defaults", "resource_registry", "event_sinks",
    "encrypted_param_names", "parameter_merge_strategies", "setpoint",
)  # fmt: skip
SETTINGS_KEYS = ("servers", "state", "environment_files")


def is_environment_file(name: str) -> bool:
    """``<stem>.env.yaml``: a Heat environment file, read with its template."""
    return name.endswith((".env.yaml", ".env.yml"))


@dataclass
class HeatEnvironment:
    """What a template's environment files say (empty when it has none)."""

    parameters: MergedSection = field(default_factory=MergedSection)
    # ``parameter_defaults``: they apply to nested templates too, as in Heat.
    defaults: MergedSection = field(default_factory=MergedSection)
    server_map: dict[str, tuple[str, Where]] = field(default_factory=dict)
    state: str = "active"
    # Each file's ``resource_registry`` section and where it is written, in
    # merge order (``registry``).
    registries: list[tuple[Any, Where]] = field(default_factory=list)
    # The file itself, and the files its ``environment_files`` lists, as
    # commit paths, in order.
    path: str = ""
    listed: list[str] = field(default_factory=list)
    # Each parameter's merge strategy, and where the value that fixed it is.
    strategies: dict[str, tuple[str, Where]] = field(default_factory=dict)

    def values_for(self, checks: Checks, types: dict[str, str]) -> dict[str, tuple[Any, Where]]:
        """The values of the parameters ``types`` declares (name -> Heat
        type), each merged as its type merges: its ``parameters`` value, else
        its ``parameter_defaults`` one."""
        found: dict[str, tuple[Any, Where]] = {}
        for name, heat_type in types.items():
            section = self.parameters if name in self.parameters else self.defaults
            if name in section:
                found[name] = section.value(checks, name, heat_type)
        return found

    def given(self) -> dict[str, Where]:
        """Every parameter the files give a value, and where its latest is written."""
        return {**self.defaults.wheres(), **self.parameters.wheres()}


def environment_file_path(files: CommitFiles, template_path: str) -> str | None:
    """The path of the environment file beside ``template_path``, if there is one."""
    base = template_path.rsplit(".", 1)[0]
    return next(
        (p for p in (base + ".env.yaml", base + ".env.yml") if files.kind(p) == "file"),
        None,
    )


def read_environment_file(files: CommitFiles, template_path: str) -> HeatEnvironment:
    """The environment file beside ``template_path`` and the files it lists."""
    found = HeatEnvironment()
    checks = files.checks
    path = environment_file_path(files, template_path)
    if path is None:
        return found
    found.path = path
    where = Where(path, 1, "")
    doc = load_yaml(files.tree.read(path), path, checks.problems)
    m = checks.mapping(doc, where, "a Heat environment") if doc is not None else YMap()
    if m is None:
        return found
    checks.check_keys(m, where, ENV_KEYS)
    if m.get("setpoint") is not None:
        _read_settings(files, m, where, found)
    for listed in found.listed:
        lwhere = Where(listed, 1, "")
        doc = files.parse(listed)
        lm = checks.mapping(doc, lwhere, "a Heat environment") if doc is not None else YMap()
        if lm is None:
            continue
        if "setpoint" in lm:
            checks.error(
                lwhere.at(lm, "setpoint"),
                f"setpoint's settings belong in {path}, not in an environment file it lists",
            )
        heat_only = YMap({k: v for k, v in lm.items() if k != "setpoint"}, key_lines=lm.key_lines)
        checks.check_keys(heat_only, lwhere, ENV_KEYS[:-1])
        _read_sections(files, lm, lwhere, found)
    _read_sections(files, m, where, found)
    return found


def _read_sections(files: CommitFiles, m: YMap, where: Where, found: HeatEnvironment) -> None:
    """One environment file's sections, merged over the files before it."""
    checks = files.checks
    named, default = _strategies(files, m, where)
    for key in ("parameter_defaults", "parameters"):
        section = found.defaults if key == "parameter_defaults" else found.parameters
        raw = m.get(key)
        kwhere = where.at(m, key)
        if raw is None or checks.mapping(raw, kwhere, key) is None:
            continue
        for pname, value in raw.items():
            name, vwhere = str(pname), kwhere.at(raw, pname)
            # Heat's get_param_merge_strategy: this file's strategy for the
            # name, else the one its first value fixed, else this file's default.
            fixed = found.strategies.get(name)
            strategy, swhere = named.get(name, fixed or (default, vwhere))
            if fixed is None:
                found.strategies[name] = (strategy, vwhere)
            elif strategy != fixed[0]:
                checks.error(
                    swhere,
                    f"parameter {name!r} merges by {fixed[0]}, fixed by its first value at "
                    f"{fixed[1].file}:{fixed[1].line}; Heat refuses {strategy} for it in a "
                    f"later file (Conflicting merge strategy '{strategy}' for parameter "
                    f"'{name}'): name the strategy in {fixed[1].file}",
                )
                strategy = fixed[0]
            section.add(name, value, vwhere, strategy)
    found.registries.append((m.get("resource_registry"), where.at(m, "resource_registry")))
    if m.get("event_sinks"):
        checks.warn(where.at(m, "event_sinks"), "event_sinks is not used by setpoint")


def _strategies(
    files: CommitFiles, m: YMap, where: Where
) -> tuple[dict[str, tuple[str, Where]], str]:
    """A file's ``parameter_merge_strategies``: each parameter's strategy and
    where it is named, and the file's ``default``. A strategy Heat does not
    know is warned about and, as in Heat, the file's default is used (for
    ``default`` itself, ``overwrite``)."""
    raw = m.get("parameter_merge_strategies")
    swhere = where.at(m, "parameter_merge_strategies")
    if raw is None or files.checks.mapping(raw, swhere, "parameter_merge_strategies") is None:
        return {}, OVERWRITE
    known = " or ".join(STRATEGIES)

    def strategy(key: Any, fallback: str) -> str:
        value = raw[key]
        if value in STRATEGIES:
            return str(value)
        files.checks.warn(
            swhere.at(raw, key),
            f"unknown merge strategy {value!r} ({known}): Heat uses {fallback}",
        )
        return fallback

    default = strategy("default", OVERWRITE) if "default" in raw else OVERWRITE
    named = {str(k): (strategy(k, default), swhere.at(raw, k)) for k in raw if str(k) != "default"}
    return named, default


def _read_settings(files: CommitFiles, m: YMap, where: Where, found: HeatEnvironment) -> None:
    checks = files.checks
    swhere = where.at(m, "setpoint")
    sm = checks.mapping(m["setpoint"], swhere, "setpoint's settings")
    if sm is None:
        return
    checks.check_keys(sm, swhere, SETTINGS_KEYS)
    found.state = checks.choice(sm, "state", swhere, STATES, "active")
    servers = sm.get("servers")
    mwhere = swhere.at(sm, "servers")
    if servers is not None and checks.mapping(servers, mwhere, "servers") is not None:
        for rname, server in servers.items():
            c = mwhere.at(servers, rname)
            if not isinstance(server, str):
                checks.error(c, "expected an inventory server name")
                continue
            found.server_map[str(rname)] = (server, c)
    _read_listing(files, sm, swhere, found)


def _read_listing(files: CommitFiles, sm: YMap, swhere: Where, found: HeatEnvironment) -> None:
    """``environment_files``: paths relative to the stack's folder, as
    ``get_file`` paths are; one that names no file is reported on its line."""
    checks = files.checks
    raw = sm.get("environment_files")
    if raw is None:
        return
    lwhere = swhere.at(sm, "environment_files")
    if not isinstance(raw, YList):
        checks.error(lwhere, "expected a list of environment files")
        return
    for i, name in enumerate(raw):
        c = lwhere.at(raw, i)
        path = files.resolve_path(swhere.file, name, c, "environment file")
        if path is None:
            continue
        if files.kind(path) != "file":
            checks.error(c, f"environment file {name!r}: no file {path!r} in the commit")
            continue
        found.listed.append(path)
