"""A Heat template's environment file, ``stacks/<stem>.env.yaml``: parameter
values (``parameter_defaults``, then ``parameters``, which win), a
``resource_registry``, and setpoint's own settings (``setpoint: {servers:
{Resource: inventory server}, state, environment_files}``).

``environment_files`` lists further Heat environment files, as operators pass
them with ``openstack stack create -e a.yaml -e b.yaml -e <stem>.env.yaml``:
the listed files in order, then the stack's own file, last and winning. They
merge as Heat's ``merge_environments`` merges ``-e`` files: each section key
by key, a later file's value replacing an earlier one's; a parameter's value
is its merged ``parameters`` entry, else its merged ``parameter_defaults``
entry, whichever file gave them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from setpoint.controller.definitions.checks import Where
from setpoint.controller.definitions.files import CommitFiles
from setpoint.controller.definitions.model import STATES
from setpoint.controller.definitions.yamlsource import YList, YMap, load_yaml

ENV_KEYS = (
    "parameters", "parameter_defaults", "resource_registry", "event_sinks",
    "encrypted_param_names", "parameter_merge_strategies", "setpoint",
)  # fmt: skip
SETTINGS_KEYS = ("servers", "state", "environment_files")
# Heat's default strategy: a later file's value replaces an earlier one's.
OVERWRITE = "overwrite"


def is_environment_file(name: str) -> bool:
    """``<stem>.env.yaml``: a Heat environment file, read with its template."""
    return name.endswith((".env.yaml", ".env.yml"))


@dataclass
class HeatEnvironment:
    """What a template's environment files say (empty when it has none)."""

    values: dict[str, tuple[Any, Where]] = field(default_factory=dict)
    # ``parameter_defaults`` alone: they apply to nested templates too, as in Heat.
    defaults: dict[str, tuple[Any, Where]] = field(default_factory=dict)
    server_map: dict[str, tuple[str, Where]] = field(default_factory=dict)
    state: str = "active"
    # Each file's ``resource_registry`` section and where it is written, in
    # merge order (``registry``).
    registries: list[tuple[Any, Where]] = field(default_factory=list)
    # The file itself, and the files its ``environment_files`` lists, as
    # commit paths, in order.
    path: str = ""
    listed: list[str] = field(default_factory=list)


@dataclass
class _Merged:
    """The ``parameters`` and ``parameter_defaults`` sections merged so far,
    and the merge strategies earlier files named (Heat keeps them)."""

    sections: dict[str, dict[str, tuple[Any, Where]]] = field(
        default_factory=lambda: {"parameter_defaults": {}, "parameters": {}}
    )
    strategies: dict[str, str] = field(default_factory=dict)


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
    merged = _Merged()
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
        _read_sections(files, lm, lwhere, found, merged)
    _read_sections(files, m, where, found, merged)
    found.defaults = merged.sections["parameter_defaults"]
    found.values = {**found.defaults, **merged.sections["parameters"]}  # parameters win
    return found


def _read_sections(
    files: CommitFiles, m: YMap, where: Where, found: HeatEnvironment, merged: _Merged
) -> None:
    """One environment file's sections, merged over the files before it."""
    checks = files.checks
    strategies = _strategies(files, m, where)
    for key, section in merged.sections.items():
        raw = m.get(key)
        kwhere = where.at(m, key)
        if raw is None or checks.mapping(raw, kwhere, key) is None:
            continue
        for pname, value in raw.items():
            name, vwhere = str(pname), kwhere.at(raw, pname)
            # Heat's: this file's strategy for the name, else an earlier file's,
            # else this file's default.
            strategy = strategies.get(
                name, merged.strategies.get(name, strategies.get("default", OVERWRITE))
            )
            if strategy != OVERWRITE and name in section:
                before = section[name][1]
                checks.error(
                    vwhere,
                    f"Heat would merge this value into the one of {before.file}:{before.line} "
                    f"(parameter_merge_strategies: {strategy}); setpoint only overwrites: "
                    "give the whole value in the later file",
                )
            section[name] = (value, vwhere)
            if name in strategies:
                merged.strategies[name] = strategies[name]
    found.registries.append((m.get("resource_registry"), where.at(m, "resource_registry")))
    if m.get("event_sinks"):
        checks.warn(where.at(m, "event_sinks"), "event_sinks is not used by setpoint")


def _strategies(files: CommitFiles, m: YMap, where: Where) -> dict[str, str]:
    """A file's ``parameter_merge_strategies``: parameter (or ``default``) -> strategy."""
    raw = m.get("parameter_merge_strategies")
    swhere = where.at(m, "parameter_merge_strategies")
    if raw is None or files.checks.mapping(raw, swhere, "parameter_merge_strategies") is None:
        return {}
    return {str(k): str(v) for k, v in raw.items()}


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
