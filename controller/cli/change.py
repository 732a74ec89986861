"""``setpoint plan``, ``watch`` and ``history``: change control through git."""

from __future__ import annotations

import argparse
import sys
import threading
from typing import TYPE_CHECKING, Any

from setpoint.controller.cli import observing, replicas
from setpoint.controller.cli.common import (
    INVALID,
    OK,
    UNAVAILABLE,
    add_command,
    env_arg,
    open_existing_store,
    open_pass_store,
    pointer_policy,
    print_json,
    render_secret,
    signing_args,
    store_workers_arg,
    trust_args,
    tuning_args,
)
from setpoint.controller.cli.stopping import finish_pass_on_sigterm
from setpoint.controller.definitions.repository import GitError, GitRepo
from setpoint.controller.errors import InvalidDefinitions, SetpointError
from setpoint.store.errors import StoreError

if TYPE_CHECKING:
    from setpoint.controller.rollout.plan import Deployed, Plan

# `setpoint plan --exit-code`: what a CI job branches on.
PLAN_NO_CHANGES, PLAN_ERROR, PLAN_CHANGES = 0, 1, 2


def add_parsers(sub: Any) -> None:
    p = add_command(
        sub,
        "plan",
        cmd_plan,
        help="what merging HEAD would change, offline",
        description="Render BASE and HEAD offline and show, per deployment and server, CREATE, "
        "UPDATE, REPLACE, DELETE or unchanged, with old and new digests and a diff of the "
        "config text and input values (secret inputs masked). Outputs that only agents report "
        "are 'known after apply' unless --store gives them. Invalid definitions in HEAD are "
        "reported as by 'setpoint validate' and fail the plan.",
        epilog="exit codes with --exit-code: 0 no changes, 2 changes, 1 error (invalid HEAD, "
        "unusable repository or store). Without it: 0, 3 invalid HEAD, 4 unusable.",
    )
    p.add_argument(
        "revs",
        nargs="*",
        metavar="REV",
        help="BASE HEAD, BASE..HEAD, or REV (default HEAD): against its parent, or with "
        "--store against what the store deployed",
    )
    p.add_argument("--repo", default=".", help="definitions repository (default: .)")
    env_arg(p)
    p.add_argument("--store", help="take reported outputs from this store; count uploads")
    p.add_argument(
        "--format", choices=("text", "markdown", "json"), default="text", help="output format"
    )
    p.add_argument("--exit-code", action="store_true", help="0 no changes, 2 changes, 1 error")
    p.add_argument("--no-diff", action="store_true", help="text: leave the diffs out")
    p.add_argument(
        "--out",
        metavar="FILE",
        help="also save the plan, with what it was made from (HEAD, the store's pointers; "
        "needs --store), for 'setpoint reconcile --plan FILE'",
    )
    p.add_argument(
        "--max-size",
        type=int,
        default=None,
        metavar="CHARS",
        help="markdown: cut diffs beyond this size, with a note (default: 60000)",
    )
    p.add_argument(
        "--preflight",
        action="store_true",
        help="also check HEAD's changes on every server (needs --store): publish them as "
        "preflight entries beside what each server runs, nothing applied, and show what "
        "each tool says would change; exits 1 when a check fails or does not answer",
    )
    p.add_argument(
        "--preflight-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long to wait for the servers' answers (default: 120)",
    )
    signing_args(p)  # with --render-secret
    trust_args(p)
    replicas.reconcile_args(p)

    p = add_command(
        sub,
        "watch",
        cmd_watch,
        help="follow a branch and deploy each new commit (the controller daemon)",
        description="Follow BRANCH of a local repository (watched for ref changes) or of a "
        "remote one (https, ssh, git or file URL, fetched every --fetch-interval seconds into "
        "a mirror the controller owns) and deploy its head: a reconcile pass every --interval "
        "seconds, moving to the newest acceptable head at the next pass. A force push is "
        "refused unless --allow-force-push; with --require-signed, only heads signed by a key "
        "in --keyring deploy. The outcome of each deployed commit is recorded as a git note "
        "under refs/notes/setpoint (git log --notes=setpoint). --metrics-port serves "
        "Prometheus metrics; events (rollout started, batch failed, rollback, commit "
        "converged, agent unreachable) go to --notify webhooks and the commit's "
        "notifications.yaml, each once, recorded in the store's ledger. SIGTERM finishes the "
        "pass in flight, releases the lease (a standby takes over at once), sends the queued "
        "notifications and exits 0; a second SIGTERM or Ctrl-C stops at once.",
    )
    p.add_argument("--repo", required=True, help="repository path or URL to follow")
    p.add_argument(
        "--branch",
        default="HEAD",
        help="branch to deploy (default: HEAD, the branch it names, as for reconcile)",
    )
    p.add_argument("--store", required=True, help="store URL: file:///path, a path, memory://")
    env_arg(p)
    p.add_argument("--interval", type=float, default=1.0, help="seconds between passes (1)")
    p.add_argument(
        "--fetch-interval", type=float, default=10.0, help="remote: seconds between fetches (10)"
    )
    p.add_argument("--mirror", help="remote: the mirror directory (default: under ~/.cache)")
    p.add_argument("--allow-force-push", action="store_true", help="deploy non-fast-forwards")
    p.add_argument(
        "--require-signed", action="store_true", help="deploy only heads signed by --keyring"
    )
    p.add_argument("--keyring", help="OpenPGP keyring (gpg --export) of the allowed signers")
    p.add_argument("--push-notes", action="store_true", help="remote: push the notes back")
    p.add_argument("--once", action="store_true", help="one pass, then exit")
    p.add_argument("--passes", type=int, help="stop after this many passes")
    replicas.watch_args(p)
    observing.notify_args(p)
    observing.metrics_args(p)
    tuning_args(p)
    signing_args(p)
    store_workers_arg(p)
    trust_args(p)

    p = add_command(
        sub,
        "history",
        cmd_history,
        help="deployed commits, newest first, and what each server runs",
        description="List the commits of BRANCH that were deployed (read from the notes under "
        "refs/notes/setpoint), newest first: author, subject, outcome, time to converge; then "
        "which commit each server runs now (from --store if given, else from the notes).",
    )
    p.add_argument("--repo", default=".", help="repository, or a watch mirror (default: .)")
    p.add_argument("--branch", default="HEAD", help="branch to read (default: HEAD)")
    env_arg(p)
    p.add_argument("--store", help="what servers run now, from this store")
    p.add_argument("--limit", type=int, help="at most this many commits")
    p.add_argument("--json", action="store_true", help="print as JSON")


