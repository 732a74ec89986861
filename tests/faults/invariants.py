"""The store invariants a fault must never break, checked on the store directly.

- No pointer names a missing (or corrupt) manifest, config or attached file:
  publication is blobs, then manifest, then pointer.
- Every pointer verifies with the fleet's key.
- A server's pointer generation never goes down from one look to the next.

``Invariants`` remembers the generations it saw, so one instance is checked
after every pass (or every kill) of a run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from setpoint.store.base import Store
from setpoint.store.documents import Manifest
from setpoint.store.errors import StoreError
from setpoint.store.signing import PublicKey, SignatureError, verify_signed


@dataclass
class Invariants:
    store: Store
    """The store as it is, read without faults."""
    key: PublicKey | None
    """The fleet's key; None: pointers are unsigned."""
    generations: dict[str, int] = field(default_factory=dict)
    commits: Counter[str] = field(default_factory=Counter)
    """How many pointers named each commit at the last look."""
    # Blobs already found whole: blobs never change, so each is read once per run.
    _whole: set[str] = field(default_factory=set)

    def _check_blob(self, digest: str, what: str, problems: list[str]) -> None:
        if digest in self._whole:
            return
        try:
            self.store.get_blob(digest)  # re-hashed: DigestMismatch if corrupt
            self._whole.add(digest)
        except StoreError as exc:
            problems.append(f"{what} {digest}: {exc}")

    def _check_manifest(self, server: str, digest: str, problems: list[str]) -> None:
        try:
            manifest = Manifest.from_dict(self.store.get_json_blob(digest, "manifest"))
        except StoreError as exc:
            problems.append(f"{server}: manifest {digest}: {exc}")
            return
        for entry in manifest.deployments:
            self._check_blob(entry.config, f"{server}: config of {entry.name}", problems)
            if entry.config not in self._whole:
                continue
            config = self.store.get_json_blob(entry.config, "config")
            for ref in config.get("files", {}).values():
                zipped = manifest.bundles.get(ref["digest"], ref["digest"])
                self._check_blob(zipped, f"{server}: file of {entry.name}", problems)

    def violations(self) -> list[str]:
        """Every invariant broken now (and generations that went down since the last look)."""
        problems: list[str] = []
        trusted = {self.key.name: self.key} if self.key is not None else {}
        self.commits.clear()
        for server in self.store.list_servers():
            try:
                pointer = self.store.read_pointer(server)
            except StoreError as exc:
                problems.append(f"{server}: unreadable pointer: {exc}")
                continue
            if pointer is None:
                continue
            self.commits[pointer.commit] += 1
            before = self.generations.get(server, 0)
            if pointer.generation < before:
                problems.append(
                    f"{server}: generation went down from {before} to {pointer.generation}"
                )
            self.generations[server] = max(before, pointer.generation)
            if self.key is not None:
                try:
                    verify_signed(trusted, pointer.key, pointer.signature, pointer.payload())
                except SignatureError as exc:
                    problems.append(f"{server}: pointer does not verify: {exc.reason}")
            self._check_manifest(server, pointer.manifest, problems)
        return problems

    def check(self) -> None:
        problems = self.violations()
        assert not problems, "store invariants broken:\n" + "\n".join(problems[:20])
