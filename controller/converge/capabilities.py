"""Issue agents their capability URLs from the store the controller writes to.

Swift: TempURLs signed with the account key (key 2 while a rotation is under
way): a GET for the server's pointer, one prefix GET for ``blobs/``, a PUT for
its report. S3: presigned SigV4 URLs, at most 7 days: the pointer, the report,
and one GET per blob the server's manifest needs. A local store needs none.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, cast

from setpoint.controller.errors import SetpointError
from setpoint.store.base import BLOBS, Store, blob_key, pointer_key, report_key
from setpoint.store.capabilities import Capabilities
from setpoint.store.errors import InvalidDocument, PermanentError

DEFAULT_TTL = 7 * 24 * 3600


class CapabilityError(SetpointError):
    """The store cannot issue agents their URLs."""

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(f"cannot issue agent URLs on {store}: {reason}")
        self.store = store
        self.reason = reason


S3_MAX_TTL = 7 * 24 * 3600


class _SwiftLike(Protocol):
    def temp_url(self, method: str, key: str, expires_at: int, *, prefix: bool = False) -> str: ...


class _S3Like(Protocol):
    def presign(self, method: Any, key: str, expires_in: int) -> str: ...


def issue(
    store: Store, server: str, blobs: Iterable[str], now: float, ttl: int = DEFAULT_TTL
) -> Capabilities | None:
    """Fresh capabilities for ``server``, or None for a store reached by path."""
    kind = store.capability_kind
    if kind == "swift":
        swift = cast(_SwiftLike, store)
        expires = int(now) + ttl
        try:
            full = swift.temp_url("GET", BLOBS, expires, prefix=True)
        except PermanentError as exc:
            raise CapabilityError(
                store.url,
                f"{exc}; 'setpoint rotate-keys --store {store.url}' creates one",
            ) from exc
        base, _, query = full.partition("?")
        if not base.endswith(BLOBS):
            raise ValueError(f"unexpected prefix TempURL {base!r}")
        return Capabilities(
            kind="swift",
            pointer=swift.temp_url("GET", pointer_key(server), expires),
            report=swift.temp_url("PUT", report_key(server), expires),
            expires_at=expires,
            blob_prefix=base[: -len(BLOBS)],
            blob_query=query,
        )
    if kind == "s3":
        s3 = cast(_S3Like, store)
        ttl = min(ttl, S3_MAX_TTL)
        return Capabilities(
            kind="s3",
            pointer=s3.presign("GET", pointer_key(server), ttl),
            report=s3.presign("PUT", report_key(server), ttl),
            expires_at=int(now) + ttl,
            blobs={d: s3.presign("GET", blob_key(d), ttl) for d in sorted(set(blobs))},
        )
    return None


def needs_renewal(
    current: dict[str, Any] | None, blobs: Iterable[str], now: float, ttl: int
) -> bool:
    """True when the URLs a pointer carries must be issued again.

    Renewed when less than half their lifetime is left, so an agent polling at
    any sane interval always holds valid URLs; on S3 also when the manifest
    needs a blob the current set has no URL for.
    """
    if current is None:
        return True
    try:
        caps = Capabilities.from_dict(current)
    except InvalidDocument:
        return True
    if caps.expires_at - now < min(ttl, S3_MAX_TTL if caps.kind == "s3" else ttl) / 2:
        return True
    return caps.kind == "s3" and not set(blobs) <= set(caps.blobs)
