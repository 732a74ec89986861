"""What the definitions repository adds to the dashboard (with ``--repo``): the
commit desired, the history of deployed commits, the pending change.

The repository is opened per request and only read; history and plans come
from the functions ``setpoint history`` and ``setpoint plan`` use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from setpoint.controller.definitions.repository import GitError, GitRepo
from setpoint.controller.errors import InvalidDefinitions
from setpoint.controller.gitops.change_plan import plan_change
from setpoint.controller.gitops.environments import record_name
from setpoint.controller.gitops.history import Deployed, deployed_history
from setpoint.controller.gitops.notes import NotesError
from setpoint.controller.rollout.plan import Deployed as StoreDeployed
from setpoint.controller.rollout.plan_format import format_text
from setpoint.store.errors import StoreError

if TYPE_CHECKING:
    from setpoint.controller.dashboard.app import Dashboard

HISTORY_PAGE = 50


def desired_commit(dashboard: Dashboard) -> str | None:
    """The commit the branch names now (None without a repository, or when it
    cannot be read)."""
    if dashboard.repo is None:
        return None
    try:
        with GitRepo.open(dashboard.repo) as repo:
            return repo.resolve(dashboard.branch)
    except GitError:
        return None


@dataclass
class HistoryRows:
    rows: list[Deployed]
    number: int
    more: bool
    error: str | None = None


def history_rows(dashboard: Dashboard, number: int) -> HistoryRows:
    """Page ``number`` of the deployed commits, newest first."""
    if dashboard.repo is None:
        return HistoryRows([], number, False, "no --repo: history is read from its git notes")
    try:
        with GitRepo.open(dashboard.repo) as repo:
            path = repo.path
        shown = deployed_history(
            path, dashboard.branch, record_name(dashboard.env), number * HISTORY_PAGE + 1
        )
    except (GitError, NotesError) as exc:
        return HistoryRows([], number, False, str(exc))
    start = (number - 1) * HISTORY_PAGE
    rows = shown[start : start + HISTORY_PAGE]
    return HistoryRows(rows, number, len(shown) > start + HISTORY_PAGE)


@dataclass
class Pending:
    base: str | None
    head: str | None
    summary: str = ""
    text: str = ""
    changes: bool = False
    error: str | None = None


def pending_plan(dashboard: Dashboard, deployed: StoreDeployed, branch: str) -> Pending:
    """The plan from what is deployed to ``branch``, as ``setpoint plan <branch>
    --store`` prints it. (``StoreDeployed``: what the store's pointers name now,
    not a deployed commit of the notes' history.)"""
    base = deployed.commit
    if dashboard.repo is None:
        return Pending(base, None, error="no --repo: the pending change needs the definitions")
    try:
        with GitRepo.open(dashboard.repo) as repo:
            plan = plan_change(
                repo, deployed, branch, dashboard.env, dashboard.store, dashboard.render_secret
            )
    except InvalidDefinitions as exc:
        return Pending(base, exc.commit, error=str(exc))
    except (GitError, StoreError, NotesError) as exc:
        return Pending(base, None, error=str(exc))
    return Pending(base, plan.head, plan.summary(), format_text(plan), plan.has_changes)
