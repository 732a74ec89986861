"""``plan --preflight`` beside a running controller: the preflight request.

A plan publishes its checks as preflight entries in the servers' manifests,
but a running controller (``setpoint watch``) rewrites every pointer on its
next pass from its own commit, which would drop them before the agents
answer. So the plan first writes a *request document*,
``controller/preflight-<token>``: the entries each server is asked to check
and the bundles they need, when it expires, signed with the controller's
key. Every reconcile pass merges the entries of each live request (signature
verified, not expired) into the manifests it publishes; the plan deletes
its request once it has its answers or its time is up, and the next pass
publishes the manifests without them. A plan killed while it waited leaves
its request behind: the next pass that finds it expired deletes it (one
delete, fenced by the lease like the pass's other writes), as ``setpoint gc``
does. ``setpoint gc`` keeps the blobs a live request names.

Sign only what you verified: a controller with a signing key merges only a
request one of its trusted keys signed (a forged one would make servers
fetch and check what it names); without a key, as every other controller
document, it is taken as written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import structlog

from setpoint.store.base import Store
from setpoint.store.digest import canonical_json, is_digest
from setpoint.store.documents import Manifest, ManifestEntry, is_server_name
from setpoint.store.errors import InvalidDocument
from setpoint.store.signing import PublicKey, SignatureError, SigningKey, verify_signed

log = structlog.get_logger("setpoint.preflight")

PREFIX = "preflight-"  # controller/preflight-<token>
KIND = "PreflightRequest"


@dataclass(frozen=True)
class PreflightRequest:
    """What one ``plan --preflight`` asks each server to check, until ``expires_at``."""

    token: str
    commit: str
    expires_at: float
    checks: dict[str, tuple[ManifestEntry, ...]]
    # server -> the bundles (tree digest -> zip digest) its entries need
    bundles: dict[str, dict[str, str]]

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.token}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "token": self.token,
            "commit": self.commit,
            "expires_at": self.expires_at,
            "servers": {
                server: {
                    "entries": [e.to_dict() for e in entries],
                    "bundles": dict(sorted(self.bundles.get(server, {}).items())),
                }
                for server, entries in sorted(self.checks.items())
            },
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> PreflightRequest:
        if doc.get("kind") != KIND:
            raise ValueError(f"kind is {doc.get('kind')!r}, not {KIND}")
        checks: dict[str, tuple[ManifestEntry, ...]] = {}
        bundles: dict[str, dict[str, str]] = {}
        for server, asked in dict(doc["servers"]).items():
            if not is_server_name(server):
                raise ValueError(f"invalid server name {server!r}")
            checks[server] = tuple(ManifestEntry.from_dict(e) for e in asked["entries"])
            got = dict(asked.get("bundles") or {})
            if not all(is_digest(k) and is_digest(v) for k, v in got.items()):
                raise ValueError(f"{server}: bundles must map digests to digests")
            bundles[server] = got
        return cls(str(doc["token"]), str(doc["commit"]), float(doc["expires_at"]), checks, bundles)


def _payload(doc: dict[str, Any]) -> bytes:
    """The bytes the signature covers: the document without it."""
    return canonical_json({k: v for k, v in doc.items() if k != "signature"})


def write_request(store: Store, request: PreflightRequest, key: SigningKey | None) -> None:
    doc = request.to_dict()
    if key is not None:
        doc["key"] = key.name
        doc["signature"] = key.sign(_payload(doc))
    store.write_controller_doc(request.name, doc)


def delete_request(store: Store, request: PreflightRequest) -> None:
    store.delete_controller_doc(request.name)


def drop_expired(store: Store, now: float) -> list[str]:
    """Delete the requests expired at ``now`` (a plan killed while it waited);
    the names deleted. One that cannot be read is left for an operator."""
    dropped = read_requests(store, None, now).expired
    for name in dropped:
        store.delete_controller_doc(name)
    return dropped


@dataclass
class Requests:
    """The request documents one listing found: the live ones, by token, and
    the names of those expired (their plans were killed while they waited)."""

    live: list[PreflightRequest]
    expired: list[str]


def read_requests(store: Store, trusted: dict[str, PublicKey] | None, now: float) -> Requests:
    """The requests in the store not expired at ``now``, by token, and the
    expired ones; with ``trusted`` (a signing controller), only those one of
    these keys signed. A request that cannot be used is logged and left out
    (for an operator, or ``gc`` once expired): it never stops a pass."""
    found = Requests([], [])
    for name in sorted(store.list_controller_docs(PREFIX)):
        try:
            doc = store.read_controller_doc(name)
            if doc is None:
                continue  # deleted since the listing: its plan is done
            if trusted is not None:
                key, signature = doc.get("key"), doc.get("signature")
                verify_signed(
                    trusted,
                    key if isinstance(key, str) else None,
                    signature if isinstance(signature, str) else None,
                    _payload(doc),
                )
            request = PreflightRequest.from_dict(doc)
        except SignatureError as exc:
            log.warning("preflight_request_not_trusted", document=name, reason=exc.reason)
            continue
        except (InvalidDocument, TypeError, ValueError, KeyError, AttributeError) as exc:
            log.warning("preflight_request_invalid", document=name, reason=str(exc))
            continue
        if request.expires_at > now:
            found.live.append(request)
        else:
            found.expired.append(name)
    return found


def merge_requests(
    manifests: dict[str, Manifest], requests: Iterable[PreflightRequest], servers: Iterable[str]
) -> None:
    """Add each live request's entries to the manifests of ``servers`` (those the
    store knows) as preflight entries, with their bundles. A request's entry
    replaces one of the same name (the answers are keyed by name): the plan's
    wait is bounded, and its answer for the same digest counts for the rollout
    too, since an answer is judged by its digest."""
    known = set(servers)
    for request in requests:
        for server, entries in request.checks.items():
            if server not in known:
                continue
            manifest = manifests.get(server, Manifest(deployments=()))
            asked = {e.name for e in entries}
            kept = tuple(e for e in manifest.preflight if e.name not in asked)
            manifests[server] = replace(
                manifest,
                bundles={**manifest.bundles, **request.bundles.get(server, {})},
                preflight=kept + entries,
            )
