"""The change-control commands of ``setpoint``: plan, watch and history.

Kept apart from ``cli.py`` so the parser of each command sits next to the code
that runs it; ``cli.py`` registers them with ``add_commands``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from controller.errors import InvalidDefinitions, SetpointError
from controller.gitrepo import GitError, GitRepo
from store.errors import StoreError

# The same numbers as cli.py (which imports this module, not the other way round).
OK, FAILED, INVALID, UNAVAILABLE = 0, 1, 3, 4
# `setpoint plan --exit-code`: what a CI job branches on.
PLAN_NO_CHANGES, PLAN_ERROR, PLAN_CHANGES = 0, 1, 2

Formatter = Callable[[str], argparse.HelpFormatter]


def env_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--env",
        metavar="NAME",
        help="environment: parameter values and inventory from environments/NAME.yaml",
    )


def add_commands(sub: Any, formatter: Formatter) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Add plan, watch and history to ``sub``; return their handlers by name."""
    p = sub.add_parser(
        "plan",
        help="what merging HEAD would change, offline",
        description="Render BASE and HEAD offline and show, per deployment and server, CREATE, "
        "UPDATE, REPLACE, DELETE or unchanged, with old and new digests and a diff of the "
        "config text and input values (secret inputs masked). Outputs that only agents report "
        "are 'known after apply' unless --store gives them. Invalid definitions in HEAD are "
        "reported as by 'setpoint validate' and fail the plan.",
        epilog="exit codes with --exit-code: 0 no changes, 2 changes, 1 error (invalid HEAD, "
        "unusable repository or store). Without it: 0, 3 invalid HEAD, 4 unusable.",
        formatter_class=formatter,
    )
    p.add_argument("revs", nargs="+", metavar="REV", help="BASE HEAD, BASE..HEAD, or BASE")
    p.add_argument("--repo", default=".", help="definitions repository (default: .)")
    env_arg(p)
    p.add_argument("--store", help="take reported outputs from this store; count uploads")
    p.add_argument(
        "--format", choices=("text", "markdown", "json"), default="text", help="output format"
    )
    p.add_argument("--exit-code", action="store_true", help="0 no changes, 2 changes, 1 error")
    p.add_argument("--no-diff", action="store_true", help="text: leave the diffs out")
    p.add_argument(
        "--max-size",
        type=int,
        default=None,
        metavar="CHARS",
        help="markdown: cut diffs beyond this size, with a note (default: 60000)",
    )
    return {"plan": cmd_plan}


def _revs(revs: list[str]) -> tuple[str, str]:
    if len(revs) == 1:
        base, dots, head = revs[0].partition("..")
        return (base, head or "HEAD") if dots else (base, "HEAD")
    if len(revs) == 2:
        return revs[0], revs[1]
    raise SetpointError("plan takes BASE HEAD, BASE..HEAD or BASE")


def _invalid_head(exc: InvalidDefinitions, fmt: str) -> None:
    if fmt == "json":
        doc = {
            "valid": False,
            "commit": exc.commit,
            "problems": [p.to_dict() for p in exc.problems],
        }
        print(json.dumps(doc, indent=2, sort_keys=True))
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
    from controller.loader import load_model
    from controller.notes import Notebook, converged_configs
    from controller.plan import blobs_to_upload, make_plan
    from controller.plan_format import MARKDOWN_LIMIT, format_json, format_markdown, format_text
    from store.documents import Report
    from store.url import open_store

    base_rev, head_rev = _revs(args.revs)
    with GitRepo.open(args.repo) as repo:
        head = load_model(repo.tree(head_rev), env=args.env)
        base_commit = repo.resolve(base_rev)
        try:
            base = load_model(repo.tree(base_commit), env=args.env)
            base_problems = []
        except InvalidDefinitions as exc:
            # Nothing was deployed from an invalid commit: plan as from an empty fleet.
            base, base_problems = None, exc.problems
        history = converged_configs(Notebook(repo.path))
    store = open_store(args.store) if args.store else None
    reports: dict[str, Report] = {}
    if store is not None:
        servers = head.servers_in_use() | (base.servers_in_use() if base else set())
        for server in sorted(servers):
            report = store.read_report(server)
            if report is not None:
                reports[server] = report
    plan = make_plan(base, head, reports, history, base_commit, base_problems)
    if store is not None:
        plan.uploads = blobs_to_upload(head, reports, store.find_missing)
    if args.format == "json":
        sys.stdout.write(format_json(plan))
    elif args.format == "markdown":
        sys.stdout.write(format_markdown(plan, args.max_size or MARKDOWN_LIMIT))
    else:
        sys.stdout.write(format_text(plan, diffs=not args.no_diff))
    if not args.exit_code:
        return OK
    return PLAN_CHANGES if plan.has_changes else PLAN_NO_CHANGES
