"""``setpoint history``: deployed commits, newest first, and which commit each server runs.

Read from the notes (``controller.notes``) of the commits on a branch, so it
works offline from any clone that fetched ``refs/notes/setpoint``. With a
store, what each server runs now comes from its pointer and report instead of
from the last record that saw it converge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dulwich.objects import Commit, ObjectID
from dulwich.repo import Repo

from setpoint.controller.definitions.repository import GitRepo
from setpoint.controller.gitops.notes import DeployRecord, Notebook
from setpoint.store.base import Store
from setpoint.store.timestamps import format_timestamp


@dataclass(frozen=True)
class Deployed:
    commit: str
    author: str
    subject: str
    time: str
    record: DeployRecord

    def to_dict(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "author": self.author,
            "subject": self.subject,
            "time": self.time,
            "outcome": self.record.outcome,
            "seconds_to_converge": self.record.seconds_to_converge,
            "record": self.record.to_dict(),
        }


def deployed_history(
    repo_path: str, rev: str, env_name: str, limit: int | None = None
) -> list[Deployed]:
    """Commits reachable from ``rev`` that were deployed to ``env_name``, newest first."""
    notebook = Notebook(repo_path)
    annotated = {sha: records[env_name] for sha, records in notebook.all() if env_name in records}
    if not annotated:
        return []
    with GitRepo.open(repo_path) as git:
        head = git.resolve(rev)
    out: list[Deployed] = []
    with Repo(repo_path) as repo:
        for entry in repo.get_walker(include=[ObjectID(head.encode("ascii"))]):
            commit: Commit = entry.commit
            sha = commit.id.decode("ascii")
            if sha not in annotated:
                continue
            message = commit.message.decode("utf-8", "replace")
            out.append(
                Deployed(
                    commit=sha,
                    author=commit.author.decode("utf-8", "replace"),
                    subject=message.split("\n", 1)[0].strip(),
                    time=format_timestamp(commit.commit_time, digits=0),
                    record=annotated[sha],
                )
            )
            if limit is not None and len(out) >= limit:
                break
    return out


def servers_now(history: list[Deployed], store: Store | None = None) -> dict[str, str]:
    """server -> the commit it runs now ("<sha> (converging)" while it catches up)."""
    out: dict[str, str] = {}
    if store is not None:
        for server in store.list_servers():
            pointer = store.read_pointer(server)
            if pointer is None:
                continue
            report = store.read_report(server)
            done = (
                report is not None
                and report.generation >= pointer.generation
                and all(d.status == "COMPLETE" for d in report.deployments.values())
            )
            out[server] = pointer.commit if done else f"{pointer.commit} (converging)"
        return out
    for deployed in history:  # newest first: the first record that saw it converge wins
        for server, state in deployed.record.servers.items():
            if state == "converged":
                out.setdefault(server, deployed.commit)
    return dict(sorted(out.items()))
