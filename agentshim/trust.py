"""Which pointers an agent believes.

The bootstrap (``store.bootstrap``) gives the first trusted keys. From then
on each accepted pointer may replace the trusted set, always signed by a key
already trusted: a new controller key is announced by the old one, so agents
never need re-enrolling to follow it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from setpoint.store.documents import Pointer
from setpoint.store.errors import StoreError
from setpoint.store.signing import SignatureError, parse_trusted, verify_signed


@dataclass(frozen=True)
class Trust:
    """The keys an agent trusts; ``allow_unsigned`` turns verification off (development)."""

    keys: dict[str, str] = field(default_factory=dict)
    allow_unsigned: bool = False

    def check(self, pointer: Pointer, learned: dict[str, str] | None) -> str | None:
        """Why ``pointer`` must be refused, or None when its signature is good."""
        if self.allow_unsigned:
            return None
        try:
            verify_signed(
                parse_trusted(learned if learned is not None else self.keys),
                pointer.key,
                pointer.signature,
                pointer.payload(),
            )
        except SignatureError as exc:
            return exc.reason
        except StoreError as exc:  # a malformed trusted key
            return f"the trusted keys are unusable: {exc}"
        if pointer.trust is not None and pointer.key not in pointer.trust:
            return f"its trust set does not include its own signing key {pointer.key!r}"
        return None