def _revs(revs: list[str], store: bool) -> tuple[str | None, str]:
    """(BASE, HEAD) from ``BASE HEAD``, ``BASE..HEAD``, ``BASE..``, ``REV`` or nothing.

    A revision named alone (HEAD if none) is planned against what is deployed
    when there is a store (BASE None: the commit its pointers name), else
    against its parent, as ``git show REV`` shows it (``REV~1``, the empty tree
    for a first commit): what that commit changes, never REV against itself.
    """
    if len(revs) == 2:
        return revs[0], revs[1]
    if len(revs) > 2:
        raise SetpointError("plan takes BASE HEAD, BASE..HEAD, or at most one REV")
    base, dots, head = (revs[0] if revs else "HEAD").partition("..")
    if dots:
        return base, head or "HEAD"
    return (None if store else f"{base}~1"), base


def _invalid_head(exc: InvalidDefinitions, fmt: str) -> None:
    if fmt == "json":
        print_json(
            {"valid": False, "commit": exc.commit, "problems": [p.to_dict() for p in exc.problems]}
        )
    elif fmt == "markdown":
        print(f"### setpoint plan: invalid definitions at `{exc.commit[:12]}`\n")
        for problem in exc.problems:
            print(f"- `{problem}`")
    else:
        print(str(exc), file=sys.stderr)


