"""``setpoint validate`` and ``setpoint render``: a commit's definitions, offline."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from typing import Any

from setpoint.controller.cli.common import (
    INVALID,
    OK,
    add_command,
    env_arg,
    invalid,
    print_json,
    repo_args,
)
from setpoint.controller.definitions.repository import GitRepo
from setpoint.controller.errors import InvalidDefinitions
from setpoint.controller.wording import counted
from setpoint.store.digest import short
from setpoint.store.documents import Report


def add_parsers(sub: Any) -> None:
    p = add_command(
        sub,
        "validate",
        cmd_validate,
        help="check a commit's definitions",
        description="Check every definition in a commit and list all problems at once, each "
        "with file, line and field. Reads the commit through git, never the working directory: "
        "commit first.",
    )
    repo_args(p)
    env_arg(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = add_command(
        sub,
        "render",
        cmd_render,
        help="show the derived configs a commit produces",
        description="Render every (deployment, server) pair of a commit into its derived config "
        "and digest, offline, and the outputs of Heat templates. Inputs and outputs that read "
        "other deployments' outputs (get_attr) are shown as waiting (pending) unless --store "
        "gives reported outputs.",
    )
    repo_args(p)
    env_arg(p)
    p.add_argument("--server", help="only this server, with each derived config in full")
    p.add_argument("--store", help="read reported outputs from this store (URL or path)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def cmd_validate(args: argparse.Namespace) -> int:
    from setpoint.controller.definitions.loader import load_model
    from setpoint.controller.errors import Problem

    warnings: list[Problem] = []
    with GitRepo.open(args.repo) as repo:
        try:
            model = load_model(repo.tree(args.rev), env=args.env, on_problem=warnings.append)
        except InvalidDefinitions as exc:
            return invalid(exc, args.json)
    for warning in sorted(warnings):  # e.g. Heat resources setpoint does not manage
        print(f"warning: {warning}", file=sys.stderr)
    deployments = model.deployments()
    pairs = sum(len(d.servers) for d in deployments)
    if args.json:
        print_json(
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
            f"{model.commit[:12]}: valid: {counted(len(model.components), 'component')}, "
            f"{counted(len(model.stacks), 'stack')}, {counted(len(deployments), 'deployment')}, "
            f"{counted(pairs, '(deployment, server) pair')}"
        )
    return OK


def cmd_render(args: argparse.Namespace) -> int:
    from setpoint.controller.definitions.loader import load_model
    from setpoint.controller.rollout.desired import compute_desired
    from setpoint.controller.rollout.outputs import stack_outputs
    from setpoint.store.documents import Manifest

    with GitRepo.open(args.repo) as repo:
        try:
            model = load_model(repo.tree(args.rev), env=args.env)
        except InvalidDefinitions as exc:
            return invalid(exc, args.json)
    reports = _reported(args.store, model.servers_in_use()) if args.store else {}

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
            _rendered_entry(model, desired, e, full=bool(args.server))
            for e in desired.manifests[server].deployments
        ]
    result["waiting"] = [w.to_dict() for w in desired.waiting if w.server in servers]
    outputs = stack_outputs(model, desired, reports)
    result["outputs"] = [o.to_dict() for o in outputs]
    if args.json:
        print_json(result)
    else:
        _print_rendered(result, outputs)
    return OK


def _reported(store_url: str, servers: Iterable[str]) -> dict[str, Report]:
    """The reports of ``servers`` in the store (their outputs feed get_attr)."""
    from setpoint.store.url import open_store

    store = open_store(store_url)
    return {s: r for s in servers if (r := store.read_report(s)) is not None}


def _rendered_entry(model: Any, desired: Any, entry: Any, full: bool) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "deployment": entry.name,
        "id": entry.config,
        "actions": list(entry.actions),
    }
    if full:
        body = desired.configs[entry.config].body
        shown["config"] = masked_body(model, entry.qualified, body)
    return shown


def _print_rendered(result: dict[str, Any], outputs: list[Any]) -> None:
    from setpoint.controller.rollout.outputs import format_outputs

    print(f"commit {result['commit']}")
    for server, entries in result["servers"].items():
        print(f"\n{server}")
        for e in entries:
            print(f"  {e['deployment']:<32} {short(e['id'], 16)}")
            if "config" in e:
                body = json.dumps({"id": e["id"], **e["config"]}, indent=2, sort_keys=True)
                print("    " + body.replace("\n", "\n    "))
    if result["waiting"]:
        print("\nwaiting (known after apply):")
        for w in result["waiting"]:
            print(f"  {w['deployment']} on {w['server']}: {w['reason']}")
    if outputs:
        print("\n" + "\n".join(format_outputs(outputs)))


def masked_body(model: Any, qualified: str, body: dict[str, Any]) -> dict[str, Any]:
    """A derived config to show people: values of inputs marked ``secret: true``
    masked, as ``setpoint plan`` masks them (the digest still covers them)."""
    from setpoint.store.masking import mask_secret_inputs

    component = model.components[model.deployment(qualified).component]
    secrets = {i.name for i in component.inputs if i.secret}
    return mask_secret_inputs(body, secrets)
