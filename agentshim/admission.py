"""Which pointers the agent admits, and which keys it trusts after one.

A pointer is admitted when it is signed by a trusted key, names this server,
does not go back a generation (anti-rollback) and does not change the manifest
of a generation already accepted. Each check gives the reason a pointer is
refused, or None.
"""

from __future__ import annotations

from setpoint.agentshim.state import AgentState
from setpoint.agentshim.trust import Trust
from setpoint.store import Pointer


def refusal(pointer: Pointer, state: AgentState, server: str, trust: Trust | None) -> str | None:
    """Why the pointer polled from the current store must be refused, or None."""
    if trust is not None:
        why = trust.check(pointer, state.trusted_keys)
        if why is not None:
            return f"refused pointer generation {pointer.generation}: {why}"
    if pointer.server != server:
        return (
            f"refused pointer generation {pointer.generation}: "
            f"it names server {pointer.server!r}, not {server!r}"
        )
    if pointer.generation < state.generation:
        return (
            f"refused pointer generation {pointer.generation} (manifest {pointer.manifest}): "
            f"lower than generation {state.generation} already accepted (anti-rollback); "
            f"still running generation {state.generation}"
        )
    if pointer.generation == state.generation and pointer.manifest != state.manifest:
        return (
            f"refused pointer generation {pointer.generation} (manifest {pointer.manifest}): "
            f"generation {state.generation} was accepted with manifest {state.manifest}; "
            "a new manifest needs a new generation"
        )
    return None


def destination_refusal(
    there: Pointer,
    redirect: Pointer,
    server: str,
    trust: Trust | None,
    learned: dict[str, str] | None,
) -> str | None:
    """Why the pointer at a ``moved_to`` must be refused (checked with the keys the
    redirect taught), or None."""
    why = trust.check(there, learned) if trust is not None else None
    if why is None and there.server != server:
        why = f"it names server {there.server!r}"
    if why is None and there.generation <= redirect.generation:
        why = f"its generation {there.generation} is not above the redirect's {redirect.generation}"
    return why


def keys_taught(
    trust: Trust | None, pointer: Pointer, current: dict[str, str] | None
) -> dict[str, str] | None:
    """The keys to trust once ``pointer`` (verified) is believed: the trust set it
    carries when signatures are checked, else the ``current`` ones."""
    if trust is not None and not trust.allow_unsigned and pointer.trust:
        return dict(pointer.trust)
    return current
