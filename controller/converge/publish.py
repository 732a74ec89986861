"""Publish desired state: blobs, then manifests, then pointers (last).

A reader never sees a pointer to something missing. Only servers whose
pointer must change get a new generation: a new manifest, a new signing key
or trust set, or capability URLs due for renewal. Only blobs the store does
not hold are uploaded (one batched existence check decides), so an idle pass
writes nothing and a ``git revert`` uploads nothing new.

Uploads and pointer writes run side by side on the store's pool, in three
waves (configs and files, manifests, pointers); a wave starts only once the
one before has ended, so the order above holds whatever the concurrency.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from setpoint.controller.converge.capabilities import DEFAULT_TTL, issue, needs_renewal
from setpoint.controller.rollout.desired import DesiredState
from setpoint.store.base import Store
from setpoint.store.digest import canonical_json, digest_bytes
from setpoint.store.documents import Manifest, Pointer
from setpoint.store.signing import PublicKey, SigningKey
from setpoint.store.timestamps import format_timestamp as iso

log = structlog.get_logger("setpoint.publish")


@dataclass(frozen=True)
class PointerPolicy:
    """How pointers are signed and what they carry besides the manifest.

    ``trust`` is the set of public keys (``NAME:BASE64`` by name) agents are
    told to trust; the signing key's own public key is always in it. ``ttl``
    is the lifetime of capability URLs issued to agents.
    """

    signing_key: SigningKey | None = None
    announce: tuple[str, ...] = ()
    ttl: int = DEFAULT_TTL
    # Issue every server new URLs now (a TempURL key rotation).
    force_renewal: bool = False
    # Public keys (``NAME:BASE64``) whose signatures on stored pointers count as
    # the controller's own, besides its key and the announced ones: the key it
    # rotates away from (``--trusted-key``). Agents are not told to trust them.
    verify_keys: tuple[str, ...] = ()
    # Replace pointers signed by a key this controller does not trust (without a
    # key: any signed pointer), which agents that trust only that key refuse
    # (``--allow-downgrade``).
    allow_downgrade: bool = False

    def sign(self, pointer: Pointer) -> Pointer:
        """``pointer`` with its signature; unchanged without a signing key."""
        if self.signing_key is None:
            return pointer
        return replace(pointer, signature=self.signing_key.sign(pointer.payload()))

    def verifier(self) -> dict[str, PublicKey]:
        """The keys whose signatures on stored pointers the controller builds on.

        Empty without a signing key: an unsigned controller verifies nothing.
        """
        if self.signing_key is None:
            return {}
        keys = {}
        for text in (*self.verify_keys, *self.announce):
            key = PublicKey.parse(text)
            keys[key.name] = key
        keys[self.signing_key.name] = self.signing_key.public()
        return keys

    def trust(self) -> dict[str, str] | None:
        if self.signing_key is None:
            return None
        keys = {self.signing_key.name: str(self.signing_key.public())}
        for text in self.announce:
            name = text.split(":", 1)[0]
            keys.setdefault(name, text)
        return dict(sorted(keys.items()))


@dataclass
class PublishResult:
    # server -> the pointer now in force (new or unchanged)
    pointers: dict[str, Pointer] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    # server -> version of the pointer this pass wrote, when the store's write told it
    versions: dict[str, str] = field(default_factory=dict)


@dataclass
class _Planned:
    manifest: Manifest
    blob: bytes
    digest: str
    needs: set[str]


def _blobs_needed(
    manifest: Manifest, desired: DesiredState, kept: dict[str, dict[str, Any]]
) -> set[str]:
    """Every blob an agent fetches for ``manifest``: configs and their files.
    ``kept`` holds the bodies of configs not rendered this pass, read from the store."""
    needs: set[str] = set()
    for entry in manifest.fetched:
        needs.add(entry.config)
        rendered = desired.configs.get(entry.config)
        body = rendered.body if rendered else kept[entry.config]
        for ref in body.get("files", {}).values():
            needs.add(manifest.bundles.get(ref["digest"], ref["digest"]))
    return needs


def _read_kept(
    store: Store, desired: DesiredState, manifests: list[Manifest]
) -> dict[str, dict[str, Any]]:
    """The configs of kept entries (waiting: not rendered this pass), each read once,
    side by side on the store's pool: many servers keep the same config."""
    digests = sorted(
        {
            entry.config
            for manifest in manifests
            for entry in manifest.fetched
            if entry.config not in desired.configs
        }
    )
    bodies = store.pool.map(lambda digest: store.get_json_blob(digest, "config"), digests)
    return dict(zip(digests, bodies, strict=True))


