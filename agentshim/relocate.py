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

from setpoint.agentshim.admission import destination_refusal, keys_taught
from setpoint.agentshim.context import AgentContext
from setpoint.agentshim.errors import AgentError
from setpoint.agentshim.trust import Trust
from setpoint.store import (
    NotFound,
    PermissionDenied,
    Pointer,
    Store,
    StoreError,
    TransientError,
    open_store,
)
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


def resume_location(ctx: AgentContext) -> None:
    """After a restart, poll where the fleet moved, whatever --store or --bootstrap say."""
    if ctx.state.location is None:
        return
    try:
        ctx.store = open_location(ctx.server, ctx.state.location)
    except RelocationError as exc:
        ctx.log.error("saved_location_unusable", error=str(exc))
        return
    ctx.log.info("store_relocated", store=describe(ctx.state.location))


def follow_move(ctx: AgentContext, trust: Trust | None, redirect: Pointer, hops: int) -> bool:
    """Switch to the store a verified ``moved_to`` names, once its pointer verifies.

    Returns True when the agent moved (the caller then polls there). Until
    then the agent stays where it is (the etag is not kept, so the next cycle
    tries again) and the report there says why.
    """
    assert redirect.moved_to is not None
    state = ctx.state
    where = describe(redirect.moved_to)
    # The redirect is verified: the keys it carries are the ones to check with.
    learned = keys_taught(trust, redirect, state.trusted_keys)
    try:
        target = _destination(ctx.server, trust, redirect, hops, learned)
    except (StoreError, AgentError) as exc:
        state.error = f"pointer generation {redirect.generation} moves to {where}: {exc}"
        ctx.save()
        if isinstance(exc, TransientError | PermissionDenied | NotFound):
            ctx.result.store_error = state.error
        ctx.log.error("move_not_followed", to=where, error=str(exc))
        return False
    state.location = dict(redirect.moved_to)
    state.capabilities = redirect.moved_to.get("capabilities")
    state.trusted_keys = learned
    state.etag, state.error = None, None
    ctx.save()
    ctx.store = target
    # Report there at once, even if nothing else changed: that is the confirmation.
    ctx.reporter.forget_published()
    ctx.log.info("store_moved", to=where, generation=redirect.generation)
    return True


def _destination(
    server: str,
    trust: Trust | None,
    redirect: Pointer,
    hops: int,
    learned: dict[str, str] | None,
) -> Store:
    """The store ``redirect`` moves to, once the pointer there is one to follow."""
    assert redirect.moved_to is not None
    where = describe(redirect.moved_to)
    if hops >= MAX_HOPS:
        raise RelocationError(f"more than {MAX_HOPS} moves in a row")
    target = open_location(server, redirect.moved_to)
    got = target.poll_pointer(server, None)
    if got is None:
        raise RelocationError(f"{where} answered 304 to an unconditional read")
    why = destination_refusal(got[0], redirect, server, trust, learned)
    if why is not None:
        raise RelocationError(f"the pointer at {where} is refused: {why}")
    return target
