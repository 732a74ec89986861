"""Publication order under concurrency: no pointer write completes before every
blob and manifest it names exists, whatever order the store answers in.

The store answers each request after a random (seeded) delay, so requests the
pool runs side by side complete in shuffled order; every completed write is
recorded, in order, and the log is replayed to check each pointer against
what existed when it landed.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from bench import simulate
from bench.latency import LatencyStore, jitter
from bench.synth import FleetShape, change_one_component, change_parameter, init_fleet
from setpoint.controller.converge.reconcile import Reconciler
from setpoint.controller.definitions.repository import GitRepo, revert
from setpoint.store.base import Store, blob_key, digest_of_blob_key
from setpoint.store.documents import Manifest
from setpoint.store.memory import MemoryStore


class RecordingStore(LatencyStore):
    """Every write that completed, in the order it completed."""

    def __init__(self, inner: Store, seed: int, workers: int) -> None:
        super().__init__(inner, jitter(seed, 0.004), workers=workers)
        self.completed: list[tuple[str, bytes]] = []
        self._log_lock = threading.Lock()

    def _put(self, key: str, data: bytes) -> str | None:
        self._request("PUT")
        with self._log_lock:  # the write and its place in the log, together
            version = self.inner._put(key, data)
            self.completed.append((key, data))
        return version

    def _put_if_absent(self, key: str, data: bytes) -> bool:
        self._request("PUT")
        with self._log_lock:
            wrote = self.inner._put_if_absent(key, data)
            if wrote:
                self.completed.append((key, data))
        return wrote


def pointers_landed_after_what_they_name(
    existing: set[str], completed: list[tuple[str, bytes]], store: Store
) -> list[str]:
    """Replay the writes: each pointer must find its manifest, and every config
    and file the manifest names, already written (or there before the pass)."""
    present = set(existing)
    written: dict[str, bytes] = {}

    def blob(digest: str) -> bytes:
        return written.get(digest) or store.get_blob(digest)

    problems = []
    for key, data in completed:
        if key.endswith("/pointer"):
            manifest_digest = json.loads(data)["manifest"]
            named = [manifest_digest]
            if blob_key(manifest_digest) in present:
                manifest = Manifest.from_dict(json.loads(blob(manifest_digest)))
                for entry in manifest.deployments:
                    named.append(entry.config)
                    if blob_key(entry.config) in present:
                        body = json.loads(blob(entry.config))
                        for ref in body.get("files", {}).values():
                            named.append(manifest.bundles.get(ref["digest"], ref["digest"]))
            missing = [d for d in named if blob_key(d) not in present]
            if missing:
                problems.append(f"{key} landed before {missing}")
        present.add(key)
        digest = digest_of_blob_key(key)
        if digest is not None:
            written[digest] = data
    return problems


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_pointer_lands_before_what_it_names(tmp_path: Path, seed: int) -> None:
    shape = FleetShape(servers=24, groups=3, components=3, deployments=3, stacks=2)
    repo_path = init_fleet(tmp_path, shape)
    inner = MemoryStore(f"order-{seed}")
    store = RecordingStore(inner, seed, workers=8)
    servers = shape.all_servers()
    passes = 0
    with GitRepo.open(repo_path) as repo:
        reconciler = Reconciler(repo, store, clock=lambda: 1_767_225_600.0)

        def converge() -> None:
            nonlocal passes
            for _ in range(10):
                before = set(inner._list(""))
                store.completed.clear()
                outcome = reconciler.run_pass()
                passes += 1
                problems = pointers_landed_after_what_they_name(before, store.completed, inner)
                assert not problems, problems
                if outcome.converged:
                    return
                for server in servers:
                    simulate.answer(inner, server)
            raise AssertionError("did not converge")

        converge()
        change = change_one_component(repo_path)
        converge()
        change_parameter(repo_path, shape)
        converge()
        revert(repo_path, change)
        converge()
    assert passes >= 8
    assert len(inner.list_servers()) == len(servers)