@dataclass(frozen=True)
class _Publication:
    """What every step of one publication reads: the store, the inputs, the moment."""

    store: Store
    desired: DesiredState
    current: dict[str, Pointer | None]
    policy: PointerPolicy
    now: float
    trust: dict[str, str] | None
    key_name: str | None

    def settled(self, pointer: Pointer | None, digest: str, needs: set[str]) -> bool:
        """The pointer already says what it should, with URLs good for long enough."""
        return (
            pointer is not None
            and pointer.manifest == digest
            and pointer.key == self.key_name
            and pointer.trust == self.trust
            and (
                self.store.capability_kind is None
                or not (
                    self.policy.force_renewal
                    or needs_renewal(pointer.capabilities, needs, self.now, self.policy.ttl)
                )
            )
        )

    def candidates(self, result: PublishResult) -> list[tuple[str, Manifest, bytes, str]]:
        """Each server whose pointer may change, with its encoded manifest; the rest kept."""
        desired, current = self.desired, self.current
        servers = sorted(set(desired.manifests) | {s for s, p in current.items() if p})
        # Servers with the same desired state share one manifest: encode it once.
        encoded: dict[tuple[object, ...], tuple[bytes, str]] = {}
        # On S3 every server is a candidate, since whether its URLs cover the
        # blobs it needs decides.
        candidates: list[tuple[str, Manifest, bytes, str]] = []
        for server in servers:
            manifest = desired.manifests.get(server, Manifest(deployments=()))
            key = (manifest.deployments, manifest.preflight, *manifest.bundles.items())
            if key not in encoded:
                blob = canonical_json(manifest.to_dict())
                encoded[key] = (blob, digest_bytes(blob))
            blob, digest = encoded[key]
            pointer = current.get(server)
            if self.store.capability_kind != "s3" and self.settled(pointer, digest, set()):
                assert pointer is not None
                result.pointers[server] = pointer
                continue
            candidates.append((server, manifest, blob, digest))
        return candidates

    def plan(self, result: PublishResult) -> dict[str, _Planned]:
        """The servers whose pointer must change, with what each needs; the rest kept."""
        candidates = self.candidates(result)
        kept = _read_kept(self.store, self.desired, [manifest for _, manifest, _, _ in candidates])
        planned: dict[str, _Planned] = {}
        for server, manifest, blob, digest in candidates:
            needs = {digest} | _blobs_needed(manifest, self.desired, kept)
            pointer = self.current.get(server)
            if self.store.capability_kind == "s3" and self.settled(pointer, digest, needs):
                assert pointer is not None
                result.pointers[server] = pointer
                continue
            planned[server] = _Planned(manifest, blob, digest, needs)
        return planned

    def build_pointers(
        self, planned: dict[str, _Planned], seen: dict[str, int]
    ) -> dict[str, Pointer]:
        """Every new pointer, its URLs issued and signed, before anything is written."""
        stamp = iso(self.now)
        pointers: dict[str, Pointer] = {}
        for server, plan in sorted(planned.items()):
            previous = self.current.get(server)
            caps = issue(self.store, server, plan.needs, self.now, self.policy.ttl)
            pointer = Pointer(
                server=server,
                generation=max(previous.generation if previous else 0, seen.get(server, 0)) + 1,
                manifest=plan.digest,
                commit=self.desired.commit,
                published_at=stamp,
                capabilities=caps.to_dict() if caps else None,
                trust=self.trust,
                key=self.key_name,
                # A fleet moved away (``setpoint move``) stays redirected whatever
                # is published here afterwards.
                moved_to=previous.moved_to if previous else None,
            )
            pointers[server] = self.policy.sign(pointer)
        return pointers

    def new_content(self, planned: dict[str, _Planned]) -> dict[str, bytes]:
        """The configs and files the new manifests reference that this pass rendered."""
        content: dict[str, bytes] = {}
        for plan in planned.values():
            for entry in plan.manifest.fetched:
                rendered = self.desired.configs.get(entry.config)
                if rendered is None:
                    continue  # kept from an earlier manifest: already in the store
                content[entry.config] = rendered.blob
                for ref in rendered.body["files"].values():
                    zip_digest = plan.manifest.bundles.get(ref["digest"], ref["digest"])
                    content[zip_digest] = self.desired.attachments[zip_digest]
        return content

    def upload(self, content: dict[str, bytes], manifest_blobs: dict[str, bytes]) -> list[str]:
        """Store the blobs the store lacks: configs and files, then manifests."""
        store = self.store
        missing = store.find_missing([*content, *manifest_blobs])
        # Each ``pool.map`` returns only once every call in it has ended: the
        # configs and files are all stored before any manifest naming them, and
        # the manifests before any pointer.
        configs = sorted(d for d in content if d in missing)
        store.pool.map(store.put_blob, [content[d] for d in configs])
        manifests = sorted(d for d in manifest_blobs if d in missing)
        store.pool.map(store.put_blob, [manifest_blobs[d] for d in manifests])
        return configs + manifests

    def write_pointer(self, pointer: Pointer, versions: dict[str, str | None] | None) -> str | None:
        """Write one server's pointer (over its stored version, when fenced) and log it."""
        server = pointer.server
        previous = self.current.get(server)
        if versions is not None:
            version: str | None = self.store.write_pointer_if(
                pointer, previous, versions.get(server)
            )
        else:
            version = self.store.write_pointer(pointer, previous)
        log.info(
            "pointer_published",
            server=server,
            generation=pointer.generation,
            manifest=pointer.manifest,
            commit=self.desired.commit[:12],
            renewed=previous is not None and previous.manifest == pointer.manifest,
        )
        return version

    def write_pointers(
        self,
        pointers: dict[str, Pointer],
        versions: dict[str, str | None] | None,
        result: PublishResult,
    ) -> None:
        """The pointer wave: every new pointer side by side, recorded in ``result``."""
        servers = list(pointers)
        written = self.store.pool.map(
            lambda server: self.write_pointer(pointers[server], versions), servers
        )
        for server, version in zip(servers, written, strict=True):
            if version is not None:
                result.versions[server] = version
            result.pointers[server] = pointers[server]
            result.changed.append(server)

    def restore_lost(self, content: dict[str, bytes], manifest_blobs: dict[str, bytes]) -> None:
        """Put back any blob the new pointers name that a concurrent gc sweep deleted."""
        # A blob these pointers name may have been deleted by a concurrent
        # ``setpoint gc`` sweep before they named it; the sweep puts back what the
        # pointers it reads name, and this check covers pointers written after it
        # read them (``fleet.gc``). The blobs this pass uploaded are checked too:
        # a sweep already under way (grace 0) can delete the copy just uploaded,
        # and with the pointers written side by side it did, in about one run of
        # two of the gc-beside-publish test.
        store = self.store
        restore = sorted(store.find_missing([*content, *manifest_blobs]))
        store.pool.map(
            lambda digest: store.put_blob(
                content[digest] if digest in content else manifest_blobs[digest]
            ),
            restore,
        )
        for digest in restore:
            log.warning("blob_restored", digest=digest, why="deleted while being published")


