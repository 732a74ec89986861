"""A Heat template's environment file, ``stacks/<stem>.env.yaml``: parameter
values (``parameter_defaults``, then ``parameters``, which win) and setpoint's
own settings (``setpoint: {servers: {Resource: inventory server}, state}``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from setpoint.controller.definitions.checks import Where
from setpoint.controller.definitions.files import CommitFiles
from setpoint.controller.definitions.model import STATES
from setpoint.controller.definitions.yamlsource import YMap, load_yaml

ENV_KEYS = (
    "parameters", "parameter_defaults", "resource_registry", "event_sinks",
    "encrypted_param_names", "parameter_merge_strategies", "setpoint",
)  # fmt: skip


def is_environment_file(name: str) -> bool:
    """``<stem>.env.yaml``: a Heat environment file, read with its template."""
    return name.endswith((".env.yaml", ".env.yml"))


@dataclass
class HeatEnvironment:
    """What a template's environment file says (empty when it has none)."""

    values: dict[str, tuple[Any, Where]] = field(default_factory=dict)
    # ``parameter_defaults`` alone: they apply to nested templates too, as in Heat.
    defaults: dict[str, tuple[Any, Where]] = field(default_factory=dict)
    server_map: dict[str, tuple[str, Where]] = field(default_factory=dict)
    state: str = "active"
    # The ``resource_registry`` section and where it is written (``registry``).
    registry: tuple[Any, Where] = (None, Where("", 0, ""))


def environment_file_path(files: CommitFiles, template_path: str) -> str | None:
    """The path of the environment file beside ``template_path``, if there is one."""
    base = template_path.rsplit(".", 1)[0]
    return next(
        (p for p in (base + ".env.yaml", base + ".env.yml") if files.kind(p) == "file"),
        None,
    )


def read_environment_file(files: CommitFiles, template_path: str) -> HeatEnvironment:
    """The environment file beside ``template_path``, if there is one."""
    found = HeatEnvironment()
    checks = files.checks
    path = environment_file_path(files, template_path)
    if path is None:
        return found
    where = Where(path, 1, "")
    doc = load_yaml(files.tree.read(path), path, checks.problems)
    m = checks.mapping(doc, where, "a Heat environment") if doc is not None else YMap()
    if m is None:
        return found
    checks.check_keys(m, where, ENV_KEYS)
    for key in ("parameter_defaults", "parameters"):  # parameters win
        raw = m.get(key)
        kwhere = where.at(m, key)
        if raw is not None and checks.mapping(raw, kwhere, key) is not None:
            for pname, value in raw.items():
                found.values[str(pname)] = (value, kwhere.at(raw, pname))
                if key == "parameter_defaults":
                    found.defaults[str(pname)] = (value, kwhere.at(raw, pname))
    found.registry = (m.get("resource_registry"), where.at(m, "resource_registry"))
    if m.get("event_sinks"):
        checks.warn(where.at(m, "event_sinks"), "event_sinks is not used by setpoint")
    if m.get("setpoint") is not None:
        _read_settings(files, m, where, found)
    return found


def _read_settings(files: CommitFiles, m: YMap, where: Where, found: HeatEnvironment) -> None:
    checks = files.checks
    swhere = where.at(m, "setpoint")
    sm = checks.mapping(m["setpoint"], swhere, "setpoint's settings")
    if sm is None:
        return
    checks.check_keys(sm, swhere, ("servers", "state"))
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