def cmd_plan(args: argparse.Namespace) -> int:
    try:
        return _plan(args)
    except InvalidDefinitions as exc:
        _invalid_head(exc, args.format)
        return PLAN_ERROR if args.exit_code else INVALID
    except (GitError, StoreError) as exc:
        print(f"setpoint: {exc}", file=sys.stderr)
        return PLAN_ERROR if args.exit_code else UNAVAILABLE


def _plan(args: argparse.Namespace) -> int:
    from setpoint.controller.gitops.change_plan import deployed, plan_change
    from setpoint.controller.rollout.saved_plan import PlanBasis, pointers_digest, save_plan

    base_rev, head_rev = _revs(args.revs, store=bool(args.store))
    if args.out and not args.store:
        raise SetpointError("--out needs --store: the saved plan records the store's pointers")
    store = open_existing_store(args, args.store) if args.store else None
    if args.store and store is None:
        return PLAN_ERROR if args.exit_code else UNAVAILABLE
    # Read before anything else: a pointer that moves while the plan is made
    # makes the saved plan refused, never silently out of date.
    pointers = pointers_digest(store) if store is not None and args.out else None
    base: str | Deployed
    if base_rev is not None:
        base = base_rev
    else:
        assert store is not None  # _revs leaves BASE out only when there is a store
        base = deployed(store)
    with GitRepo.open(args.repo) as repo:
        plan = plan_change(repo, base, head_rev, args.env, store, render_secret(args))
    if args.out and pointers is not None:
        save_plan(args.out, plan.to_dict(), PlanBasis(plan.head, args.env, pointers))
    answers = _preflight(args, store, head_rev) if args.preflight else None
    _write_plan(args, plan, answers, plan.head)
    if answers is not None:
        from setpoint.controller.converge.preflight import preflight_passed

        if not preflight_passed(answers):
            return PLAN_ERROR
    if not args.exit_code:
        return OK
    return PLAN_CHANGES if plan.has_changes else PLAN_NO_CHANGES


def _write_plan(
    args: argparse.Namespace, plan: Plan, answers: dict[str, Any] | None, commit: str
) -> None:
    """The plan in the format asked for, with the preflight's answers when given."""
    from setpoint.controller.converge.preflight import answers_json, format_answers
    from setpoint.controller.rollout.plan_format import (
        MARKDOWN_LIMIT,
        format_json,
        format_markdown,
        format_text,
    )

    if args.format == "json":
        extra = {"preflight": answers_json(answers)} if answers is not None else None
        sys.stdout.write(format_json(plan, extra))
        return
    if args.format == "markdown":
        sys.stdout.write(format_markdown(plan, args.max_size or MARKDOWN_LIMIT))
    else:
        sys.stdout.write(format_text(plan, diffs=not args.no_diff))
    if answers is not None:
        sys.stdout.write("\n" + format_answers(answers, commit, args.preflight_timeout))


def _preflight(args: argparse.Namespace, store: Any, head_rev: str) -> dict[str, Any]:
    """Publish HEAD's changes to check on every server, then wait for the answers.

    The request document keeps the checks published by every reconcile pass
    while the plan waits. With the store's lease free, the plan publishes the
    pointers itself; while a controller holds it (``setpoint watch``), that
    controller publishes them on its next pass."""
    from setpoint.controller.converge.preflight import await_answers
    from setpoint.controller.converge.preflight_requests import delete_request
    from setpoint.controller.gitops.environments import EnvironmentReconciler

    if store is None:
        raise SetpointError("--preflight needs --store: the servers answer through it")
    timeout = args.preflight_timeout
    with GitRepo.open(args.repo) as repo:
        reconciler = EnvironmentReconciler(
            repo, store, rev=head_rev, policy=pointer_policy(args), env=args.env
        )
        try:
            with replicas.reconcile_lease(args, store) as lease:
                reconciler.lease = lease
                request = reconciler.publish_preflight(timeout)
        except replicas.LeaseBusy as exc:
            print(
                f"setpoint: {exc}; it publishes the checks on its next pass",
                file=sys.stderr,
            )
            reconciler.lease = None
            request = reconciler.publish_preflight(timeout, pointers=False)
        except replicas.LeaseLost as exc:
            raise SetpointError(f"cannot publish the preflight: {exc}") from exc
    try:
        return await_answers(store, request.checks, timeout)
    finally:
        delete_request(store, request)


