"""The plan of a change: what moving the fleet from BASE to HEAD would do.

``setpoint plan`` prints it and ``setpoint serve`` shows it (the pending
change, from what the store deployed to a branch); both make it here, so the
page and the command line always agree.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from setpoint.controller.converge.status import deployed_state, fleet_status
from setpoint.controller.definitions.loader import load_model
from setpoint.controller.definitions.repository import GitError, GitRepo, RevisionNotFound
from setpoint.controller.errors import InvalidDefinitions, Problem
from setpoint.controller.gitops.notes import Notebook, converged_configs
from setpoint.controller.rollout.ledger import read_ledger
from setpoint.controller.rollout.plan import (
    EMPTY_TREE,
    Deployed,
    Elsewhere,
    Plan,
    Retries,
    blobs_to_upload,
    make_plan,
    retries_to_publish,
)
from setpoint.store.documents import Manifest, Report
from setpoint.store.errors import StoreError

if TYPE_CHECKING:
    from setpoint.controller.definitions.model import Model
    from setpoint.store.base import Store


def base_commit(repo: GitRepo, base_rev: str) -> str:
    """The commit BASE names, or the empty tree when BASE goes back past the first commit.

    The first commit of a repository has no parent, so ``HEAD~1`` (what a CI
    job plans against) names nothing: everything is new, and the commit is
    planned against the empty tree, as when BASE is the empty tree itself. A
    BASE whose name (before ``~``/``^``) names nothing is still an error.
    """
    if base_rev == EMPTY_TREE:
        return EMPTY_TREE
    try:
        return repo.resolve(base_rev)
    except RevisionNotFound:
        name = re.sub(r"([~^][0-9]*)+$", "", base_rev)
        if name == base_rev:
            raise
        repo.resolve(name)  # a name that names nothing is an error, not an empty fleet
        return EMPTY_TREE  # its ancestry runs out: the first commit came after it


def _retries_to_publish(store: Store, head: Model) -> Retries:
    """``setpoint retry`` counts in the store's ledger that no pointer carries yet.

    Read as ``setpoint status`` reads them, unverified: the plan only shows
    them. A server whose pointer or manifest cannot be read is left out.
    """
    in_use = head.servers_in_use()

    def published(server: str) -> Manifest | None:
        if server not in in_use:
            return None
        try:
            pointer = store.read_pointer(server)
            if pointer is None:
                return None
            return Manifest.from_dict(store.get_json_blob(pointer.manifest, "manifest"))
        except StoreError:
            return None  # one bad document, one server

    return retries_to_publish(read_ledger(store).retries, published)


def deployed(store: Store) -> Deployed:
    """What ``store`` deployed: its newest pointer's commit, and who has not
    converged on their pointers yet (read as ``setpoint status`` reads them)."""
    return deployed_state(fleet_status(store))


def deployed_commit(repo: GitRepo, commit: str | None) -> str:
    """The commit a store deployed, as BASE; the empty tree when nothing is."""
    if commit is None:
        return EMPTY_TREE
    try:
        return repo.resolve(commit)
    except RevisionNotFound:
        raise GitError(
            f"the store's pointers name commit {commit}, which {repo.path} does not have "
            "(fetch it, or give BASE)"
        ) from None


def plan_change(
    repo: GitRepo,
    base: str | Deployed,
    head_rev: str,
    env: str | None,
    store: Store | None,
    render_secret: bytes | None = None,
) -> Plan:
    """The plan from ``base`` to ``head_rev`` of ``repo``, with the outputs,
    retries and blobs of ``store`` when given. ``base`` is a revision, or what
    a store deployed (``deployed``): then the plan is made against its commit
    and says who has not converged on it yet. Raises InvalidDefinitions when
    HEAD is invalid; an invalid BASE plans as from an empty fleet.
    ``render_secret`` is the one Heat RandomString values derive from."""
    head = load_model(repo.tree(head_rev), env=env, render_secret=render_secret)
    if isinstance(base, Deployed):
        base_sha = deployed_commit(repo, base.commit)
    else:
        base_sha = base_commit(repo, base)
    base_model: Model | None = None
    base_problems: list[Problem] = []
    if base_sha != EMPTY_TREE:
        try:
            base_model = load_model(repo.tree(base_sha), env=env, render_secret=render_secret)
        except InvalidDefinitions as exc:
            # Nothing was deployed from an invalid commit: plan as from an empty fleet.
            base_problems = exc.problems
    elsewhere: Elsewhere = {}
    if isinstance(base, Deployed):
        elsewhere = _elsewhere(repo, base, base_sha, head, base_model, env, render_secret)
    history = converged_configs(Notebook(repo.path))
    others = [m for m in elsewhere.values() if m is not None]
    models = [head, *([base_model] if base_model else []), *others]
    reports = _reports(store, models) if store is not None else {}
    retries = _retries_to_publish(store, head) if store is not None else None
    plan = make_plan(
        base_model, head, reports, history, base_sha, base_problems, retries, elsewhere
    )
    if store is not None:
        plan.uploads = blobs_to_upload(head, reports, store.find_missing)
    if isinstance(base, Deployed):
        plan.deployed = base
    return plan


def _elsewhere(
    repo: GitRepo,
    deployed: Deployed,
    base_sha: str,
    head: Model,
    base: Model | None,
    env: str | None,
    render_secret: bytes | None,
) -> Elsewhere:
    """The servers not deployed from ``base_sha`` (the newest pointers' commit),
    with the model of the commit their own pointer names: None for a server
    with no pointer (nothing deployed there yet) or deployed from a commit
    with invalid definitions (the controller never published one). Each
    distinct commit is loaded once; mid-rollout there are two or three."""
    servers = head.servers_in_use() | set(deployed.pointers)
    if base is not None:
        servers |= base.servers_in_use()
    models: dict[str, Model | None] = {}
    out: Elsewhere = {}
    for server in sorted(servers):
        commit = deployed.pointers.get(server)
        if commit is None:
            out[server] = None
            continue
        sha = deployed_commit(repo, commit)
        if sha == base_sha:
            continue
        if sha not in models:
            try:
                models[sha] = load_model(repo.tree(sha), env=env, render_secret=render_secret)
            except InvalidDefinitions:
                models[sha] = None
        out[server] = models[sha]
    return out


def _reports(store: Store, models: list[Model]) -> dict[str, Report]:
    """The reports of the servers the commits deploy to (their outputs fill in
    what only agents report)."""
    servers = {s for model in models for s in model.servers_in_use()}
    reports = {}
    for server in sorted(servers):
        report = store.read_report(server)
        if report is not None:
            reports[server] = report
    return reports
