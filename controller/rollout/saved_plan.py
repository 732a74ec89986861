"""A plan saved for review (``setpoint plan --out FILE``), applied only if nothing moved.

``setpoint reconcile --plan FILE`` publishes only what the reviewed plan showed:
the saved plan records what it was made from (the commit planned, the
environment, and a digest of the version of every pointer in the store), and
reconcile refuses to publish when any of them moved since. A pointer moves
when another reconcile, a ``setpoint retry`` pass, a rollback or a move
rewrote it: the plan read before is then no longer what would go out.
Reports are left out: agents rewrite them all the time, and the plan does not
depend on them except through outputs, which the commit and pointers pin.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from setpoint.controller.errors import SetpointError
from setpoint.store.base import AGENTS, Store
from setpoint.store.digest import digest_json

SAVED_PLAN_FORMAT = "setpoint-saved-plan/1"


@dataclass(frozen=True)
class PlanBasis:
    """What a plan was made from; equal bases mean the plan still holds."""

    head: str  # the commit planned
    environment: str | None
    pointers: str  # digest of every pointer's version in the store


class SavedPlanError(SetpointError):
    """A saved plan that cannot be read."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"saved plan {path}: {reason}")
        self.path = path
        self.reason = reason


class PlanMoved(SetpointError):
    """What the plan was made from moved since: publishing it would not publish
    what was reviewed."""

    def __init__(self, what: str, planned: str | None, now: str | None) -> None:
        values = f" (planned {planned or '-'}, now {now or '-'})" if planned or now else ""
        super().__init__(
            f"the {what} moved since the plan was made{values}: nothing published; make a new plan"
        )
        self.what = what
        self.planned = planned
        self.now = now


def pointers_digest(store: Store) -> str:
    """One digest of the version of every pointer in ``store`` (one listing)."""
    versions = store.list_versions(AGENTS)
    pointers = sorted((k, v) for k, v in versions.items() if k.endswith("/pointer"))
    return digest_json(pointers)


def save_plan(path: str | Path, plan: dict[str, Any], basis: PlanBasis) -> None:
    doc = {
        "format": SAVED_PLAN_FORMAT,
        "basis": {
            "head": basis.head,
            "environment": basis.environment,
            "pointers": basis.pointers,
        },
        "plan": plan,
    }
    Path(path).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def load_basis(path: str | Path) -> PlanBasis:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SavedPlanError(str(path), str(exc)) from exc
    if not isinstance(doc, dict) or doc.get("format") != SAVED_PLAN_FORMAT:
        raise SavedPlanError(str(path), f"not a {SAVED_PLAN_FORMAT} document")
    basis = doc.get("basis")
    if (
        not isinstance(basis, dict)
        or not isinstance(basis.get("head"), str)
        or not isinstance(basis.get("pointers"), str)
        or not isinstance(basis.get("environment"), (str, type(None)))
    ):
        raise SavedPlanError(str(path), "no basis {head, environment, pointers}")
    return PlanBasis(basis["head"], basis["environment"], basis["pointers"])


def check_saved_plan(path: str | Path, head: str, environment: str | None, store: Store) -> str:
    """``reconcile --plan FILE``: raise ``PlanMoved`` unless ``head`` (the commit
    about to be published), the environment and the store's pointers are what
    the saved plan was made from; returns the commit planned, which reconcile
    then deploys on every pass (a branch that moves during ``--wait`` does not
    carry an unreviewed commit along)."""
    saved = load_basis(path)
    check_basis(saved, PlanBasis(head, environment, pointers_digest(store)))
    return saved.head


def check_basis(saved: PlanBasis, now: PlanBasis) -> None:
    """Raise ``PlanMoved`` naming the first thing that moved since ``saved``."""
    if saved.environment != now.environment:
        raise PlanMoved("environment", saved.environment, now.environment)
    if saved.head != now.head:
        raise PlanMoved("branch head", saved.head[:12], now.head[:12])
    if saved.pointers != now.pointers:
        raise PlanMoved("store (its pointers)", None, None)
