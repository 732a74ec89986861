"""``setpoint reconcile``, ``status``, ``logs`` and ``retry``: publish, watch the
fleet converge, read what the agents ran, and lift the quarantine of a failed
digest."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import structlog

from setpoint.controller.cli import observing, replicas
from setpoint.controller.cli.common import (
    FAILED,
    OK,
    PLAN_MOVED,
    TIMED_OUT,
    UNAVAILABLE,
    USAGE,
    add_command,
    env_arg,
    invalid,
    open_existing_store,
    open_pass_store,
    pointer_policy,
    print_json,
    render_secret,
    render_secret_arg,
    signing_args,
    store_workers_arg,
    trust_args,
    tuning_args,
)
from setpoint.controller.definitions.repository import GitRepo
from setpoint.controller.errors import InvalidDefinitions, SetpointError

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
    observing.notify_args(p)
    tuning_args(p)
    signing_args(p)
    store_workers_arg(p)
    trust_args(p)

    p = add_command(
        sub,
        "status",
        cmd_status,
        help="show desired against reported state per server",
        description="Read pointers, manifests and reports from the store and show, per server "
        "and deployment: desired digest, reported digest, status, last action, reported/"
        "published generation, commit and the age of the last run. Below the table, each "
        "failed or running deployment's reason and the last lines of its stdout and stderr, "
        "as the agent reported them, with the values of secret inputs masked. A server whose "
        "agent has not written a report yet says NEVER REPORTED.",
        epilog="exit codes: 0 shown (with --exit-code: and nothing failed), 1 with "
        "--exit-code: a deployment failed, an agent reports an error or is unreachable (no "
        "heartbeat), or a document cannot be read; also when --server names no server in "
        "the store. 4 the store cannot be read (a path that does not exist is an error, not "
        "an empty store).",
    )
    p.add_argument("--store", required=True, help="store URL or path")
    p.add_argument(
        "--json",
        action="store_true",
        help="print as JSON; with --watch, JSON Lines: one object per changed row, with its time",
    )
    p.add_argument(
        "--server", action="append", metavar="S", help="only this server (may be repeated)"
    )
    p.add_argument(
        "--deployment", metavar="D", help="only this deployment: <stack>/<name>, or <name>"
    )
    p.add_argument(
        "--failed", action="store_true", help="only failed deployments, and agents in trouble"
    )
    p.add_argument(
        "--exit-code",
        action="store_true",
        help="exit 1 when anything shown failed or is unreachable (for scripts and monitoring)",
    )
    p.add_argument(
        "--repo",
        metavar="DIR",
        help="definitions repository: also show the outputs of its Heat templates, read at "
        "the commit the servers run and resolved from their reports",
    )
    env_arg(p)
    render_secret_arg(p)
    p.add_argument(
        "--watch",
        action="store_true",
        help="show it again every --interval seconds until Ctrl-C (exit 0): redrawn on a "
        "terminal; elsewhere (a pipe, a log) only the lines that changed, timestamped",
    )
    p.add_argument(
        "--interval",
        type=_positive_seconds,
        default=2.0,
        metavar="SECONDS",
        help="--watch: seconds between looks at the store (default: 2)",
    )
    tuning_args(p, rounds=False)
    store_workers_arg(p)

    p = add_command(
        sub,
        "logs",
        cmd_logs,
        help="show the last run of each deployment on a server",
        description="Read a server's report and show, newest first, the last run of each "
        "deployment (or of DEPLOYMENT): action, config digest, start, duration, exit code, "
        "reason and the tails of stdout and stderr, with the values of secret inputs masked. "
        "The report keeps only the last run of each deployment, so that is all there is: "
        "older runs are in the agent's logs on the server, not in the store.",
        epilog="exit codes: 0 shown, 1 the server has no report (or none for DEPLOYMENT), "
        "4 the store cannot be read.",
    )
    p.add_argument("server", help="the server's name")
    p.add_argument("deployment", nargs="?", help="only this deployment: <stack>/<name>, or <name>")
    p.add_argument("--store", required=True, help="store URL or path")
    p.add_argument("--json", action="store_true", help="print as JSON")

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
    store = open_pass_store(args, args.store)
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
            render_secret=render_secret(args),
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
    notifier = observing.notifier(args, reconciler.clock)
    try:
        return _passes(args, reconciler, recorder, notifier)
    finally:
        # The passes never waited for a notification; the process waits a little.
        notifier.sender.drain()


def _passes(args: argparse.Namespace, reconciler: Any, recorder: Any, notifier: Any) -> int:
    from setpoint.controller.converge.reconcile import wait_for_convergence

    def record(outcome: Any) -> None:
        notifier.after_pass(reconciler, outcome)
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
            # A rollout stopped by this pass (halted, rolled back, a preflight
            # that failed) is a failed rollout, as --wait says it.
            code = FAILED if outcome.desired.failures else OK
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


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text}")
    return value


def cmd_status(args: argparse.Namespace) -> int:
    store = open_existing_store(args, args.store)
    if store is None:
        return UNAVAILABLE
    if args.watch:
        if args.exit_code:
            print("setpoint: --watch is not for --exit-code", file=sys.stderr)
            return USAGE
        return _watch_status(args, store)
    shown, missing = _statuses(args, store)
    for server in missing:
        print(f"setpoint: no server {server!r} in this store", file=sys.stderr)
    filtered = bool(args.server or args.deployment or args.failed)
    _quiet_on_broken_pipe(lambda: _print_status(args, store, shown, filtered))
    if missing or (args.exit_code and any(s.troubled for s in shown)):
        return FAILED
    return OK


def _statuses(args: argparse.Namespace, store: Any) -> tuple[list[Any], list[str]]:
    """The servers' statuses, filtered as asked, and the ``--server`` names the
    store does not have."""
    from setpoint.controller.converge.status import fleet_status

    statuses = fleet_status(store, unreachable_after=args.unreachable_after, servers=args.server)
    missing = sorted(set(args.server or ()) - {s.server for s in statuses})
    shown = [kept for s in statuses if (kept := s.only(args.deployment, args.failed))]
    return shown, missing


def _watch_status(args: argparse.Namespace, store: Any) -> int:
    """``status --watch``: the same view, again and again; Ctrl-C ends it (exit 0)."""
    import io

    from setpoint.controller.cli.follow import follow
    from setpoint.controller.converge.status import table_rows

    filtered = bool(args.server or args.deployment or args.failed)

    def view() -> tuple[str, dict[str, Any]]:
        shown, _missing = _statuses(args, store)
        rows = table_rows(shown)
        if args.json:  # JSON Lines: no screen to draw
            return "", {r.key: r.to_dict() for r in rows}
        screen = io.StringIO()
        with contextlib.redirect_stdout(screen):
            _print_status(args, store, shown, filtered)
        lines = {r.key: "  ".join(c for c in r.cells(ages=False) if c) for r in rows}
        return screen.getvalue().rstrip("\n"), lines

    title = " ".join(["setpoint status", *_watched_filters(args)])

    def run() -> None:
        follow(view, sys.stdout, args.interval, title, json_lines=args.json)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a follow ends
        _quiet_on_broken_pipe(run)
    return OK


def _watched_filters(args: argparse.Namespace) -> list[str]:
    words = [f"--server {s}" for s in args.server or ()]
    words += [f"--deployment {args.deployment}"] if args.deployment else []
    return words + (["--failed"] if args.failed else [])


def _print_status(
    args: argparse.Namespace, store: Any, statuses: list[Any], filtered: bool
) -> None:
    from setpoint.controller.converge.runs import Masker
    from setpoint.controller.converge.status import format_details, format_table, rollouts_summary
    from setpoint.controller.fleet.move import move_status
    from setpoint.controller.rollout.ledger import read_ledger
    from setpoint.controller.rollout.outputs import format_outputs
    from setpoint.store.lease import lease_status

    ledger = read_ledger(store)
    moved = move_status(store)
    controllers = lease_status(store, time.time())
    # The text names controllers only when there is something to tell; JSON always does.
    told = controllers.lines() if controllers and controllers.worth_telling else []
    outputs = _stack_outputs(args, store, statuses) if args.repo else []
    if args.json:
        print_json(
            {
                "servers": [s.to_dict() for s in statuses],
                **ledger_json(ledger, Masker(store)),
                "move": moved.to_dict() if moved else None,
                "controllers": controllers.to_dict() if controllers else None,
                **({"outputs": [o.to_dict() for o in outputs]} if args.repo else {}),
            }
        )
    elif not statuses:
        print("nothing matches" if filtered else "no servers in this store yet")
        if told and not filtered:
            print("\n".join(told))
    else:
        print(format_table(statuses))
        details = format_details(statuses)
        if details:
            print("\n" + details)
        lines: list[str] = []
        if not filtered:
            lines = rollouts_summary(ledger, Masker(store)) + (moved.lines() if moved else [])
        lines += told if not filtered else []
        if lines:
            print("\n" + "\n".join(lines))
        if outputs:
            print("\n" + "\n".join(format_outputs(outputs)))


def _stack_outputs(args: argparse.Namespace, store: Any, statuses: list[Any]) -> list[Any]:
    """The stack outputs of the commit most of the shown servers run, from their reports."""
    from collections import Counter

    from setpoint.controller.definitions.loader import load_model
    from setpoint.controller.rollout.outputs import outputs_from_reports

    commits = Counter(s.pointer.commit for s in statuses if s.pointer is not None)
    if not commits:
        return []
    commit = commits.most_common(1)[0][0]
    try:
        with GitRepo.open(args.repo) as repo:
            model = load_model(repo.tree(commit), env=args.env, render_secret=render_secret(args))
    except SetpointError as exc:
        print(f"setpoint: no outputs: commit {commit[:12]}: {exc}", file=sys.stderr)
        return []
    reports = {s: r for s in model.servers_in_use() if (r := store.read_report(s)) is not None}
    return outputs_from_reports(model, reports)


def cmd_logs(args: argparse.Namespace) -> int:
    from setpoint.controller.converge.runs import server_runs

    store = open_existing_store(args, args.store)
    if store is None:
        return UNAVAILABLE
    report = store.read_report(args.server)
    if report is None:
        print(f"setpoint: {args.server!r} has no report in this store", file=sys.stderr)
        return FAILED
    runs = server_runs(store, report, args.deployment)
    if args.deployment and not runs:
        print(
            f"setpoint: {args.server}'s report has no deployment {args.deployment!r}",
            file=sys.stderr,
        )
        return FAILED
    _quiet_on_broken_pipe(lambda: _print_runs(args, report, runs))
    return OK


def _print_runs(args: argparse.Namespace, report: Any, runs: list[Any]) -> None:
    from setpoint.controller.converge.status import stream_lines
    from setpoint.store.digest import short

    if args.json:
        print_json(
            {
                "server": report.server,
                "report_updated_at": report.updated_at,
                "history": "last run of each deployment",
                "runs": [r.to_dict() for r in runs],
            }
        )
        return
    for r in runs:
        duration = "running" if r.status == "IN_PROGRESS" else _seconds(r.duration)
        exit_code = "-" if r.exit_code is None else str(r.exit_code)
        print(
            f"{r.started_at or '-'}  {r.deployment}  {r.action}  {r.status}  "
            f"config {short(r.config)}  took {duration}  exit {exit_code}  attempt {r.attempts}"
        )
        if r.reason:
            print(f"  reason: {r.reason}")
        for line in stream_lines(r, None):  # the whole tail the report keeps
            print(line)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def _quiet_on_broken_pipe(show: Callable[[], None]) -> None:
    """Run ``show``; a reader that stopped reading (``status | head``) ends it quietly."""
    try:
        show()
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would flush stdout again at exit and complain: point it at nothing.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def ledger_json(ledger: Any, masker: Any) -> dict[str, Any]:
    """The parts of the controller's ledger that ``status --json`` shows, with
    the agents' failure reasons it keeps masked."""
    from setpoint.controller.converge.status import masked_reasons

    doc = masked_reasons(ledger, masker).to_dict()
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
