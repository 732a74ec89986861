"""The store maintenance commands of ``setpoint``: fsck and gc.

``fsck`` checks every store invariant (and repairs lost blobs by rendering
their commit again); ``gc`` deletes blobs nothing needs any more, by mark and
sweep. The work is in ``controller.fleet.fsck`` and ``controller.fleet.gc``;
this module parses arguments, gathers trusted keys and the recently deployed
commits (from the notes), and prints.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from setpoint.controller.cli.common import (
    FAILED,
    OK,
    USAGE,
    add_command,
    print_json,
    render_secret,
    render_secret_arg,
)
from setpoint.controller.definitions.repository import GitRepo
from setpoint.store.digest import short

DEFAULT_KEEP_COMMITS = 5

FSCK_EPILOG = """\
exit codes:
  0   clean: every invariant holds (after --repair: holds now)
  1   problems found, or left after --repair; one line each above the summary
  4   the store (or --repo) could not be used: unreachable, denied, unknown scheme
  64  wrong usage (--repair without --repo)
"""

GC_EPILOG = """\
exit codes:
  0   done: swept what the last mark held, or marked, or waiting for the grace
  1   refused: a pointer or a blob it reaches is broken, so what is reachable
      cannot be told and nothing was deleted; run 'setpoint fsck'
  4   the store (or --repo) could not be used
  64  wrong usage (--keep-commits without --repo)
