"""``setpoint-agent``: run a server's deployments from the store, report back."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn

import structlog

from setpoint.agentshim import __version__
from setpoint.agentshim.agent import Agent
from setpoint.agentshim.errors import StateError
from setpoint.agentshim.logs import FORMATS, configure
from setpoint.agentshim.reporting import DEFAULT_HEARTBEAT
from setpoint.agentshim.state import Layout, locked
from setpoint.agentshim.trust import Trust
from setpoint.store import Store, StoreError, open_store
from setpoint.store.bootstrap import Bootstrap
from setpoint.store.documents import is_server_name
from setpoint.store.http import CapabilityStore
from setpoint.store.signing import PublicKey

EXIT_OK = 0
EXIT_STORE = 3
EXIT_USAGE = 64

log = structlog.get_logger("setpoint.agent")

EPILOG = """\
how it runs:
  Each cycle polls agents/<server>/pointer (a conditional GET). A new pointer is
  accepted only whole: its generation must not be lower than the one accepted
  (anti-rollback) and its manifest, configs and files must verify; otherwise the
  last good configs keep running and the report carries the error.
  Deployments run in manifest order. A config runs once per digest: CREATE the
  first time, UPDATE when the digest changes. An action outside the deployment's
  actions, or without a config in the component, is COMPLETE without running.
  A failure is retried after --retry-backoff * 2**(n-1) seconds (at most 300),
  up to --max-attempts, then reported final. A deployment gone from the manifest
  runs its DELETE config and is forgotten. A success is recorded on disk only
  after its hook succeeded; a run cut short by a crash counts as a failed
  attempt and runs again. The report (agents/<server>/report) is rewritten after
  every change.

hooks:
  An executable <hooks-dir>/<tool> gets Heat's document as JSON on stdin and
  prints {deploy_stdout, deploy_stderr, deploy_status_code, <outputs>...}.
  The built-in 'script' tool runs the config text with the inputs as environment
  variables and reads outputs from $heat_outputs_path.<name>. A missing hook, a
  crash, no JSON, a nonzero status or a timeout is FAILED, with the reason.