def publish(
    store: Store,
    desired: DesiredState,
    current: dict[str, Pointer | None],
    clock: Callable[[], float] = time.time,
    policy: PointerPolicy | None = None,
    seen: dict[str, int] | None = None,
    fence: Callable[[], object] | None = None,
    versions: dict[str, str | None] | None = None,
) -> PublishResult:
    """Bring the store's pointers to ``desired``.

    ``current`` holds the pointer each server has now (None: no pointer yet,
    or none the controller trusts) for every server the store knows; a server
    that has a pointer but no deployments any more gets an empty manifest, so
    its agent deletes what ran. ``seen`` is the highest generation seen per
    server anywhere (a stored pointer, trusted or not; the generation its agent
    reports): a new pointer goes above it, since the agent refuses any
    generation it already passed.

    A controller holding the lease passes ``fence`` (``Lease.hold``: raises if
    the lease moved on), called right before the pointers are written, and
    ``versions``, the version of each server's pointer object as stored (None:
    absent): each pointer is then written only over that version, so a deposed
    leader never replaces a newer leader's pointer.
    """
    policy = policy or PointerPolicy()
    pub = _Publication(
        store=store,
        desired=desired,
        current=current,
        policy=policy,
        now=clock(),
        trust=policy.trust(),
        key_name=policy.signing_key.name if policy.signing_key else None,
    )
    result = PublishResult()
    planned = pub.plan(result)
    if not planned:
        return result
    # Every pointer is built (URLs issued, signed) before anything is written,
    # so a store that cannot issue URLs fails the pass with nothing published.
    pointers = pub.build_pointers(planned, seen or {})
    # Blobs first: everything the new manifests reference, then the manifests.
    content = pub.new_content(planned)
    manifest_blobs = {plan.digest: plan.blob for plan in planned.values()}
    result.uploaded += pub.upload(content, manifest_blobs)
    # Pointers last, and only while this controller still holds the lease.
    if fence is not None:
        fence()
    pub.write_pointers(pointers, versions, result)
    pub.restore_lost(content, manifest_blobs)
    return result
