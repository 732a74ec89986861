"""The agent's on-disk state: what succeeded, what failed, what was running.

Everything lives under the state dir::

    state.json              the AgentState below (atomic replace)
    drift-checks.json       when each applied config was last drift-checked (drift_schedule)
    lock                    held (flock) by the one agent working on this dir
    configs/<hex>.json      verified derived configs, kept while a deployment needs them
    files/<hex>/<name>      a config's attached files and directories
    work/<stack>/<deployment>/   a deployment's working dir (name parts quoted: path_segment)
    outputs/<hex>.<output>  the script hook's output files
    check-outputs/<hex>.<output>  output files of check-mode runs (never read back)
    logs/<stack>/<deployment>.stdout|.stderr   full output of the last run

Every write of ``state.json`` goes to a temporary file that is fsynced, renamed
into place and followed by an fsync of the directory: a crash or a reboot leaves
the old state or the new one, never half of either. A success is recorded only
after its hook succeeded, so a reboot mid-run re-runs the config.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from setpoint.agentshim.errors import StateError
from setpoint.store import DeploymentReport, Manifest, ManifestEntry, StoreError, digest_bytes
from setpoint.store.atomic_files import write_atomic
from setpoint.store.digest import hex_of
from setpoint.store.documents import (
    DRIFT_STATUSES,
    PREFLIGHT_STATUSES,
    CheckReport,
    path_segment,
)

STATE_VERSION = 1


@dataclass(frozen=True)
class Layout:
    """Where things live under the state dir."""

    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def drift_checks(self) -> Path:
        return self.root / "drift-checks.json"

    @property
    def lock_file(self) -> Path:
        return self.root / "lock"

    @property
    def configs(self) -> Path:
        return self.root / "configs"

    @property
    def files(self) -> Path:
        return self.root / "files"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def check_outputs(self) -> Path:
        return self.root / "check-outputs"

    def config_path(self, digest: str) -> Path:
        return self.configs / f"{hex_of(digest)}.json"

    def files_dir(self, digest: str) -> Path:
        return self.files / hex_of(digest)

    def work_dir(self, deployment: str) -> Path:
        return self.work.joinpath(*(path_segment(p) for p in deployment.split("/")))

    def log_path(self, deployment: str, stream: str) -> Path:
        stack, name = deployment.split("/", 1)
        return self.logs / path_segment(stack) / f"{path_segment(name)}.{stream}"


@contextlib.contextmanager
def locked(layout: Layout) -> Iterator[None]:
    """Hold the state dir's lock: two agents on one state dir would run configs twice."""
    layout.root.mkdir(parents=True, exist_ok=True)
    fd = os.open(layout.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise StateError(str(layout.root), f"in use by another agent (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


# -- the state document ---------------------------------------------------------


@dataclass
class Failure:
    """Failed attempts at running ``config`` for ``action`` (reset by a new digest)."""

    config: str
    action: str
    attempts: int
    retry_at: float | None = None
    final: bool = False
    # A custom action's run token, and the manifest's retry count: a new one
    # of either starts over (``setpoint retry`` of a digest that failed for good).
    token: str | None = None
    retry: int = 0


@dataclass
class InFlight:
    """A hook run that started and has not been recorded as finished.

    Found at startup, it means the agent died mid-run: a failed attempt. ``pid``,
    ``pid_start`` and ``boot_id`` identify the hook's process group so that a
    leftover of that run can be killed before the config runs again.
    """

    deployment: str
    config: str
    action: str
    started_at: float
    pid: int | None = None
    pid_start: str | None = None
    boot_id: str | None = None


@dataclass
class DeploymentState:
    """What the agent knows of one deployment.

    ``entry`` is the last manifest entry that named it (its actions, timeout and
    config are what a DELETE uses once it is gone); ``position`` is (generation,
    index) of that entry, which orders removals. ``succeeded`` and ``outputs``
    are the digest and outputs of the last successful run.
    """

    entry: ManifestEntry
    position: tuple[int, int]
    succeeded: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    failure: Failure | None = None
    report: DeploymentReport | None = None
    # The state last applied (SUSPEND succeeded: suspended) and the token of
    # the last custom action that succeeded.
    state: str = "active"
    token: str | None = None


@dataclass
class AgentState:
    generation: int = 0
    manifest: str | None = None
    manifest_doc: Manifest | None = None
    etag: str | None = None
    error: str | None = None
    deployments: dict[str, DeploymentState] = field(default_factory=dict)
    in_flight: InFlight | None = None
    # Set from the last accepted signed pointer; until then the bootstrap's keys.
    trusted_keys: dict[str, str] | None = None
    # The newest capability URLs a verified pointer carried (they outlive the bootstrap's).
    capabilities: dict[str, Any] | None = None
    # Where the fleet moved (a verified pointer's ``moved_to``): overrides
    # --store and --bootstrap from then on.
    location: dict[str, Any] | None = None
    # The check-mode runs reported: the manifest's preflight entries (by name,
    # while listed) and the drift checks of applied configs.
    preflight: dict[str, CheckReport] = field(default_factory=dict)
    drift: dict[str, CheckReport] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "generation": self.generation,
            "manifest": self.manifest,
            "manifest_doc": self.manifest_doc.to_dict() if self.manifest_doc else None,
            "etag": self.etag,
            "error": self.error,
            "deployments": {
                name: {
                    "entry": d.entry.to_dict(),
                    "position": list(d.position),
                    "succeeded": d.succeeded,
                    "outputs": d.outputs,
                    "failure": vars(d.failure) if d.failure else None,
                    "report": d.report.to_dict() if d.report else None,
                    "state": d.state,
                    "token": d.token,
                }
                for name, d in sorted(self.deployments.items())
            },
            "in_flight": vars(self.in_flight) if self.in_flight else None,
            "trusted_keys": self.trusted_keys,
            "capabilities": self.capabilities,
            "location": self.location,
            "preflight": {k: v.to_dict() for k, v in sorted(self.preflight.items())},
            "drift": {k: v.to_dict() for k, v in sorted(self.drift.items())},
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> AgentState:
        if doc.get("version") != STATE_VERSION:
            raise ValueError(f"unknown state version {doc.get('version')!r}")
        deployments = {}
        for name, d in doc["deployments"].items():
            failure = d.get("failure")
            report = d.get("report")
            gen, index = d["position"]
            deployments[name] = DeploymentState(
                entry=ManifestEntry.from_dict(d["entry"]),
                position=(int(gen), int(index)),
                succeeded=d.get("succeeded"),
                outputs=dict(d.get("outputs") or {}),
                failure=Failure(**failure) if failure else None,
                report=DeploymentReport.from_dict(report) if report else None,
                state=str(d.get("state") or "active"),
                token=d.get("token"),
            )
        manifest_doc = doc.get("manifest_doc")
        in_flight = doc.get("in_flight")
        return cls(
            generation=int(doc["generation"]),
            manifest=doc.get("manifest"),
            manifest_doc=Manifest.from_dict(manifest_doc) if manifest_doc else None,
            etag=doc.get("etag"),
            error=doc.get("error"),
            deployments=deployments,
            in_flight=InFlight(**in_flight) if in_flight else None,
            trusted_keys=doc.get("trusted_keys"),
            capabilities=doc.get("capabilities"),
            location=doc.get("location"),
            preflight={
                k: CheckReport.from_dict(v, PREFLIGHT_STATUSES)
                for k, v in (doc.get("preflight") or {}).items()
            },
            drift={
                k: CheckReport.from_dict(v, DRIFT_STATUSES)
                for k, v in (doc.get("drift") or {}).items()
            },
        )


def load_state(layout: Layout) -> AgentState:
    """The saved state, or a fresh one when there is none yet."""
    path = layout.state_file
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return AgentState()
    except OSError as exc:
        raise StateError(str(path), f"cannot read: {exc}") from exc
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        return AgentState.from_dict(doc)
    except (ValueError, KeyError, TypeError, StoreError) as exc:
        raise StateError(str(path), f"unreadable (remove it to start over): {exc}") from exc


def save_state(layout: Layout, state: AgentState) -> None:
    data = json.dumps(state.to_dict(), sort_keys=True, indent=1).encode()
    try:
        write_atomic(layout.state_file, data)
    except OSError as exc:
        raise StateError(str(layout.state_file), f"cannot write: {exc}") from exc


# -- verified configs -------------------------------------------------------------


def cached_config(layout: Layout, digest: str) -> bytes | None:
    """A cached derived config's bytes, re-verified; None when absent or damaged."""
    path = layout.config_path(digest)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if digest_bytes(data) != digest:
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    return data


def cache_config(layout: Layout, digest: str, data: bytes) -> None:
    path = layout.config_path(digest)
    if not path.exists():
        write_atomic(path, data, 0o600)
