"""``setpoint``: the controller's command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import structlog

from setpoint.controller import logs
from setpoint.controller.cli import change as changecmds
from setpoint.controller.converge.capabilities import DEFAULT_TTL, CapabilityError
from setpoint.controller.converge.publish import PointerPolicy
from setpoint.controller.definitions.repository import GitError, GitRepo
from setpoint.controller.errors import InvalidDefinitions, SetpointError
from setpoint.store.digest import short
from setpoint.store.errors import StoreError

log = structlog.get_logger("setpoint.cli")

# Exit codes: scripts and CI jobs may rely on these.
OK, FAILED, TIMED_OUT, INVALID, UNAVAILABLE, USAGE = 0, 1, 2, 3, 4, 64

EPILOG = """\
exit codes:
  0   success (reconcile --wait: every server converged)
  1   a deployment failed (reconcile --wait)
  2   timed out before the fleet converged (reconcile --wait)
  3   invalid definitions: every problem is listed with file, line and field;
      nothing was published
  4   the repository or the store could not be used
  64  wrong usage

how it fits together:
  git commit -> setpoint validate/render (offline) -> setpoint reconcile publishes
  content-addressed configs to the store -> setpoint-agent on each server pulls,
  runs and reports -> setpoint status shows desired against reported.

Run 'setpoint COMMAND --help' for each command. 'setpoint demo' shows the whole
story on a throwaway repository and store.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(USAGE, f"{self.prog}: error: {message}\n")


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="setpoint",
        description="A gitops convergence controller for software configuration on servers.",
        epilog=EPILOG,
        formatter_class=_formatter,
    )
    parser.add_argument(
        "--log-level", choices=sorted(logs.LEVELS), default="info", help="log events at or above"
    )
    parser.add_argument(
        "--log-format", choices=("console", "json"), default="console", help="log event format"
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    def signing_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--signing-key",
            default=os.environ.get("SETPOINT_SIGNING_KEY"),
            metavar="FILE",
            help="secret key that signs every pointer (default: $SETPOINT_SIGNING_KEY; "
            "see 'setpoint keygen'); without one, pointers are unsigned and only agents "
            "run with --allow-unsigned accept them",
        )
        p.add_argument(
            "--announce-key",
            action="append",
            default=[],
            metavar="NAME:BASE64",
            help="also tell agents to trust this public key (to rotate to it later)",
        )
        p.add_argument(
            "--url-ttl",
            type=int,
            default=DEFAULT_TTL,
            metavar="SECONDS",
            help="lifetime of the URLs agents get on Swift and S3, renewed at half-life "
            "through the pointer (default: 7 days; at most 7 days on S3)",
        )

    def repo_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--repo", default=".", help="definitions repository (default: .)")
        p.add_argument(
            "--rev", default="HEAD", help="commit, branch or tag to read (default: HEAD)"
        )

    p = sub.add_parser(
        "validate",
        help="check a commit's definitions",
        description="Check every definition in a commit and list all problems at once, each "
        "with file, line and field. Reads the commit through git, never the working directory: "
        "commit first.",
        formatter_class=_formatter,
    )
    repo_args(p)
    changecmds.env_arg(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = sub.add_parser(
        "render",
        help="show the derived configs a commit produces",
        description="Render every (deployment, server) pair of a commit into its derived config "
        "and digest, offline. Inputs that read other deployments' outputs (get_attr) are shown as "
        "waiting unless --store gives reported outputs.",
        formatter_class=_formatter,
    )
    repo_args(p)
    changecmds.env_arg(p)
    p.add_argument("--server", help="only this server, with each derived config in full")
    p.add_argument("--store", help="read reported outputs from this store (URL or path)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = sub.add_parser(
        "reconcile",
        help="publish a branch's desired state and converge the fleet",
        description="Render the branch head with the outputs reported so far, publish blobs, "
        "manifests and then pointers for servers whose manifest changed. Idempotent: a pass "
        "with nothing new writes nothing. Deployments whose inputs wait for outputs not yet "
        "reported are published on a later pass.",
        epilog="exit codes with --wait: 0 converged, 1 a deployment failed, 2 timed out, "
        "3 invalid definitions (nothing published), 4 repository or store unusable.",
        formatter_class=_formatter,
    )
    p.add_argument("--repo", default=".", help="definitions repository (default: .)")
    p.add_argument("--store", required=True, help="store URL: file:///path, a path, memory://")
    p.add_argument("--branch", default="HEAD", help="branch to deploy (default: HEAD)")
    changecmds.env_arg(p)
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
    changecmds.tuning_args(p)
    signing_args(p)

    p = sub.add_parser(
        "status",
        help="show desired against reported state per server",
        description="Read pointers, manifests and reports from the store and show, per server "
        "and deployment: desired digest, reported digest, status, last action, reported/"
        "published generation, commit and the age of the last run.",
        formatter_class=_formatter,
    )
    p.add_argument("--store", required=True, help="store URL or path")
    p.add_argument("--json", action="store_true", help="print as JSON")
    changecmds.tuning_args(p, rounds=False)

    p = sub.add_parser(
        "retry",
        help="lift the quarantine of a deployment's failed digest",
        description="A digest that failed (or timed out) on a server is quarantined: the "
        "controller does not publish it there again, and its rollout stays halted or rolled "
        "back, until a commit renders another digest or this command lifts it. The next "
        "reconcile pass publishes it again and the agent tries it once more.",
        formatter_class=_formatter,
    )
    p.add_argument("deployment", help="<stack>/<deployment>")
    p.add_argument("--server", help="only on this server (default: every server)")
    p.add_argument("--store", required=True, help="store URL or path")

    p = sub.add_parser(
        "keygen",
        help="create a pointer signing key",
        description="Create an ed25519 key NAME: NAME.key (secret, mode 0600) and NAME.pub in "
        "--out, and print the public key. Give the secret to the controller "
        "(--signing-key) and the public key to agents (through 'setpoint enroll').",
        formatter_class=_formatter,
    )
    p.add_argument("name", help="key name, e.g. ctl-2026-11")
    p.add_argument("--out", default=".", help="directory for the key files (default: .)")

    p = sub.add_parser(
        "enroll",
        help="print a server's agent bootstrap",
        description="Print the bootstrap a server's agent starts from: its name, how to reach "
        "the store (a path, or TempURLs on Swift and presigned URLs on S3: read its own "
        "pointer, write its own report), and the public keys it trusts. Nothing else: no "
        "store credentials. An agent offline longer than its URLs live (--url-ttl) reports "
        "nothing and shows as stale in 'setpoint status'; enrolling it again recovers it.",
        formatter_class=_formatter,
    )
    p.add_argument("server", help="the server's name, as in inventory.yaml")
    p.add_argument("--store", required=True, help="store URL")
    signing_args(p)
    p.add_argument(
        "--cloud-init", action="store_true", help="print cloud-init user-data that installs it"
    )
    p.add_argument(
        "--agent",
        choices=("setpoint", "heat"),
        default="setpoint",
        help="heat: the server runs Heat's agent (os-collect-config, heat-config hooks); "
        "register it and print its os-collect-config configuration (see README)",
    )
    p.add_argument(
        "--s3-keys",
        action="store_true",
        help="S3 only: give the agent its own access key, limited by an IAM policy to its "
        "pointer, its report and the blobs, instead of presigned URLs (re-enrolling re-keys)",
    )

    p = sub.add_parser(
        "rotate-keys",
        help="rotate a Swift account's TempURL key without breaking agents",
        description="Put a new secret in TempURL key 2, publish every server new URLs signed "
        "with it, wait until every agent has answered that generation, then make the new "
        "secret key 1 and remove key 2. An agent that does not answer in time stops the "
        "rotation before the old key is retired (exit 2), unless --force.",
        formatter_class=_formatter,
    )
    p.add_argument("--repo", default=".", help="definitions repository (default: .)")
    p.add_argument("--store", required=True, help="swift://container[/prefix]")
    p.add_argument("--branch", default="HEAD", help="branch to deploy (default: HEAD)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait (600)")
    p.add_argument("--force", action="store_true", help="retire the old key even if agents lag")
    signing_args(p)

    p = sub.add_parser(
        "move",
        help="move the fleet to another store without touching a server",
        description="Copy what the fleet needs (blobs its pointers reach, rollback targets, the "
        "ledger, the last reports) to --to, write each server's pointer there (a higher "
        "generation, with URLs issued there on Swift and S3), then publish at --from one more "
        "signed generation per server that tells its agent to move. Agents follow, and their "
        "first report at --to confirms it; 'setpoint status --store TO' lists servers that "
        "have not followed after --deadline. Then reconcile against --to. Handing the fleet "
        "to another controller: announce its key first (--announce-key), then move.",
        formatter_class=_formatter,
    )
    p.add_argument("--from", dest="source", required=True, metavar="URL", help="the store now")
    p.add_argument("--to", dest="target", required=True, metavar="URL", help="the new store")
    p.add_argument(
        "--deadline",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="after this long, status lists servers that have not followed (default: 3600)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    signing_args(p)

    p = sub.add_parser(
        "demo",
        help="run the whole story on a throwaway repository",
        description="Copy repos-example/ into a new git repository, start three agents as "
        "processes on a local store, and walk through deploy, update, revert and delete, "
        "checking each step. Exit 0 only if every step converged as described.",
        formatter_class=_formatter,
    )
    p.add_argument("--workdir", help="keep everything in this directory (default: a temp dir)")
    p.add_argument(
        "--store",
        help="run against this (empty) store instead of a local directory, e.g. "
        "swift://demo or s3://demo; agents reach it only through enrolled URLs",
    )
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per step (120)")
    COMMANDS.update(changecmds.add_commands(sub, _formatter, signing_args))
    return parser


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def _invalid(exc: InvalidDefinitions, as_json: bool) -> int:
    if as_json:
        _print_json(
            {"valid": False, "commit": exc.commit, "problems": [p.to_dict() for p in exc.problems]}
        )
    else:
        print(str(exc), file=sys.stderr)
    return INVALID


def cmd_validate(args: argparse.Namespace) -> int:
    from setpoint.controller.definitions.loader import load_model
    from setpoint.controller.errors import Problem

    warnings: list[Problem] = []
    with GitRepo.open(args.repo) as repo:
        try:
            model = load_model(repo.tree(args.rev), env=args.env, on_problem=warnings.append)
        except InvalidDefinitions as exc:
            return _invalid(exc, args.json)
    for warning in sorted(warnings):  # e.g. Heat resources setpoint does not manage
        print(f"warning: {warning}", file=sys.stderr)
    deployments = model.deployments()
    pairs = sum(len(d.servers) for d in deployments)
    if args.json:
        _print_json(
            {
                "valid": True,
                "commit": model.commit,
                "components": sorted(model.components),
                "stacks": sorted(model.stacks),
                "deployments": [d.qualified for d in deployments],
                "servers": sorted(model.inventory.servers),
                "pairs": pairs,
            }
        )
    else:
        print(
            f"{model.commit[:12]}: valid: {len(model.components)} components, "
            f"{len(model.stacks)} stacks, {len(deployments)} deployments, "
            f"{pairs} (deployment, server) pairs"
        )
    return OK


def cmd_render(args: argparse.Namespace) -> int:
    from setpoint.controller.definitions.loader import load_model
    from setpoint.controller.rollout.desired import compute_desired
    from setpoint.store.documents import Manifest, Report
    from setpoint.store.url import open_store

    with GitRepo.open(args.repo) as repo:
        try:
            model = load_model(repo.tree(args.rev), env=args.env)
        except InvalidDefinitions as exc:
            return _invalid(exc, args.json)
    reports: dict[str, Report] = {}
    if args.store:
        store = open_store(args.store)
        for server in model.servers_in_use():
            report = store.read_report(server)
            if report is not None:
                reports[server] = report

    def nothing_published(_server: str) -> Manifest | None:
        return None

    desired = compute_desired(model, reports, nothing_published)
    servers = [args.server] if args.server else sorted(desired.manifests)
    if args.server and args.server not in desired.manifests:
        print(f"setpoint: no deployment targets server {args.server!r}", file=sys.stderr)
        return INVALID
    result: dict[str, Any] = {"commit": model.commit, "servers": {}, "waiting": []}
    for server in servers:
        result["servers"][server] = [
            {
                "deployment": e.name,
                "id": e.config,
                "actions": list(e.actions),
                **(
                    {"config": masked_body(model, e.qualified, desired.configs[e.config].body)}
                    if args.server
                    else {}
                ),
            }
            for e in desired.manifests[server].deployments
        ]
    result["waiting"] = [w.to_dict() for w in desired.waiting if w.server in servers]
    if args.json:
        _print_json(result)
        return OK
    print(f"commit {model.commit}")
    for server, entries in result["servers"].items():
        print(f"\n{server}")
        for e in entries:
            print(f"  {e['deployment']:<32} {short(e['id'], 16)}")
            if "config" in e:
                body = json.dumps({"id": e["id"], **e["config"]}, indent=2, sort_keys=True)
                print("    " + body.replace("\n", "\n    "))
    if desired.waiting:
        print("\nwaiting (known after apply):")
        for w in desired.waiting:
            if w.server in servers:
                print(f"  {w}")
    return OK


def masked_body(model: Any, qualified: str, body: dict[str, Any]) -> dict[str, Any]:
    """A derived config to show people: values of inputs marked ``secret: true``
    masked, as ``setpoint plan`` masks them (the digest still covers them)."""
    from setpoint.store.masking import mask_secret_inputs

    component = model.components[model.deployment(qualified).component]
    secrets = {i.name for i in component.inputs if i.secret}
    return mask_secret_inputs(body, secrets)


def cmd_reconcile(args: argparse.Namespace) -> int:
    from setpoint.controller.gitops.environments import EnvironmentReconciler
    from setpoint.store.url import open_store

    with GitRepo.open(args.repo) as repo:
        reconciler = EnvironmentReconciler(
            repo,
            open_store(args.store),
            rev=args.branch,
            policy=pointer_policy(args),
            converge_rounds=args.converge_rounds,
            unreachable_after=args.unreachable_after,
            env=args.env,
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
                if not args.json:
                    shown(outcome)

            try:
                code, outcome = wait_for_convergence(
                    reconciler, args.timeout, args.interval, progress
                )
            finally:
                shown.close()
    except InvalidDefinitions as exc:
        return _invalid(exc, args.json)
    if args.json:
        _print_json({**outcome.to_dict(), "exit_code": code})
    else:
        if not args.wait:
            print(outcome.summary())
        for w in outcome.waiting:
            print(f"  waiting: {w}")
        for f in outcome.failed:
            print(f"  FAILED: {f}")
        if code == TIMED_OUT:
            print(f"timed out after {args.timeout:g}s", file=sys.stderr)
    return code


def cmd_status(args: argparse.Namespace) -> int:
    from setpoint.controller.converge.status import fleet_status, format_table, rollouts_summary
    from setpoint.controller.fleet.move import move_status
    from setpoint.controller.rollout.ledger import read_ledger
    from setpoint.store.url import open_store

    store = open_store(args.store)
    statuses = fleet_status(store, unreachable_after=args.unreachable_after)
    ledger = read_ledger(store)
    moved = move_status(store)
    if args.json:
        _print_json(
            {
                "servers": [s.to_dict() for s in statuses],
                **ledger_json(ledger.to_dict()),
                "move": moved.to_dict() if moved else None,
            }
        )
    elif not statuses:
        print("no servers in this store yet")
    else:
        print(format_table(statuses))
        lines = rollouts_summary(ledger) + (moved.lines() if moved else [])
        if lines:
            print("\n" + "\n".join(lines))
    return OK


def ledger_json(doc: dict[str, Any]) -> dict[str, Any]:
    """The parts of the controller's ledger that ``status --json`` shows."""
    return {k: doc[k] for k in ("rollouts", "quarantine", "waiting")}


def cmd_retry(args: argparse.Namespace) -> int:
    from setpoint.controller.rollout.ledger import lift_quarantine
    from setpoint.store.url import open_store

    name = args.deployment
    lifted = lift_quarantine(open_store(args.store), name, args.server)
    if not lifted:
        where = f" on {args.server}" if args.server else ""
        print(f"setpoint: nothing quarantined for {name}{where}", file=sys.stderr)
        return FAILED
    print(f"lifted the quarantine of {name} on {', '.join(lifted)}; the next pass publishes it")
    return OK


def cmd_keygen(args: argparse.Namespace) -> int:
    from pathlib import Path

    from setpoint.store.signing import SigningKey

    key = SigningKey.generate(args.name)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    secret = out / f"{args.name}.key"
    try:
        key.save(secret)
    except FileExistsError:
        print(f"setpoint: {secret} exists; not overwriting a key", file=sys.stderr)
        return FAILED
    (out / f"{args.name}.pub").write_text(f"{key.public()}\n")
    print(key.public())
    return OK


def pointer_policy(args: argparse.Namespace) -> PointerPolicy:
    from setpoint.store.signing import PublicKey, SigningKey

    announce = tuple(str(PublicKey.parse(text)) for text in args.announce_key)
    if args.url_ttl <= 0:
        raise SetpointError("--url-ttl must be positive")
    if not args.signing_key:
        return PointerPolicy(announce=announce, ttl=args.url_ttl)
    return PointerPolicy(SigningKey.load(args.signing_key), announce, args.url_ttl)


def cmd_enroll(args: argparse.Namespace) -> int:
    from setpoint.controller.fleet.enroll import bootstrap_for, cloud_init
    from setpoint.store.url import open_store

    policy = pointer_policy(args)
    if args.agent == "heat":
        from setpoint.controller.converge.heat_agent import collect_config

        print(collect_config(open_store(args.store), args.server, time.time(), policy.ttl).text())
        return OK
    boot = bootstrap_for(
        open_store(args.store),
        args.server,
        policy.trust() or {},
        policy.ttl,
        scoped_keys=args.s3_keys,
    )
    if args.cloud_init:
        print(cloud_init(boot), end="")
    else:
        _print_json(boot.to_dict())
    return OK


def cmd_rotate_keys(args: argparse.Namespace) -> int:
    from setpoint.controller.converge.reconcile import Reconciler
    from setpoint.controller.fleet.rotate import RotationError, rotate_temp_url_key
    from setpoint.store.url import open_store

    with GitRepo.open(args.repo) as repo:
        reconciler = Reconciler(
            repo, open_store(args.store), rev=args.branch, policy=pointer_policy(args)
        )
        try:
            result = rotate_temp_url_key(reconciler, args.timeout, force=args.force)
        except InvalidDefinitions as exc:
            return _invalid(exc, False)
        except RotationError as exc:
            print(f"setpoint: {exc}", file=sys.stderr)
            return TIMED_OUT if exc.behind else FAILED
    if result.generations:
        print(f"rotated: {len(result.generations)} servers renewed, old key retired")
    else:
        print("the account had no TempURL key: created one")
    return OK


def cmd_move(args: argparse.Namespace) -> int:
    from setpoint.controller.fleet.move import move_fleet
    from setpoint.store.url import open_store

    if args.deadline < 0:
        raise SetpointError("--deadline must not be negative")
    result = move_fleet(
        open_store(args.source), open_store(args.target), pointer_policy(args), args.deadline
    )
    if args.json:
        _print_json(result.to_dict())
        return OK
    print(
        f"moved {len(result.servers)} servers to {result.target} ({len(result.copied)} blobs "
        f"copied); 'setpoint status --store {result.target}' shows who followed"
    )
    if result.already_moved:
        print(f"  already moved before: {', '.join(result.already_moved)}")
    for digest in result.lost:
        print(f"  rollback target missing at {result.source}: {digest}", file=sys.stderr)
    return OK


def cmd_demo(args: argparse.Namespace) -> int:
    from setpoint.controller.cli.demo import run_demo

    return run_demo(workdir=args.workdir, timeout=args.timeout, store_url=args.store)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "validate": cmd_validate,
    "render": cmd_render,
    "reconcile": cmd_reconcile,
    "status": cmd_status,
    "demo": cmd_demo,
    "keygen": cmd_keygen,
    "enroll": cmd_enroll,
    "rotate-keys": cmd_rotate_keys,
    "retry": cmd_retry,
    "move": cmd_move,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = "warning" if args.command == "demo" and args.log_level == "info" else args.log_level
    logs.configure(level, args.log_format)
    try:
        return COMMANDS[args.command](args)
    except (GitError, StoreError, CapabilityError) as exc:
        print(f"setpoint: {exc}", file=sys.stderr)
        return UNAVAILABLE
    except SetpointError as exc:
        print(f"setpoint: {exc}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
