"""Sign only what you verified: which stored pointers a pass may build on.

Anyone with write access to the store can write a pointer. The agent refuses
one that is not signed by a key it trusts, but the controller signs what it
publishes: if it carried a server's entries, its generation's successor or
its ``moved_to`` over from a forged pointer, it would sign the forgery for the
attacker. So a pass builds only on pointers whose signature verifies with a
key it trusts (its own, the ones it announces, the ones it rotates away from);
any other pointer is treated as absent, and the server's state is recomputed
from git and the reports.

Without a signing key (development, agents run with ``--allow-unsigned``)
nothing can be verified and the store is taken as it is, as always. What a
controller must not do is replace a signed fleet's pointers with pointers no
agent accepts: unsigned ones, or ones signed by a key the current pointers do
not come from. That is refused before anything is written, unless asked for.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from setpoint.controller.converge.publish import PointerPolicy
from setpoint.controller.errors import SetpointError
from setpoint.store.documents import Pointer
from setpoint.store.signing import PublicKey, SignatureError, verify_signed

log = structlog.get_logger("setpoint.trust")


class UntrustedPointers(SetpointError):
    """The fleet's pointers are signed, and by no key this controller trusts.

    ``servers`` are those whose pointers were refused, ``keys`` the key names
    they are signed with, ``signing`` this controller's key name (None: it has
    none).
    """

    def __init__(self, servers: list[str], keys: list[str], signing: str | None) -> None:
        named = ", ".join(repr(k) for k in keys)
        shown = ", ".join(servers[:3]) + (
            f" and {len(servers) - 3} more" if len(servers) > 3 else ""
        )
        if signing is None:
            message = (
                f"the pointers of {shown} are signed by key {named}; unsigned pointers in "
                "their place would be refused by every agent. Give --signing-key FILE "
                "(that key), or --allow-downgrade to publish unsigned pointers anyway"
            )
        else:
            which = (
                f"whose signatures do not verify with the signing key {signing!r} (another "
                "key under the same name?)"
                if keys == [signing]
                else f"which is neither the signing key {signing!r} nor a key it trusts"
            )
            message = (
                f"the pointers of {shown} are signed by key {named}, {which}. "
                f"Give --signing-key FILE of "
                f"key {named}, --trusted-key NAME:BASE64 (its public key) while rotating to "
                f"{signing!r}, or --allow-downgrade to replace them anyway"
            )
        super().__init__(message + "; nothing was published")
        self.servers = servers
        self.keys = keys
        self.signing = signing


def refusal(pointer: Pointer, trusted: dict[str, PublicKey]) -> str | None:
    """Why ``pointer`` cannot be built on, or None when its signature verifies."""
    try:
        verify_signed(trusted, pointer.key, pointer.signature, pointer.payload())
    except SignatureError as exc:
        return exc.reason
    return None


def _signed(pointer: Pointer | None) -> bool:
    return pointer is not None and bool(pointer.key or pointer.signature)


RECOMPUTED = "absent: its entries are recomputed from git and the reports"


def trusted_pointers(
    stored: dict[str, Pointer | None],
    policy: PointerPolicy,
    verified: Callable[[str, Pointer], bool] | None = None,
    treated_as: str = RECOMPUTED,
) -> dict[str, Pointer | None]:
    """The pointers a pass may build on: ``stored`` with every unverified one absent
    (logged as ``treated_as``: what the caller does instead).

    ``verified(server, pointer)`` says a pointer is known good already (this
    controller wrote it, or verified the very same document before): its
    signature is not checked again.

    Raises ``UntrustedPointers`` (before anything is written) when the fleet is
    signed and this controller would replace its pointers with ones agents
    refuse, unless ``policy.allow_downgrade``.
    """
    if policy.signing_key is None:
        signed = sorted(s for s, p in stored.items() if _signed(p))
        if signed and not policy.allow_downgrade:
            keys = sorted(
                {p.key or "?" for s, p in stored.items() if p is not None and s in signed}
            )
            raise UntrustedPointers(signed, keys, None)
        return dict(stored)  # nothing to verify with: the store as it is
    trusted = policy.verifier()
    known = verified or (lambda _server, _pointer: False)
    refused = {
        server: reason
        for server, pointer in stored.items()
        if pointer is not None
        and not known(server, pointer)
        and (reason := refusal(pointer, trusted)) is not None
    }
    signed = [s for s, p in stored.items() if _signed(p)]
    if signed and all(s in refused for s in signed) and not policy.allow_downgrade:
        keys = sorted({p.key or "?" for s, p in stored.items() if p is not None and s in signed})
        raise UntrustedPointers(sorted(signed), keys, policy.signing_key.name)
    out = dict(stored)
    for server, reason in sorted(refused.items()):
        pointer = stored[server]
        assert pointer is not None
        log.warning(
            "pointer_not_trusted",
            server=server,
            generation=pointer.generation,
            key=pointer.key,
            reason=reason,
            treated_as=treated_as,
        )
        out[server] = None
    return out
