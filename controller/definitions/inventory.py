"""``inventory.yaml``: ``servers`` (name → labels) and ``groups`` (name → servers)."""

from __future__ import annotations

from typing import Any

from setpoint.controller.definitions.checks import Checks, Where
from setpoint.controller.definitions.files import CommitFiles
from setpoint.controller.definitions.model import Inventory
from setpoint.controller.definitions.values import kind_of, plain
from setpoint.controller.definitions.yamlsource import YList, YMap
from setpoint.store.documents import is_server_name

INVENTORY = "inventory.yaml"


def read_inventory(files: CommitFiles) -> Inventory:
    """The commit's ``inventory.yaml`` (an empty inventory, reported, when missing)."""
    checks = files.checks
    where = Where(INVENTORY, 1, "")
    kind = files.kind(INVENTORY)
    if kind in ("symlink", "submodule"):
        return Inventory({}, {})  # reported
    if kind != "file":
        checks.error(where, "missing inventory.yaml at the repository root")
        return Inventory({}, {})
    doc = files.parse(INVENTORY)
    m = checks.mapping(doc, where, "the inventory") if doc is not None else YMap()
    if m is None:
        return Inventory({}, {})
    checks.check_keys(m, where, ("kind", "servers", "groups"))
    if "kind" in m and m["kind"] != "Inventory":
        checks.error(where.at(m, "kind"), f"expected kind: Inventory, got {m['kind']!r}")
    return inventory_body(checks, m, where)


def inventory_body(checks: Checks, m: YMap, where: Where) -> Inventory:
    """``servers`` and ``groups`` of an inventory (its own file or an environment's)."""
    servers = _servers(checks, m, where)
    return Inventory(servers, _groups(checks, m, where, servers))


def _servers(checks: Checks, m: YMap, where: Where) -> dict[str, dict[str, Any]]:
    servers: dict[str, dict[str, Any]] = {}
    raw_servers = m.get("servers") or YMap()
    if checks.mapping(raw_servers, where.at(m, "servers"), "servers") is None:
        return servers
    for name, labels in raw_servers.items():
        swhere = where.at(m, "servers").at(raw_servers, name)
        if not is_server_name(name):
            checks.error(swhere, f"invalid server name {name!r}")
            continue
        if labels is not None and not isinstance(labels, YMap):
            checks.error(swhere, f"expected labels (a mapping), got {kind_of(labels)}")
            continue
        servers[name] = plain(labels) if labels else {}
    return servers


def _groups(
    checks: Checks, m: YMap, where: Where, servers: dict[str, dict[str, Any]]
) -> dict[str, tuple[str, ...]]:
    groups: dict[str, tuple[str, ...]] = {}
    raw_groups = m.get("groups") or YMap()
    if checks.mapping(raw_groups, where.at(m, "groups"), "groups") is None:
        return groups
    for gname, members in raw_groups.items():
        gwhere = where.at(m, "groups").at(raw_groups, gname)
        if not isinstance(members, YList):
            checks.error(gwhere, f"expected a list of server names, got {kind_of(members)}")
            continue
        names: list[str] = []
        for index, member in enumerate(members):
            mwhere = gwhere.at(members, index)
            if not isinstance(member, str):
                checks.error(mwhere, f"expected a server name, got {kind_of(member)}")
            elif member not in servers:
                checks.error(mwhere, f"unknown server {member!r} in group {gname!r}")
            elif member in names:
                checks.error(mwhere, f"server {member!r} listed twice")
            else:
                names.append(member)
        groups[str(gname)] = tuple(names)
    return groups
