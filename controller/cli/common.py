"""What every ``setpoint`` command shares: exit codes, the parser class, the
arguments several commands take, and how results and invalid definitions print.

Every command module imports this one; it imports none of them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from setpoint.controller.converge.capabilities import DEFAULT_TTL
from setpoint.controller.converge.publish import PointerPolicy
from setpoint.controller.errors import InvalidDefinitions, SetpointError

if TYPE_CHECKING:
    from setpoint.store.base import Store

# Exit codes: scripts and CI jobs may rely on these.
OK, FAILED, TIMED_OUT, INVALID, UNAVAILABLE, USAGE = 0, 1, 2, 3, 4, 64
# reconcile --plan: the branch or the store moved since the plan was made.
PLAN_MOVED = 6

Handler = Callable[[argparse.Namespace], int]
"""What a command runs: the parsed arguments in, an exit code out."""


class Parser(argparse.ArgumentParser):
    """Wrong usage exits with ``USAGE``, not argparse's 2 (which is ``TIMED_OUT``)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(USAGE, f"{self.prog}: error: {message}\n")


def formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def add_command(sub: Any, name: str, handler: Handler, **kwargs: Any) -> argparse.ArgumentParser:
    """Add command ``name`` to the subparsers ``sub``; parsing it selects ``handler``."""
    p: argparse.ArgumentParser = sub.add_parser(name, formatter_class=formatter, **kwargs)
    p.set_defaults(handler=handler)
    log_args(p, after_command=True)
    return p


def log_args(p: argparse.ArgumentParser, after_command: bool = False) -> None:
    """--log-level and --log-format, before the command or after it.

    After the command they default to nothing, so they override the values
    given (or defaulted) before it only when given.
    """
    from setpoint.controller import logs

    level_default = argparse.SUPPRESS if after_command else "info"
    format_default = argparse.SUPPRESS if after_command else "console"
    p.add_argument(
        "--log-level",
        choices=sorted(logs.LEVELS),
        default=level_default,
        help="log events at or above",
    )
    p.add_argument(
        "--log-format", choices=("console", "json"), default=format_default, help="log event format"
    )


def repo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repo", default=".", help="definitions repository (default: .)")
    p.add_argument("--rev", default="HEAD", help="commit, branch or tag to read (default: HEAD)")


def env_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--env",
        metavar="NAME",
        help="environment: parameter values and inventory from environments/NAME.yaml",
    )


def render_secret_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--render-secret",
        default=os.environ.get("SETPOINT_RENDER_SECRET"),
        metavar="FILE",
        help="the secret Heat RandomString values derive from (default: "
        "$SETPOINT_RENDER_SECRET, else NAME.render-secret beside the signing key; "
        "'setpoint keygen' creates it)",
    )


def render_secret(args: argparse.Namespace) -> bytes | None:
    """The render secret the command was given, or the one beside its signing key."""
    from setpoint.controller.definitions.render_secret import find_render_secret

    signing_key = getattr(args, "signing_key", None) or os.environ.get("SETPOINT_SIGNING_KEY")
    return find_render_secret(args.render_secret, signing_key)


def signing_args(p: argparse.ArgumentParser) -> None:
    render_secret_arg(p)
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


def trust_args(p: argparse.ArgumentParser) -> None:
    """What a controller that publishes may build on besides its own key."""
    p.add_argument(
        "--trusted-key",
        action="append",
        default=[],
        metavar="NAME:BASE64",
        help="also accept current pointers signed by this public key (the key you rotate "
        "away from); agents are not told to trust it",
    )
    p.add_argument(
        "--allow-downgrade",
        action="store_true",
        help="replace pointers signed by a key this controller does not trust (without "
        "--signing-key: publish unsigned pointers over signed ones); agents that trust only "
        "that key refuse what is published",
    )


def pointer_policy(args: argparse.Namespace) -> PointerPolicy:
    """The policy ``signing_args`` describe: the key that signs, the keys announced."""
    from setpoint.store.signing import PublicKey, SigningKey

    announce = tuple(str(PublicKey.parse(text)) for text in args.announce_key)
    if args.url_ttl <= 0:
        raise SetpointError("--url-ttl must be positive")
    # Only the commands that publish take these (``trust_args``).
    trusted = tuple(str(PublicKey.parse(text)) for text in getattr(args, "trusted_key", []))
    downgrade = bool(getattr(args, "allow_downgrade", False))
    key = SigningKey.load(args.signing_key) if args.signing_key else None
    return PointerPolicy(
        key, announce, args.url_ttl, verify_keys=trusted, allow_downgrade=downgrade
    )


def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def tuning_args(p: argparse.ArgumentParser, rounds: bool = True) -> None:
    """The controller's two bounds: contextualization rounds, missed heartbeats."""
    from setpoint.controller.definitions.model import DEFAULT_CONVERGE_ROUNDS
    from setpoint.controller.rollout.batches import UNREACHABLE_AFTER_BEATS

    if rounds:
        p.add_argument(
            "--converge-rounds",
            type=_positive(int),
            default=DEFAULT_CONVERGE_ROUNDS,
            metavar="N",
            help="rounds a converge: true cycle may take before the controller stops it "
            f"with the outputs still changing (default: {DEFAULT_CONVERGE_ROUNDS})",
        )
    p.add_argument(
        "--unreachable-after",
        type=_positive(float),
        default=UNREACHABLE_AFTER_BEATS,
        metavar="BEATS",
        help="heartbeats an agent may miss before it is unreachable: out of service for "
        f"rollouts, UNREACHABLE in status (default: {UNREACHABLE_AFTER_BEATS:g})",
    )


def store_workers_arg(p: argparse.ArgumentParser) -> None:
    """``--store-workers``, for the commands that run passes over the whole fleet."""
    from setpoint.store.pool import DEFAULT_WORKERS, WORKERS_ENV

    p.add_argument(
        "--store-workers",
        type=_positive(int),
        default=None,
        metavar="N",
        help="store requests a pass makes side by side: reads, uploads, pointer writes "
        f"(default: ${WORKERS_ENV}, else {DEFAULT_WORKERS}; 1 is one after the other)",
    )


def open_pass_store(args: argparse.Namespace, url: str) -> Store:
    """The store at ``url``, with as many workers as ``store_workers_arg`` asked for."""
    from setpoint.store.url import open_store

    workers = getattr(args, "store_workers", None)
    return open_store(url, workers=int(workers) if workers is not None else None)


def open_existing_store(args: argparse.Namespace, url: str) -> Store | None:
    """The store at ``url`` (with ``--store-workers`` where the command takes it);
    None (having said why) when it is a local path that does not exist: a typo
    must not read as a store with no servers yet."""
    from setpoint.store.local import LocalStore

    store = open_pass_store(args, url)
    if isinstance(store, LocalStore) and not Path(store.root).is_dir():
        print(f"setpoint: no store at {store.root} (no such directory)", file=sys.stderr)
        return None
    return store


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def invalid(exc: InvalidDefinitions, as_json: bool) -> int:
    """Show every problem of invalid definitions; nothing was published."""
    if as_json:
        print_json(
            {"valid": False, "commit": exc.commit, "problems": [p.to_dict() for p in exc.problems]}
        )
    else:
        print(str(exc), file=sys.stderr)
    return INVALID