"""


def add_parsers(sub: Any) -> None:
    p = add_command(
        sub,
        "fsck",
        cmd_fsck,
        help="check every store invariant; repair lost or corrupt blobs",
        description="Check, for every server: its pointer parses and its signature verifies "
        "with a trusted key; its manifest and every blob it reaches (configs, files, directory "
        "zips, MIME bodies) exist and re-hash to their digests; its report names it and "
        "answers a generation no higher than the pointer's. Also the blobs the ledger's "
        "rollbacks need, and leftover .tmp-* files of a killed write in a local store. One "
        "line per problem, then a summary. With --repair (and --repo), put back each lost or "
        "corrupt blob by rendering again the commit its pointer names: render is pure, so "
        "the bytes are the same.",
        epilog=FSCK_EPILOG,
    )
    p.add_argument("--store", required=True, help="store URL or path")
    _key_args(p)
    p.add_argument("--repair", action="store_true", help="re-render lost or corrupt blobs")
    p.add_argument("--repo", help="definitions repository the pointers' commits are in")
    _env_arg(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON (for CI)")

    p = add_command(
        sub,
        "gc",
        cmd_gc,
        help="delete blobs nothing needs any more (mark, then sweep after a grace)",
        description="A blob is kept while a pointer reaches it, a rollback in the ledger "
        "would go back to it, or (with --repo) one of the last --keep-commits deployed "
        "commits renders it. The rest is marked in controller/gc-mark; a later run, at least "
        "--grace seconds after the mark, deletes only marked blobs still unreachable then, "
        "and marks again. Blobs written after a mark are never in it. Safe beside a running "
        "reconcile: a blob a publish names while it is swept is put back. Also removes "
        "leftover .tmp-* files of a killed write older than --grace (local stores).",
        epilog=GC_EPILOG,
    )
    p.add_argument("--store", required=True, help="store URL or path")
    p.add_argument(
        "--grace",
        type=_seconds,
        default=3600.0,
        metavar="SECONDS",
        help="time between a mark and the sweep that may act on it (default: 3600)",
    )
    p.add_argument(
        "--keep-commits",
        type=int,
        metavar="N",
        help="also keep what the last N deployed commits render, from the commit notes of "
        f"--repo (default with --repo: {DEFAULT_KEEP_COMMITS})",
    )
    p.add_argument("--repo", help="definitions repository whose notes list deployed commits")
    p.add_argument("--branch", default="HEAD", help="branch the commits are on (default: HEAD)")
    _env_arg(p)
    p.add_argument("--dry-run", action="store_true", help="say what would go; change nothing")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _env_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--env",
        metavar="NAME",
        help="environment the store serves: parameter values and inventory from "
        "environments/NAME.yaml when rendering",
    )
    render_secret_arg(p)


def _key_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--signing-key",
        default=os.environ.get("SETPOINT_SIGNING_KEY"),
        metavar="FILE",
        help="trust the public half of the controller's secret key (default: "
        "$SETPOINT_SIGNING_KEY)",
    )
    p.add_argument(
        "--trusted-key",
        action="append",
        default=[],
        metavar="NAME:BASE64",
        help="trust this public key too (repeat; e.g. one announced for rotation). Without "
        "any key, signatures are not checked and the summary says so",
    )


def _trusted(args: argparse.Namespace) -> dict[str, Any] | None:
    from setpoint.store.signing import PublicKey, SigningKey

    keys = [PublicKey.parse(text) for text in args.trusted_key]
    if args.signing_key:
        keys.append(SigningKey.load(args.signing_key).public())
    return {k.name: k for k in keys} if keys else None


def _usage(message: str) -> int:
    print(f"setpoint: {message}", file=sys.stderr)
    return USAGE


def cmd_fsck(args: argparse.Namespace) -> int:
    from setpoint.controller.fleet.fsck import fsck
    from setpoint.store.url import open_store

    if args.repair and not args.repo:
        return _usage("fsck --repair needs --repo: lost blobs are rendered again from git")
    trusted = _trusted(args)
    store = open_store(args.store)
    if args.repair:
        with GitRepo.open(args.repo) as repo:
            result = fsck(
                store, trusted, repo=repo, env=args.env, render_secret=render_secret(args)
            )
    else:
        result = fsck(store, trusted)
    if args.json:
        print_json(result.to_dict())
    else:
        for problem in result.problems:
            print(problem)
        for digest, how in sorted(result.repaired.items()):
            print(f"repaired blob {short(digest, 16)}: {how}")
        for digest, why in sorted(result.unrepairable.items()):
            print(f"not repaired: blob {short(digest, 16)}: {why}")
        print(f"fsck: {result.summary()}")
    return OK if result.clean else FAILED


def cmd_gc(args: argparse.Namespace) -> int:
    from setpoint.controller.fleet.gc import gc
    from setpoint.store.url import open_store

    if args.keep_commits is not None and not args.repo:
        return _usage("gc --keep-commits needs --repo: deployed commits come from its notes")
    if args.keep_commits is not None and args.keep_commits < 0:
        return _usage("--keep-commits must not be negative")
    store = open_store(args.store)
    keep: set[str] = set()
    if args.repo:
        keep = _kept(args, store)
    result = gc(store, args.grace, keep=keep, dry_run=args.dry_run)
    if args.json:
        print_json(result.to_dict())
        return OK
    verb = "would delete" if args.dry_run else "deleted"
    for digest in result.swept:
        print(f"{verb} blob {short(digest, 16)}")
    for digest in result.restored:
        print(f"put back blob {short(digest, 16)}: a publish named it during the sweep")
    for rel in result.temp_removed:
        print(f"{verb} {rel}")
    print(f"gc: {result.summary()}")
    return OK


def _kept(args: argparse.Namespace, store: Any) -> set[str]:
    """Blobs of the last ``--keep-commits`` commits deployed to this store's environment."""
    from setpoint.controller.fleet.gc import commit_blobs
    from setpoint.controller.gitops.environments import record_name
    from setpoint.controller.gitops.history import deployed_history

    n = DEFAULT_KEEP_COMMITS if args.keep_commits is None else args.keep_commits
    if n == 0:
        return set()
    with GitRepo.open(args.repo) as repo:
        history = deployed_history(repo.path, args.branch, record_name(args.env), n)
        configs = [d for deployed in history for ds in deployed.record.configs.values() for d in ds]
        commits = [d.commit for d in history]
        secret = render_secret(args)
        return commit_blobs(repo, store, commits, configs, env=args.env, render_secret=secret)
