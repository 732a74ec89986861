"""``setpoint reconcile``, ``status`` and ``retry``: publish, watch the fleet
converge, and lift the quarantine of a failed digest."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import structlog

from setpoint.controller.cli import replicas
from setpoint.controller.cli.common import (
    FAILED,
    OK,
    PLAN_MOVED,
    TIMED_OUT,
    add_command,
    env_arg,
    invalid,
    pointer_policy,
    print_json,
    signing_args,
    trust_args,
    tuning_args,
)
from setpoint.controller.definitions.repository import GitRepo
from setpoint.controller.errors import InvalidDefinitions

log = structlog.get_logger("setpoint.cli")


def add_parsers(sub: Any) -> None:
    p = add_command(
        sub,
        "reconcile",
        cmd_reconcile,
        help="publish a branch's desired state and converge the fleet",
        description="Render the branch head with the outputs reported so far, publish blobs, "
        "manifests and then pointers for servers whose manifest changed. Idempotent: a pass "
        "with nothing new writes nothing. Deployments whose inputs wait for outputs not yet "
        "reported are published on a later pass.",
        epilog="exit codes with --wait: 0 converged, 1 a deployment failed, 2 timed out, "
        "3 invalid definitions (nothing published), 4 repository or store unusable, or "
        "signed pointers it cannot verify, 5 another controller holds the store's lease "
        "(nothing published), 6 --plan: the branch head or the store's pointers moved since "
        "that plan was made (nothing published).",
    )
    p.add_argument("--repo", default=".", help="definitions repository (default: .)")
    p.add_argument("--store", required=True, help="store URL: file:///path, a path, memory://")
    p.add_argument("--branch", default="HEAD", help="branch to deploy (default: HEAD)")
    env_arg(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="one pass, then exit (the default)")
    mode.add_argument("--wait", action="store_true", help="repeat passes until converged")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds --wait waits (600)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between passes (1)")
    p.add_argument("--json", action="store_true", help="print the last pass as JSON")
    p.add_argument(
        "--notes",
        action="store_true",
        help="record each pass's outcome in the commit's git note under refs/notes/setpoint "
        "of --repo, as 'setpoint watch' does (git log --notes=setpoint, setpoint history)",
    )
    p.add_argument(
        "--plan",
        metavar="FILE",
        help="publish only if the branch head and the store's pointers are still what "
        "'setpoint plan --out FILE' was made from (else exit 6, nothing published)",
    )
    replicas.reconcile_args(p)
    tuning_args(p)
    signing_args(p)
    trust_args(p)

    p = add_command(
        sub,
        "status",
        cmd_status,
        help="show desired against reported state per server",
        description="Read pointers, manifests and reports from the store and show, per server "
        "and deployment: desired digest, reported digest, status, last action, reported/"
        "published generation, commit and the age of the last run.",
    )
    p.add_argument("--store", required=True, help="store URL or path")
    p.add_argument("--json", action="store_true", help="print as JSON")
    tuning_args(p, rounds=False)

    p = add_command(
        sub,
        "retry",
        cmd_retry,
        help="lift the quarantine of a deployment's failed digest",
        description="A digest that failed (or timed out) on a server is quarantined: the "
        "controller does not publish it there again, and its rollout stays halted or rolled "
        "back, until a commit renders another digest or this command lifts it. The next "
        "reconcile pass publishes it again and the agent tries it once more.",
    )
    p.add_argument("deployment", help="<stack>/<deployment>")
    p.add_argument("--server", help="only on this server (default: every server)")
    p.add_argument("--store", required=True, help="store URL or path")
    p.add_argument(
        "--signing-key",
        default=os.environ.get("SETPOINT_SIGNING_KEY"),
        metavar="FILE",
        help="the controller's key (default: $SETPOINT_SIGNING_KEY): a signed ledger is "
        "rewritten signed, or the controller would treat it as lost",
    )


def cmd_reconcile(args: argparse.Namespace) -> int:
    from setpoint.store.url import open_store

    store = open_store(args.store)
    try:
        with replicas.reconcile_lease(args, store) as lease:
            return _reconcile_in(args, store, lease)
    except (replicas.LeaseBusy, replicas.LeaseLost) as exc:
        return replicas.busy(exc)


def _reconcile_in(args: argparse.Namespace, store: Any, lease: Any) -> int:
    from setpoint.controller.gitops.environments import EnvironmentReconciler

    with GitRepo.open(args.repo) as repo:
        rev = args.branch
        if args.plan:
            from setpoint.controller.rollout.saved_plan import PlanMoved, check_saved_plan

            try:  # under the lease: no other controller moves a pointer after this
                rev = check_saved_plan(args.plan, repo.resolve(args.branch), args.env, store)
            except PlanMoved as exc:
                print(f"setpoint: {exc}", file=sys.stderr)
                return PLAN_MOVED
        reconciler = EnvironmentReconciler(
            repo,
            store,
            rev=rev,
            policy=pointer_policy(args),
            converge_rounds=args.converge_rounds,
            unreachable_after=args.unreachable_after,
            env=args.env,
            lease=lease,
        )
        if reconciler.policy.signing_key is None:
            log.warning("unsigned_pointers", hint="give --signing-key; see 'setpoint keygen'")
        recorder = None
        if args.notes:
            from setpoint.controller.gitops.notes import Notebook
            from setpoint.controller.gitops.recording import Recorder, deployed_commit

            recorder = Recorder(
                Notebook(repo.path),
                args.env,
                reconciler.clock,
                current=deployed_commit(reconciler.store),
            )
        return _reconcile(args, reconciler, recorder)


def _reconcile(args: argparse.Namespace, reconciler: Any, recorder: Any = None) -> int:
    from setpoint.controller.converge.reconcile import wait_for_convergence

    def record(outcome: Any) -> None:
        if recorder is not None:
            from setpoint.controller.gitops.notes import NotesError

            try:
                recorder.update(outcome)
            except (NotesError, OSError) as exc:
                log.warning("notes_write_failed", error=str(exc))

    try:
        if not args.wait:
            outcome = reconciler.run_pass()
            record(outcome)
            code = OK
        else:
            from setpoint.controller.cli.progress import Progress

            shown = Progress()

            def progress(outcome: Any) -> None:
                record(outcome)
                replicas.keep(reconciler.lease)
                if not args.json:
                    shown(outcome)

            try:
                code, outcome = wait_for_convergence(
                    reconciler, args.timeout, args.interval, progress
                )
            finally:
                shown.close()
    except InvalidDefinitions as exc:
        return invalid(exc, args.json)
    if args.json:
        print_json({**outcome.to_dict(), "exit_code": code})
    else:
        _print_outcome(args, outcome, code)
    return code


def _print_outcome(args: argparse.Namespace, outcome: Any, code: int) -> None:
    if not args.wait:
        print(outcome.summary())  # --wait drew its progress as it went
    for w in outcome.waiting:
        print(f"  waiting: {w}")
    for f in outcome.failed:
        print(f"  FAILED: {f}")
    if code == TIMED_OUT:
        print(f"timed out after {args.timeout:g}s", file=sys.stderr)


def cmd_status(args: argparse.Namespace) -> int:
    from setpoint.controller.converge.status import fleet_status, format_table, rollouts_summary
    from setpoint.controller.fleet.move import move_status
    from setpoint.controller.rollout.ledger import read_ledger
    from setpoint.store.lease import lease_status
    from setpoint.store.url import open_store

    store = open_store(args.store)
    statuses = fleet_status(store, unreachable_after=args.unreachable_after)
    ledger = read_ledger(store)
    moved = move_status(store)
    controllers = lease_status(store, time.time())
    if args.json:
        print_json(
            {
                "servers": [s.to_dict() for s in statuses],
                **ledger_json(ledger.to_dict()),
                "move": moved.to_dict() if moved else None,
                "controllers": controllers.to_dict() if controllers else None,
            }
        )
    elif not statuses:
        print("no servers in this store yet")
        if controllers:
            print("\n".join(controllers.lines()))
    else:
        print(format_table(statuses))
        lines = rollouts_summary(ledger) + (moved.lines() if moved else [])
        lines += controllers.lines() if controllers else []
        if lines:
            print("\n" + "\n".join(lines))
    return OK


def ledger_json(doc: dict[str, Any]) -> dict[str, Any]:
    """The parts of the controller's ledger that ``status --json`` shows."""
    return {k: doc[k] for k in ("rollouts", "quarantine", "waiting")}


def cmd_retry(args: argparse.Namespace) -> int:
    from setpoint.controller.rollout.ledger import lift_quarantine
    from setpoint.store.signing import SigningKey
    from setpoint.store.url import open_store

    name = args.deployment
    key = SigningKey.load(args.signing_key) if args.signing_key else None
    lifted = lift_quarantine(open_store(args.store), name, args.server, key)
    if not lifted:
        where = f" on {args.server}" if args.server else ""
        print(f"setpoint: nothing quarantined for {name}{where}", file=sys.stderr)
        return FAILED
    print(f"lifted the quarantine of {name} on {', '.join(lifted)}; the next pass publishes it")
    return OK