def cmd_watch(args: argparse.Namespace) -> int:
    from setpoint.controller.gitops.commitgate import CommitGate, KeyringVerifier
    from setpoint.controller.gitops.source import (
        LocalSource,
        RemoteSource,
        default_mirror,
        is_remote,
    )
    from setpoint.controller.gitops.watch import Watcher

    if args.require_signed and not args.keyring:
        raise SetpointError("--require-signed needs --keyring FILE")
    if args.push_notes and not is_remote(args.repo):
        raise SetpointError("--push-notes is for a remote --repo (a local one holds the notes)")
    source: LocalSource | RemoteSource
    if is_remote(args.repo):
        mirror = args.mirror or default_mirror(args.repo)
        source = RemoteSource(args.repo, args.branch, mirror, args.fetch_interval)
    else:
        source = LocalSource(args.repo, args.branch)
    store = open_pass_store(args, args.store)
    lease = replicas.replica_lease(args, store)
    verifier = KeyringVerifier(args.keyring) if args.require_signed else None
    gate = CommitGate(source.path, args.allow_force_push, verifier)
    watcher = Watcher(
        source,
        store,
        gate,
        lease=lease,
        env=args.env,
        policy=pointer_policy(args),
        render_secret=render_secret(args),
        push_notes=args.push_notes,
        interval=args.interval,
        converge_rounds=args.converge_rounds,
        unreachable_after=args.unreachable_after,
        notifier=observing.notifier(args),
        metrics=observing.metrics(args, store, lease),
    )
    stop = threading.Event()
    try:
        with finish_pass_on_sigterm(stop, source.wake):
            watcher.run(stop, max_passes=1 if args.once else args.passes)
    except KeyboardInterrupt:
        pass
    finally:
        if verifier is not None:
            verifier.close()
        if watcher.notifier is not None:
            watcher.notifier.sender.drain()  # a stopping daemon waits a little, no more
    if watcher.record is not None:
        print(watcher.record.summary())
    return OK


HISTORY_FAILURES = 5  # failure lines shown per commit; --json gives every one kept


def cmd_history(args: argparse.Namespace) -> int:
    from setpoint.controller.gitops.environments import record_name
    from setpoint.controller.gitops.history import deployed_history, servers_now
    from setpoint.controller.gitops.notes import CONVERGED
    from setpoint.store.url import open_store

    with GitRepo.open(args.repo) as repo:
        path = repo.path
    history = deployed_history(path, args.branch, record_name(args.env), args.limit)
    now = servers_now(history, open_store(args.store) if args.store else None)
    if args.json:
        doc = {
            "environment": record_name(args.env),
            "commits": [d.to_dict() for d in history],
            "servers": now,
        }
        print_json(doc)
        return OK
    if not history:
        print(f"no deployed commits recorded for {record_name(args.env)}")
    for d in history:
        r = d.record
        took = f"{r.seconds_to_converge:.1f}s" if r.outcome == CONVERGED else "-"
        counts = f"{r.count('converged')}/{len(r.servers)} converged"
        print(f"{d.commit[:12]}  {d.time}  {r.outcome:<11} {took:>8}  {counts}  {d.subject}")
        print(f"{'':14}{d.author}")
        for name, servers in sorted(r.rolled_back.items()):
            print(f"{'':14}rolled back: {name} on {', '.join(servers)}")
        # The note keeps the first failures, reasons masked as the controller read them.
        for line in r.failures[:HISTORY_FAILURES]:
            print(f"{'':14}failed: {line}")
        if len(r.failures) > HISTORY_FAILURES:
            print(f"{'':14}... {len(r.failures) - HISTORY_FAILURES} more (--json has them all)")
    if now:
        print("\nservers now:")
        for server, commit in sorted(now.items()):
            print(f"  {server}: {commit[:12]}{commit[40:]}")
    return OK
