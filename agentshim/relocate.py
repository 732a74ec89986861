"""Where an agent's fleet lives after ``setpoint move``: the ``moved_to`` of a pointer.

A pointer whose signature verifies and that carries ``moved_to`` names the
new location: capability URLs (Swift, S3: a ``CapabilityStore``), or a path
or ``file://`` URL (a local store). The agent switches only once the pointer
there verifies too, keeps the location in its state (it then overrides
``--store`` and ``--bootstrap``, across restarts) and from then on polls and
reports there; its first report there is the controller's confirmation.
"""

from __future__ import annotations

from typing import Any

from setpoint.agentshim.errors import AgentError
from setpoint.store import Store, StoreError, open_store
from setpoint.store.capabilities import Capabilities
from setpoint.store.http import CapabilityStore

# A redirect that leads to another redirect is followed this many times in one cycle.
MAX_HOPS = 3


class RelocationError(AgentError):
    """A ``moved_to`` the agent cannot use."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"cannot follow moved_to: {reason}")
        self.reason = reason


def open_location(server: str, moved_to: dict[str, Any]) -> Store:
    """The store a ``moved_to`` (or a saved location) names, for ``server``."""
    caps = moved_to.get("capabilities")
    if caps is not None:
        try:
            return CapabilityStore(server, Capabilities.from_dict(caps))
        except StoreError as exc:
            raise RelocationError(str(exc)) from exc
    url = moved_to.get("url")
    if not isinstance(url, str) or not url:
        raise RelocationError("it names no URL and no capabilities")
    if "://" in url and not url.startswith(("file://", "memory://")):
        raise RelocationError(
            f"{url} is reached only through capability URLs, and the pointer carries none"
        )
    try:
        return open_store(url)
    except StoreError as exc:
        raise RelocationError(str(exc)) from exc


def describe(moved_to: dict[str, Any]) -> str:
    """Where a ``moved_to`` points, for logs and reports (never the signed URLs)."""
    url = moved_to.get("url")
    if isinstance(url, str):
        return url
    caps = moved_to.get("capabilities") or {}
    pointer = caps.get("pointer") if isinstance(caps, dict) else None
    return str(pointer).split("?", 1)[0] if pointer else "?"
