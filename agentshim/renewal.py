"""Capability URLs (Swift TempURLs, S3 presigned URLs) renewed through the pointer.

A verified pointer may carry newer URLs; the agent adopts them and keeps them
in its state, so that after a restart it uses the newest ones it was given,
not the bootstrap's.
"""

from __future__ import annotations

from setpoint.agentshim.state import AgentState
from setpoint.store import Pointer, Store, StoreError
from setpoint.store.capabilities import Capabilities
from setpoint.store.http import CapabilityStore


def resume_capabilities(store: Store, state: AgentState) -> None:
    """After a restart, use the newest URLs a pointer gave, not the bootstrap's."""
    if not isinstance(store, CapabilityStore) or state.capabilities is None:
        return
    try:
        saved = Capabilities.from_dict(state.capabilities)
    except StoreError:
        return
    if saved.expires_at >= store.capabilities.expires_at:
        store.renew(saved)


def renew_capabilities(store: Store, pointer: Pointer, state: AgentState) -> str | None:
    """Adopt the URLs a verified pointer carries; the reason if they are unusable."""
    if pointer.capabilities is None or not isinstance(store, CapabilityStore):
        return None
    try:
        caps = Capabilities.from_dict(pointer.capabilities)
    except StoreError as exc:
        return f"refused pointer generation {pointer.generation}: {exc}"
    store.renew(caps)
    state.capabilities = caps.to_dict()
    return None
