"""The bootstrap document ``setpoint enroll`` prints and ``setpoint-agent --bootstrap`` reads.

It holds the server's name, how to reach the store (a local path, or
capability URLs), and the public keys the agent trusts, and nothing else: no
store credentials ever reach a server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from setpoint.store.capabilities import Capabilities
from setpoint.store.documents import is_server_name
from setpoint.store.errors import StoreError
from setpoint.store.signing import parse_trusted

BOOTSTRAP_KIND = "SetpointBootstrap"


class BootstrapError(StoreError):
    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"bootstrap {where}: {reason}")
        self.where = where
        self.reason = reason


@dataclass(frozen=True)
class Bootstrap:
    server: str
    trusted_keys: dict[str, str] = field(default_factory=dict)
    store_url: str | None = None
    capabilities: Capabilities | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": BOOTSTRAP_KIND,
            "version": 1,
            "server": self.server,
            "store": self.store_url,
            "capabilities": self.capabilities.to_dict() if self.capabilities else None,
            "trusted_keys": dict(sorted(self.trusted_keys.items())),
        }

    @classmethod
    def load(cls, path: Path) -> Bootstrap:
        try:
            doc = json.loads(path.read_text())
        except OSError as exc:
            raise BootstrapError(str(path), f"cannot read: {exc.strerror or exc}") from exc
        except json.JSONDecodeError as exc:
            raise BootstrapError(str(path), f"not JSON: {exc}") from exc
        return cls.from_dict(doc, str(path))

    @classmethod
    def from_dict(cls, doc: Any, where: str = "document") -> Bootstrap:
        if not isinstance(doc, dict) or doc.get("kind") != BOOTSTRAP_KIND:
            raise BootstrapError(where, f"expected a JSON object of kind {BOOTSTRAP_KIND}")
        server = doc.get("server")
        if not is_server_name(server):
            raise BootstrapError(where, f"invalid server name {server!r}")
        keys = doc.get("trusted_keys") or {}
        try:
            parse_trusted(keys)
        except StoreError as exc:
            raise BootstrapError(where, str(exc)) from exc
        if not keys:
            raise BootstrapError(where, "no trusted_keys: the agent would believe no pointer")
        store_url = doc.get("store")
        caps_doc = doc.get("capabilities")
        if (store_url is None) == (caps_doc is None):
            raise BootstrapError(where, "give exactly one of 'store' and 'capabilities'")
        try:
            caps = Capabilities.from_dict(caps_doc) if caps_doc is not None else None
        except StoreError as exc:
            raise BootstrapError(where, str(exc)) from exc
        return cls(
            server=str(server),
            trusted_keys=dict(keys),
            store_url=store_url if isinstance(store_url, str) else None,
            capabilities=caps,
        )