exit status:
  0  ok (--once: the cycle ran and nothing is FAILED)
  1  --once: a deployment is FAILED, or the pointer was refused
  3  the store could not be read or written (--once), or the state dir is unusable
  64 usage error
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _positive(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {value}")
    return number


def _non_negative(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {value}")
    return number


def _at_least_one(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="setpoint-agent",
        description=(
            "Run this server's deployments as published by the setpoint controller: "
            "poll the store, run each new config through its hook, report back."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_source_options(parser)
    _add_run_options(parser)
    return parser


def _add_source_options(parser: argparse.ArgumentParser) -> None:
    """Where to pull from: --bootstrap, or --store and --server with the trust flags."""
    where = parser.add_argument_group(
        "where to pull from",
        "Either --bootstrap (what 'setpoint enroll' prints: the server, the store's "
        "URLs and the trusted keys), or --store and --server with --trusted-key or "
        "--allow-unsigned.",
    )
    where.add_argument(
        "--bootstrap", type=Path, metavar="FILE", help="bootstrap JSON from 'setpoint enroll'"
    )
    where.add_argument("--store", metavar="URL", help="store URL (file:///path, a path)")
    where.add_argument("--server", metavar="NAME", help="this server's name in the store")
    where.add_argument(
        "--trusted-key",
        action="append",
        default=[],
        metavar="NAME:BASE64",
        help="a public key whose signed pointers are believed (repeatable)",
    )
    where.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="believe unsigned pointers (development only: anyone who can write to the "
        "store could then make this server run anything)",
    )


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """The state dir, how often to poll and report, the hooks, retries, logs."""
    parser.add_argument(
        "--state-dir",
        required=True,
        type=Path,
        metavar="DIR",
        help="where the agent keeps its state, configs, files, work dirs and logs",
    )
    parser.add_argument("--once", action="store_true", help="run one cycle and exit")
    parser.add_argument(
        "--interval",
        type=_positive,
        default=10.0,
        metavar="SECONDS",
        help="seconds between polls, jittered by ±10%% (default: 10)",
    )
    parser.add_argument(
        "--heartbeat",
        type=_positive,
        default=DEFAULT_HEARTBEAT,
        metavar="SECONDS",
        help="rewrite the report at least this often even when nothing changed, so the "
        "controller can tell a silent agent from an idle one (default: 300)",
    )
    parser.add_argument(
        "--drift-interval",
        type=_positive,
        default=None,
        metavar="SECONDS",
        help="check the applied configs for drift (the tools' check modes, the attached "
        "files' digests) every SECONDS jittered by ±10%%, the first one interval after the "
        "apply; when each was last checked is kept in the state dir, so a restart (or "
        "the next --once) checks when due (default: never)",
    )
    parser.add_argument(
        "--hooks-dir",
        type=Path,
        metavar="DIR",
        help="where executable hooks live, one per tool (default: STATE_DIR/hooks)",
    )
    parser.add_argument(
        "--max-attempts",
        type=_at_least_one,
        default=3,
        metavar="N",
        help="attempts per config digest before giving up (default: 3)",
    )
    parser.add_argument(
        "--retry-backoff",
        type=_non_negative,
        default=5.0,
        metavar="SECONDS",
        help="delay after the n-th failure is SECONDS * 2**(n-1), at most 300 (default: 5)",
    )
    parser.add_argument(
        "--log-format", choices=FORMATS, default="console", help="log format (default: console)"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")


def _source(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[str, Store, Trust]:
    """The server name, its store and its trust, from --bootstrap or the flags."""
    if args.bootstrap is not None:
        if args.store or args.server or args.trusted_key or args.allow_unsigned:
            parser.error("--bootstrap already says the server, the store and the trusted keys")
        try:
            boot = Bootstrap.load(args.bootstrap)
            trust = Trust(keys=boot.trusted_keys)
            if boot.capabilities is not None:
                return boot.server, CapabilityStore(boot.server, boot.capabilities), trust
            assert boot.store_url is not None
            return boot.server, open_store(boot.store_url), trust
        except StoreError as exc:
            parser.error(str(exc))
    if not args.store or not args.server:
        parser.error("give --bootstrap FILE, or --store URL and --server NAME")
    if not is_server_name(args.server):
        parser.error(f"--server: {args.server!r} is not a valid server name")
    if not args.trusted_key and not args.allow_unsigned:
        parser.error("no trusted keys: give --trusted-key NAME:BASE64 (or --allow-unsigned)")
    keys: dict[str, str] = {}
    for text in args.trusted_key:
        try:
            key = PublicKey.parse(text)
        except StoreError as exc:
            parser.error(f"--trusted-key: {exc}")
        keys[key.name] = str(key)
    if "://" in args.store and not args.store.startswith(("file://", "memory://")):
        parser.error(
            "--store: an agent reaches S3 or Swift only through the URLs of a bootstrap "
            "('setpoint enroll SERVER --store URL' prints one); use --bootstrap FILE"
        )
    try:
        store = open_store(args.store)
    except StoreError as exc:
        parser.error(f"--store: {exc}")
    return args.server, store, Trust(keys=keys, allow_unsigned=args.allow_unsigned)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure(args.log_format)
    server, store, trust = _source(parser, args)

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal_received", signal=signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with locked(Layout(args.state_dir.absolute())):
            agent = Agent(
                store,
                server,
                args.state_dir,
                hooks_dir=args.hooks_dir,
                max_attempts=args.max_attempts,
                retry_backoff=args.retry_backoff,
                sleep=stop.wait,
                stop_event=stop,
                trust=trust,
                heartbeat=args.heartbeat,
                drift_interval=args.drift_interval,
                once=args.once,
            )
            if not args.once:
                agent.run_forever(args.interval, stop)
                return EXIT_OK
            result = agent.run_once()
    except (StateError, OSError) as exc:
        log.error("state_dir_unusable", error=str(exc))
        return EXIT_STORE
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    log.info(
        "cycle_done",
        generation=result.generation,
        ran=len(result.ran),
        failed=result.failing,
        error=result.error,
        store_error=result.store_error,
    )
    return result.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
