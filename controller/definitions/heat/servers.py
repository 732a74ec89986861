"""Server resources (``OS::Nova::Server``, ``OS::Heat::DeployedServer``) bound
to inventory servers, by resource name or through ``setpoint.servers`` in the
template's environment file, and the servers a deployment names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from setpoint.controller.definitions.checks import Where, did_you_mean
from setpoint.controller.definitions.heat.resources import Resource, TemplateScope
from setpoint.controller.definitions.intrinsics import INVALID
from setpoint.controller.definitions.values import kind_of
from setpoint.controller.definitions.yamlsource import YMap

# Evaluates a snippet at its position (``intrinsics.Evaluator.evaluate``).
Evaluate = Callable[[Any, Where], Any]


class ServerBinding:
    """Inventory servers of a template's server resources."""

    def __init__(
        self,
        scope: TemplateScope,
        server_map: dict[str, tuple[str, Where]],
        evaluate: Evaluate,
    ) -> None:
        self.scope = scope
        self.checks = scope.checks
        self.server_map = server_map
        self.evaluate = evaluate

    def server_of(self, rname: str, c: Where) -> Any:
        """The inventory server a server resource is bound to."""
        servers = self.scope.inventory.servers
        name, where = self.server_map.get(rname, (rname, c))
        if name not in servers:
            hint = did_you_mean(name, tuple(servers))
            self.checks.error(
                where,
                f"server resource {rname!r} is bound to no inventory server: {name!r} is "
                f"not in the inventory{hint} (map it under setpoint.servers in the "
                "environment file)",
            )
            return INVALID
        return name

    def server_value(self, value: Any, c: Where) -> str | None:
        got = self.evaluate(value, c)
        if got is INVALID:
            return None
        if isinstance(got, str) and got in self.scope.inventory.servers:
            return got
        self.checks.error(
            c, f"expected a server (get_resource of a server resource), got {kind_of(got)}"
        )
        return None

    def single_server(self, res: Resource, quiet: bool = False) -> str | None:
        """The ``server`` of a deployment; ``quiet`` when read again (reported once)."""
        c = res.props_where
        if "server" not in res.props:
            if not quiet:
                self.checks.error(c, "missing required property 'server'")
            return None
        if quiet:
            with self.checks.quiet():
                return self.server_value(res.props["server"], c.at(res.props, "server"))
        return self.server_value(res.props["server"], c.at(res.props, "server"))

    def group_servers(self, res: Resource, quiet: bool = False) -> dict[str, str]:
        """The ``servers`` map of a deployment group; ``quiet`` when read again."""
        if quiet:
            with self.checks.quiet():
                return self._group_servers(res)
        return self._group_servers(res)

    def _group_servers(self, res: Resource) -> dict[str, str]:
        raw = res.props.get("servers")
        sc = res.props_where.at(res.props, "servers")
        if not isinstance(raw, YMap) or not raw:
            self.checks.error(sc, "expected servers: a map of keys to servers")
            return {}
        out: dict[str, str] = {}
        for key, value in raw.items():
            server = self.server_value(value, sc.at(raw, key))
            if server is not None:
                out[str(key)] = server
        if len(set(out.values())) != len(out):
            self.checks.error(sc, "a server is listed twice")
        return out
