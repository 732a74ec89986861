"""Following the server's pointer: one conditional poll (ETag, 304), then accept or refuse.

A new pointer is accepted only whole: it must be admitted (signature, server,
anti-rollback), its capability URLs usable, and its manifest, every derived
config and every attached file must fetch and verify. Otherwise the last good
manifest stays and the state's error says why. A pointer that carries
``moved_to`` moves the agent to another store (``agentshim.relocate``).
"""

from __future__ import annotations

from typing import Any

from setpoint.agentshim.admission import keys_taught, refusal
from setpoint.agentshim.configs import fetch, prune
from setpoint.agentshim.context import AgentContext
from setpoint.agentshim.errors import AgentError, FilesError, RefusedDocument
from setpoint.agentshim.relocate import follow_move
from setpoint.agentshim.renewal import renew_capabilities
from setpoint.agentshim.trust import Trust
from setpoint.store import (
    DigestMismatch,
    InvalidDigest,
    InvalidDocument,
    Manifest,
    NotFound,
    PermissionDenied,
    Pointer,
    StoreError,
    TransientError,
)
from setpoint.store.errors import BundleError

# Errors that mean "what was published is wrong", as opposed to "the store is unreachable".
_VERIFICATION_ERRORS = (
    DigestMismatch,
    InvalidDigest,
    InvalidDocument,
    BundleError,
    RefusedDocument,
    FilesError,
)


class PointerFollower:
    """Polls one server's pointer and accepts what verifies."""

    def __init__(self, ctx: AgentContext, trust: Trust | None) -> None:
        """``trust`` None accepts unsigned pointers (tests, development)."""
        self.ctx = ctx
        self.trust = trust

    def poll(self, hops: int = 0) -> None:
        """Poll once; a ``StoreError`` from the poll itself is the caller's."""
        ctx, state = self.ctx, self.ctx.state
        try:
            got = ctx.store.poll_pointer(ctx.server, state.etag)
        except NotFound:
            ctx.log.debug("no_pointer")
            return
        if got is None:
            return
        pointer, etag = got
        why = refusal(pointer, state, ctx.server, self.trust) or renew_capabilities(
            ctx.store, pointer, state
        )
        if why is not None:
            self._refuse(pointer, etag, why)
            return
        if pointer.moved_to is not None:
            if follow_move(ctx, self.trust, pointer, hops):
                self.poll(hops + 1)
            return
        if pointer.generation == state.generation:
            state.etag, state.error = etag, None
            ctx.save()
            return
        try:
            manifest, configs = fetch(ctx.store, ctx.layout, pointer)
        except (StoreError, AgentError) as exc:
            self._not_accepted(pointer, exc)
            return
        self._accept(pointer, etag, manifest, configs)

    def _refuse(self, pointer: Pointer, etag: str, why: str) -> None:
        # Remember the etag: the same refused pointer is not fetched again.
        state = self.ctx.state
        state.error, state.etag = why, etag
        self.ctx.save()
        self.ctx.log.error(
            "pointer_refused",
            generation=pointer.generation,
            manifest=pointer.manifest,
            error=why,
        )

    def _not_accepted(self, pointer: Pointer, exc: StoreError | AgentError) -> None:
        """A pointer whose manifest, configs or files did not fetch or verify."""
        # The etag is not kept: the next cycle fetches again.
        ctx = self.ctx
        ctx.state.error = (
            f"pointer generation {pointer.generation} (manifest {pointer.manifest}) "
            f"not accepted: {exc}"
        )
        ctx.save()
        event = "pointer_unverified" if isinstance(exc, _VERIFICATION_ERRORS) else "store_error"
        if isinstance(exc, (TransientError, PermissionDenied)):
            ctx.result.store_error = f"cannot fetch generation {pointer.generation}: {exc}"
        if isinstance(exc, TransientError):
            ctx.result.store_retry_after = exc.delay
        ctx.log.error(
            event, generation=pointer.generation, manifest=pointer.manifest, error=str(exc)
        )

    def _accept(
        self, pointer: Pointer, etag: str, manifest: Manifest, configs: dict[str, Any]
    ) -> None:
        state = self.ctx.state
        state.generation, state.manifest, state.manifest_doc = (
            pointer.generation,
            pointer.manifest,
            manifest,
        )
        state.etag, state.error = etag, None
        state.trusted_keys = keys_taught(self.trust, pointer, state.trusted_keys)
        for index, entry in enumerate(manifest.deployments):
            dep = state.deployments.get(entry.name)
            if dep is not None:
                dep.entry, dep.position = entry, (pointer.generation, index)
        self.ctx.save()
        prune(self.ctx.layout, state)
        self.ctx.log.info(
            "pointer_accepted",
            generation=pointer.generation,
            manifest=pointer.manifest,
            commit=pointer.commit,
            deployments=len(manifest.deployments),
            configs=len(configs),
        )
