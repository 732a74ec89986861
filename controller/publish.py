"""Publish desired state: blobs, then manifests, then pointers (last).

A reader never sees a pointer to something missing. Only servers whose
manifest changed get a new pointer generation, and only blobs the store does
not hold are uploaded (one batched existence check decides), so an idle pass
writes nothing and a ``git revert`` uploads nothing new.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from controller.desired import DesiredState
from store.base import Store
from store.digest import canonical_json, digest_bytes
from store.documents import Manifest, Pointer

log = structlog.get_logger("setpoint.publish")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class PublishResult:
    # server -> the pointer now in force (new or unchanged)
    pointers: dict[str, Pointer] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)


def publish(
    store: Store,
    desired: DesiredState,
    current: dict[str, Pointer | None],
    clock: Callable[[], float] = time.time,
) -> PublishResult:
    """Bring the store's pointers to ``desired``.

    ``current`` holds the pointer each server has now (None: no pointer yet)
    for every server the store knows; a server that has a pointer but no
    deployments any more gets an empty manifest, so its agent deletes what ran.
    """
    result = PublishResult()
    manifests: dict[str, tuple[Manifest, bytes, str]] = {}
    servers = sorted(set(desired.manifests) | {s for s, p in current.items() if p})
    for server in servers:
        manifest = desired.manifests.get(server, Manifest(deployments=()))
        blob = canonical_json(manifest.to_dict())
        digest = digest_bytes(blob)
        pointer = current.get(server)
        if pointer is not None and pointer.manifest == digest:
            result.pointers[server] = pointer
            continue
        manifests[server] = (manifest, blob, digest)

    if not manifests:
        return result

    # Blobs first: everything the changed manifests reference, then the manifests.
    content: dict[str, bytes] = {}
    for manifest, _, _ in manifests.values():
        for entry in manifest.deployments:
            rendered = desired.configs.get(entry.config)
            if rendered is None:
                continue  # kept from an earlier manifest: already in the store
            content[entry.config] = rendered.blob
            for ref in rendered.body["files"].values():
                zip_digest = manifest.bundles.get(ref["digest"], ref["digest"])
                content[zip_digest] = desired.attachments[zip_digest]
    manifest_blobs = {digest: blob for _, blob, digest in manifests.values()}
    missing = store.find_missing([*content, *manifest_blobs])
    for digest in sorted(d for d in content if d in missing):
        store.put_blob(content[digest])
        result.uploaded.append(digest)
    for digest in sorted(d for d in manifest_blobs if d in missing):
        store.put_blob(manifest_blobs[digest])
        result.uploaded.append(digest)

    # Pointers last.
    now = iso(clock())
    for server, (_, _, digest) in sorted(manifests.items()):
        previous = current.get(server)
        pointer = Pointer(
            server=server,
            generation=(previous.generation if previous else 0) + 1,
            manifest=digest,
            commit=desired.commit,
            published_at=now,
        )
        store.write_pointer(pointer, previous)
        result.pointers[server] = pointer
        result.changed.append(server)
        log.info(
            "pointer_published",
            server=server,
            generation=pointer.generation,
            manifest=digest,
            commit=desired.commit[:12],
        )
    return result
