"""Helpers for the agent tests: publish the way the controller does.

Publishing follows the store's order: derived config blobs, then the manifest
blob, then the pointer (``write_pointer`` with the pointer last read).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from setpoint.store import Manifest, ManifestEntry, Pointer, Store
from setpoint.store.signing import SigningKey

SERVER = "web1"
START = 1_700_000_000.0


def script(body: str, **extra: Any) -> dict[str, Any]:
    """A derived config of group ``script``: one script for every action."""
    doc: dict[str, Any] = {
        "name": "app",
        "group": "script",
        "config": body,
        "inputs": [],
        "outputs": [],
        "options": {},
    }
    doc.update(extra)
    return doc


def component(configs: Iterable[tuple[list[str], str, Any]], **extra: Any) -> dict[str, Any]:
    """A derived config of group ``component``: (actions, tool, config) per entry."""
    doc: dict[str, Any] = {
        "name": "app",
        "group": "component",
        "config": {
            "configs": [
                {"actions": actions, "tool": tool, "config": config}
                for actions, tool, config in configs
            ]
        },
        "inputs": [],
        "outputs": [],
        "options": {},
    }
    doc.update(extra)
    return doc


@dataclass
class Deploy:
    derived: dict[str, Any]
    actions: tuple[str, ...] = ("CREATE", "UPDATE", "DELETE")
    timeout: float = 10.0
    state: str = "active"
    run: tuple[str, str] | None = None
    retry: int = 0


@dataclass
class Publisher:
    """Publishes manifests for one server as the controller will."""

    store: Store
    server: str = SERVER
    current: Pointer | None = None
    digests: dict[str, str] = field(default_factory=dict)
    # When set, pointers are signed the way the controller signs them.
    signing_key: SigningKey | None = None
    trust: dict[str, str] | None = None

    def publish(
        self,
        deployments: Mapping[str, dict[str, Any] | Deploy],
        bundles: Mapping[str, str] | None = None,
        generation: int | None = None,
        preflight: Mapping[str, dict[str, Any] | Deploy] | None = None,
    ) -> Pointer:
        """``deployments`` to apply and ``preflight`` entries to check only."""
        entries = [self._entry(name, spec) for name, spec in deployments.items()]
        checks = tuple(self._entry(name, spec) for name, spec in (preflight or {}).items())
        manifest = Manifest(tuple(entries), dict(bundles or {}), checks)
        manifest_digest = self.store.put_json_blob(manifest.to_dict())
        gen = generation if generation is not None else self.generation + 1
        pointer = Pointer(self.server, gen, manifest_digest, "c0ffee", "2024-01-01T00:00:00Z")
        if self.signing_key is not None:
            pointer = sign(pointer, self.signing_key, self.trust)
        # An explicit generation may go back (anti-rollback tests): write as if first.
        self.store.write_pointer(pointer, self.current if generation is None else None)
        self.current = pointer
        return pointer

    def _entry(self, name: str, spec: dict[str, Any] | Deploy) -> ManifestEntry:
        deploy = spec if isinstance(spec, Deploy) else Deploy(spec)
        digest = self.store.put_json_blob(deploy.derived)
        self.digests[name] = digest
        return ManifestEntry(
            name,
            digest,
            deploy.actions,
            deploy.timeout,
            state=deploy.state,
            run=deploy.run,
            retry=deploy.retry,
        )

    @property
    def generation(self) -> int:
        return self.current.generation if self.current else 0


def sign(pointer: Pointer, key: SigningKey, trust: dict[str, str] | None = None) -> Pointer:
    unsigned = replace(pointer, key=key.name, trust=trust, signature=None)
    return replace(unsigned, signature=key.sign(unsigned.payload()))


class Clock:
    """The injected clock: time only moves when a test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []
