"""Convergence recorded in git: one note per deployed commit, under ``refs/notes/setpoint``.

The controller keeps no state of its own, but what a commit *did* to the fleet
is worth keeping next to the commit: ``git log --notes=setpoint`` then shows,
for each deployed commit, whether it converged, how long it took, and which
servers failed. A note holds one record per environment (a commit is usually
deployed to staging, then to production), each as a summary line for people
and a ``setpoint-record:`` line of JSON for programs::

    setpoint production: converged in 12.4s: 3 converged, 0 failed, 0 pending; 0 rollbacks
    setpoint-record: {"commit": "...", "environment": "production", ...}

Records also list the config digests that converged, per deployment: that is
how ``setpoint plan`` recognises a config that is "promoted: identical to
staging at commit X", and a ``git revert`` that brings back configs the fleet
already ran.

Notes are written with dulwich into the repository the controller reads (for
a remote, its mirror; ``push_notes`` sends them back).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dulwich.notes import Notes
from dulwich.refs import Ref
from dulwich.repo import Repo

from setpoint.controller.errors import SetpointError
from setpoint.controller.wording import counted

NOTES_REF = b"refs/notes/setpoint"
DEFAULT_ENV = "default"  # the record name when no --env was given
RECORD_PREFIX = "setpoint-record: "
NOTES_AUTHOR = b"setpoint controller <setpoint@localhost>"

# A record's outcome: still converging, done, or left for a newer commit.
IN_PROGRESS, CONVERGED, FAILED, SUPERSEDED = "in-progress", "converged", "failed", "superseded"


class NotesError(SetpointError):
    """The notes ref could not be read, written or pushed."""


@dataclass
class DeployRecord:
    """What deploying ``commit`` to one environment did."""

    commit: str
    environment: str
    outcome: str
    started_at: float  # when the controller first published this commit (unix seconds)
    finished_at: float | None = None
    # server -> "converged", "failed" or "pending"
    servers: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    rollbacks: int = 0  # deployments rolled back (the keys of ``rolled_back``)
    # deployment -> servers given back the digest that last succeeded on them
    rolled_back: dict[str, list[str]] = field(default_factory=dict)
    # deployment -> config digests the servers ran successfully
    configs: dict[str, list[str]] = field(default_factory=dict)
    superseded_by: str | None = None
    # server -> deployments its agent reports drifted from the digest applied
    # (kept up to date after the commit converged, until another replaces it)
    drifted: dict[str, list[str]] = field(default_factory=dict)

    @property
    def seconds_to_converge(self) -> float | None:
        if self.outcome != CONVERGED or self.finished_at is None:
            return None
        return round(self.finished_at - self.started_at, 3)

    def count(self, state: str) -> int:
        return sum(1 for s in self.servers.values() if s == state)

    def summary(self) -> str:
        if self.outcome == CONVERGED:
            head = f"converged in {self.seconds_to_converge:.1f}s"
        elif self.outcome == FAILED and self.finished_at is not None:
            head = f"failed after {self.finished_at - self.started_at:.1f}s"
        elif self.outcome == SUPERSEDED:
            head = f"superseded by {(self.superseded_by or '?')[:12]}"
        else:
            head = self.outcome
        back = "".join(
            f"; {name} rolled back on {counted(len(servers), 'server')}"
            for name, servers in sorted(self.rolled_back.items())
        )
        drift = f"; {counted(len(self.drifted), 'server')} drifted" if self.drifted else ""
        return (
            f"setpoint {self.environment}: {head}: {self.count('converged')} converged, "
            f"{self.count('failed')} failed, {self.count('pending')} pending; "
            f"{counted(self.rollbacks, 'rollback')}{back}{drift}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "seconds_to_converge": self.seconds_to_converge}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> DeployRecord:
        return cls(
            commit=str(doc["commit"]),
            environment=str(doc["environment"]),
            outcome=str(doc["outcome"]),
            started_at=float(doc["started_at"]),
            finished_at=None if doc.get("finished_at") is None else float(doc["finished_at"]),
            servers={str(k): str(v) for k, v in (doc.get("servers") or {}).items()},
            failures=[str(f) for f in doc.get("failures") or []],
            rollbacks=int(doc.get("rollbacks") or 0),
            rolled_back={
                str(k): [str(s) for s in v] for k, v in (doc.get("rolled_back") or {}).items()
            },
            configs={str(k): [str(d) for d in v] for k, v in (doc.get("configs") or {}).items()},
            superseded_by=doc.get("superseded_by"),
            drifted={str(k): [str(d) for d in v] for k, v in (doc.get("drifted") or {}).items()},
        )


def format_note(records: dict[str, DeployRecord]) -> bytes:
    """The note text: summary lines first (what ``git log`` readers see), then the data."""
    ordered = [records[env] for env in sorted(records)]
    lines = [r.summary() for r in ordered]
    lines += [""] + [RECORD_PREFIX + json.dumps(r.to_dict(), sort_keys=True) for r in ordered]
    return ("\n".join(lines) + "\n").encode("utf-8")


def parse_note(text: bytes) -> dict[str, DeployRecord]:
    """The records in a note; lines that are not records (or are damaged) are ignored."""
    out: dict[str, DeployRecord] = {}
    for line in text.decode("utf-8", "replace").splitlines():
        if not line.startswith(RECORD_PREFIX):
            continue
        try:
            record = DeployRecord.from_dict(json.loads(line[len(RECORD_PREFIX) :]))
        except (ValueError, KeyError, TypeError):
            continue  # someone edited the note by hand: keep what still parses
        out[record.environment] = record
    return out


class Notebook:
    """The setpoint notes of one local repository (a checkout, a bare repo or a mirror)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)

    def _open(self) -> Repo:
        return Repo(self.path)

    def read(self, commit: str) -> dict[str, DeployRecord]:
        with self._open() as repo:
            raw = Notes(repo.object_store, repo.refs).get_note(commit.encode("ascii"), NOTES_REF)
        return parse_note(raw) if raw is not None else {}

    def record(self, commit: str, env: str | None) -> DeployRecord | None:
        return self.read(commit).get(env or DEFAULT_ENV)

    def write(self, record: DeployRecord) -> None:
        """Store ``record`` in its commit's note, keeping the other environments' records."""
        with self._open() as repo:
            notes = Notes(repo.object_store, repo.refs)
            raw = notes.get_note(record.commit.encode("ascii"), NOTES_REF)
            records = parse_note(raw) if raw is not None else {}
            if records.get(record.environment) == record:
                return  # nothing new: no notes commit
            records[record.environment] = record
            notes.set_note(
                record.commit.encode("ascii"),
                format_note(records),
                notes_ref=NOTES_REF,
                author=NOTES_AUTHOR,
                committer=NOTES_AUTHOR,
                message=f"setpoint: {record.summary()}".encode(),
            )

    def all(self) -> Iterator[tuple[str, dict[str, DeployRecord]]]:
        """Every annotated commit with its records (in no particular order)."""
        with self._open() as repo:
            listed = Notes(repo.object_store, repo.refs).list_notes(NOTES_REF)
        for sha, raw in listed:
            yield sha.decode("ascii"), parse_note(raw)

    def notes_head(self) -> str | None:
        with self._open() as repo:
            try:
                return repo.refs[Ref(NOTES_REF)].decode("ascii")
            except KeyError:
                return None


def converged_configs(
    notebook: Notebook, commit_times: dict[str, int] | None = None
) -> dict[str, list[tuple[str, str]]]:
    """digest -> [(environment, commit)] where that config converged, newest commit first.

    ``commit_times`` (sha -> commit time) orders the commits; without it the
    record's finish time does.
    """
    found: dict[str, list[tuple[float, str, str]]] = {}
    for sha, records in notebook.all():
        for record in records.values():
            # ``configs`` only ever lists digests reported COMPLETE, whatever the
            # outcome of the commit as a whole.
            when = float(
                commit_times.get(sha, 0)
                if commit_times
                else (record.finished_at or record.started_at)
            )
            for digests in record.configs.values():
                for digest in digests:
                    found.setdefault(digest, []).append((when, record.environment, sha))
    return {
        digest: [(env, sha) for _when, env, sha in sorted(hits, reverse=True)]
        for digest, hits in found.items()
    }
