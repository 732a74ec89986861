"""``setpoint keygen``, ``enroll``, ``rotate-keys`` and ``move``: how the fleet
trusts the controller and reaches its store."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from setpoint.controller.cli.common import (
    FAILED,
    OK,
    TIMED_OUT,
    UNAVAILABLE,
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
)
from setpoint.controller.definitions.repository import (
    GitError,
    GitRepo,
    NotARepository,
    RevisionNotFound,
)
from setpoint.controller.errors import InvalidDefinitions, SetpointError
from setpoint.controller.wording import counted


def add_parsers(sub: Any) -> None:
    p = add_command(
        sub,
        "init",
        cmd_init,
        help="scaffold a definitions repository and a local fleet that deploys it",
        description="Create DIR as a git repository holding an inventory (the --servers, in "
        "group web), one component (a script and an attached file) and one stack, committed; "
        "and in DIR/.setpoint/ (ignored by git) a signing key, a local store, each server's "
        "agent bootstrap and agents.sh, which starts, stops and shows the agents as local "
        "processes (sh .setpoint/agents.sh start|stop|status|restart|run). Prints the "
        "commands that deploy it.",
        epilog="exit codes: 0 created, 1 DIR exists and is not empty, or a server name is "
        "not valid (nothing written).",
    )
    p.add_argument("dir", metavar="DIR", help="the repository to create (absent or empty)")
    p.add_argument(
        "--servers",
        default="web-1,web-2",
        metavar="A,B,...",
        help="the servers of the inventory (default: web-1,web-2)",
    )

    p = add_command(
        sub,
        "keygen",
        cmd_keygen,
        help="create a pointer signing key (and the render secret)",
        description="Create an ed25519 key NAME: NAME.key (secret, mode 0600) and NAME.pub in "
        "--out, and print the public key. Give the secret to the controller "
        "(--signing-key) and the public key to agents (through 'setpoint enroll'). Also "
        "NAME.render-secret (mode 0600) unless it exists: the secret Heat RandomString "
        "values derive from, found beside the signing key.",
    )
    p.add_argument("name", help="key name, e.g. ctl-2026-11")
    p.add_argument("--out", default=".", help="directory for the key files (default: .)")

    p = add_command(
        sub,
        "enroll",
        cmd_enroll,
        help="print a server's agent bootstrap",
        description="Print the bootstrap a server's agent starts from: its name, how to reach "
        "the store (a path, or TempURLs on Swift and presigned URLs on S3: read its own "
        "pointer, write its own report), and the public keys it trusts. Nothing else: no "
        "store credentials. An agent offline longer than its URLs live (--url-ttl) reports "
        "nothing and shows as stale in 'setpoint status'; enrolling it again recovers it.",
    )
    p.add_argument("server", help="the server's name, as in inventory.yaml")
    p.add_argument("--store", required=True, help="store URL")
    p.add_argument(
        "--repo", help="definitions repository whose inventory lists SERVER (default: .)"
    )
    p.add_argument("--branch", default="HEAD", help="branch whose inventory counts (HEAD)")
    env_arg(p)
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

    p = add_command(
        sub,
        "forget",
        cmd_forget,
        help="remove servers' pointers and reports from the store, on purpose",
        description="Delete everything the store holds under agents/SERVER/ (its pointer, "
        "its report, a Heat agent's objects): for a server taken out of the fleet, once it "
        "left the inventory (its DELETE configs ran: 'setpoint status' shows it RETIRED). "
        "A server the inventory at --branch still lists is refused unless --force (the next "
        "reconcile pass would publish it again). Stop the server's agent first, or it writes "
        "its report again.",
        epilog="exit codes: 0 forgotten, 1 refused (still in the inventory) or not in the "
        "store (nothing deleted), 3 invalid definitions, 4 repository or store unusable.",
    )
    p.add_argument("servers", nargs="+", metavar="SERVER", help="the servers to forget")
    p.add_argument("--store", required=True, help="store URL or path")
    p.add_argument("--repo", help="definitions repository (default: .)")
    p.add_argument("--branch", default="HEAD", help="branch whose inventory counts (HEAD)")
    env_arg(p)
    render_secret_arg(p)
    p.add_argument(
        "--force", action="store_true", help="forget servers the inventory still lists too"
    )
    p.add_argument("--json", action="store_true", help="print what was deleted as JSON")

    p = add_command(
        sub,
        "rotate-keys",
        cmd_rotate_keys,
        help="rotate a Swift account's TempURL key without breaking agents",
        description="Put a new secret in TempURL key 2, publish every server new URLs signed "
        "with it, wait until every agent has answered that generation, then make the new "
        "secret key 1 and remove key 2. An agent that does not answer in time stops the "
        "rotation before the old key is retired (exit 2), unless --force.",
    )
    p.add_argument("--repo", default=".", help="definitions repository (default: .)")
    p.add_argument("--store", required=True, help="swift://container[/prefix]")
    p.add_argument("--branch", default="HEAD", help="branch to deploy (default: HEAD)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait (600)")
    p.add_argument("--force", action="store_true", help="retire the old key even if agents lag")
    signing_args(p)

    p = add_command(
        sub,
        "move",
        cmd_move,
        help="move the fleet to another store without touching a server",
        description="Copy what the fleet needs (blobs its pointers reach, rollback targets, the "
        "ledger, the last reports) to --to, write each server's pointer there (a higher "
        "generation, with URLs issued there on Swift and S3), then publish at --from one more "
        "signed generation per server that tells its agent to move. Agents follow, and their "
        "first report at --to confirms it; 'setpoint status --store TO' lists servers that "
        "have not followed after --deadline. Then reconcile against --to. Handing the fleet "
        "to another controller: announce its key first (--announce-key), then move.",
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
    store_workers_arg(p)


def cmd_init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from setpoint.controller.fleet.scaffold import LOCAL, scaffold

    servers = tuple(s.strip() for s in args.servers.split(",") if s.strip())
    made = scaffold(Path(args.dir), servers)
    print(
        f"created {args.dir}: a git repository (inventory.yaml with {', '.join(servers)}; "
        f"components/hello; stacks/hello.yaml) at commit {made.commit[:12]}, and in "
        f"{LOCAL}/ (ignored by git) a signing key, a local store and each server's agent "
        "bootstrap\n"
    )
    print("deploy it:")
    print(f"  cd {args.dir}")
    for command in made.commands():
        print(f"  {command}")
    print(f"\nthe agents: {made.agents_command} status|stop|restart (logs in {LOCAL}/logs/)")
    return OK


def cmd_keygen(args: argparse.Namespace) -> int:
    from pathlib import Path

    from setpoint.controller.definitions.render_secret import create_beside_signing_key
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
    create_beside_signing_key(secret)
    print(key.public())
    return OK


def cmd_enroll(args: argparse.Namespace) -> int:
    from setpoint.controller.fleet.enroll import bootstrap_for, cloud_init
    from setpoint.store.url import open_store

    policy = pointer_policy(args)
    try:
        _check_inventory(args)
    except InvalidDefinitions as exc:
        return invalid(exc, False)
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
        print_json(boot.to_dict())
    return OK


def _inventory(args: argparse.Namespace) -> tuple[set[str], str, str]:
    """The servers the inventory at ``--branch`` lists (``--env``'s if given),
    the inventory's name for messages, and the commit."""
    from setpoint.controller.definitions.inventory import INVENTORY
    from setpoint.controller.definitions.loader import load_model

    try:
        with GitRepo.open(args.repo or ".") as repo:
            tree = repo.tree(args.branch)
            if args.repo is None and args.env is None and not tree.exists(INVENTORY):
                raise NotDefinitionsHere(f"no {INVENTORY} at {args.branch}")
            model = load_model(tree, env=args.env, render_secret=render_secret(args))
    except NotARepository as exc:
        if args.repo is None:
            raise NotDefinitionsHere("not a git repository") from exc
        raise
    except RevisionNotFound as exc:
        # A repository with no commit yet has no HEAD; a --branch that names
        # nothing is a typo in a repository that may well be the right one.
        if args.repo is None and args.branch == "HEAD":
            raise NotDefinitionsHere("no commit at HEAD") from exc
        raise
    where = INVENTORY if args.env is None else f"the inventory of environment {args.env}"
    return set(model.inventory.servers), where, model.commit


class NotDefinitionsHere(GitError):
    """--repo was not given and the current directory is not the repository
    (exit 4, as for any repository that cannot be used)."""

    def __init__(self, why: str) -> None:
        super().__init__(
            f". is not a definitions repository ({why}): run this in one or pass --repo DIR, "
            "the repository whose inventory lists the servers"
        )
        self.why = why


def _check_inventory(args: argparse.Namespace) -> None:
    from setpoint.controller.fleet.enroll import check_listed

    servers, where, commit = _inventory(args)
    check_listed(args.server, servers, where, commit)


def cmd_forget(args: argparse.Namespace) -> int:
    store = open_existing_store(args, args.store)
    if store is None:
        return UNAVAILABLE
    refused: list[str] = []
    if not args.force:
        try:
            listed, where, commit = _inventory(args)
        except InvalidDefinitions as exc:
            return invalid(exc, args.json)
        refused = [
            f"cannot forget {s!r}: it is in {where} at {commit[:12]} (remove it from the "
            "inventory and reconcile first, so its DELETE configs run; or --force)"
            for s in args.servers
            if s in listed
        ]
    in_store = set(store.list_servers())
    refused += [f"no server {s!r} in this store" for s in args.servers if s not in in_store]
    if refused:  # all or nothing: a typo in a list of servers deletes none of them
        for why in refused:
            print(f"setpoint: {why}", file=sys.stderr)
        return FAILED
    forgotten = {s: store.forget_server(s) for s in args.servers}
    if args.json:
        print_json({"forgotten": forgotten})
    else:
        for server, keys in forgotten.items():
            print(f"forgot {server}: deleted {', '.join(keys)}")
    return OK


def cmd_rotate_keys(args: argparse.Namespace) -> int:
    from setpoint.controller.converge.reconcile import Reconciler
    from setpoint.controller.fleet.rotate import RotationError, rotate_temp_url_key
    from setpoint.store.url import open_store

    with GitRepo.open(args.repo) as repo:
        reconciler = Reconciler(
            repo,
            open_store(args.store),
            rev=args.branch,
            policy=pointer_policy(args),
            render_secret=render_secret(args),
        )
        try:
            result = rotate_temp_url_key(reconciler, args.timeout, force=args.force)
        except InvalidDefinitions as exc:
            return invalid(exc, False)
        except RotationError as exc:
            print(f"setpoint: {exc}", file=sys.stderr)
            return TIMED_OUT if exc.behind else FAILED
    if result.generations:
        print(f"rotated: {counted(len(result.generations), 'server')} renewed, old key retired")
    else:
        print("the account had no TempURL key: created one")
    return OK


def cmd_move(args: argparse.Namespace) -> int:
    from setpoint.controller.fleet.move import move_fleet

    if args.deadline < 0:
        raise SetpointError("--deadline must not be negative")
    result = move_fleet(
        open_pass_store(args, args.source),
        open_pass_store(args, args.target),
        pointer_policy(args),
        args.deadline,
    )
    for server, why in sorted(result.untrusted.items()):
        print(
            f"setpoint: not moved: the pointer of {server} at {result.source} is not trusted "
            f"({why}); 'setpoint reconcile' there replaces it, then move again",
            file=sys.stderr,
        )
    if args.json:
        print_json(result.to_dict())
        return OK
    print(
        f"moved {counted(len(result.servers), 'server')} to {result.target} "
        f"({counted(len(result.copied), 'blob')} copied); "
        f"'setpoint status --store {result.target}' shows who followed"
    )
    if result.already_moved:
        print(f"  already moved before: {', '.join(result.already_moved)}")
    for digest in result.lost:
        print(f"  rollback target missing at {result.source}: {digest}", file=sys.stderr)
    return OK
