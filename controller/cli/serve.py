"""``setpoint serve``: the read-only web dashboard (``controller.dashboard``),
served by uvicorn."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sys
from typing import Any

from setpoint.controller.cli.common import (
    UNAVAILABLE,
    USAGE,
    add_command,
    env_arg,
    open_existing_store,
    render_secret,
    render_secret_arg,
    store_workers_arg,
    tuning_args,
)

TOKEN_ENV = "SETPOINT_SERVE_TOKEN"


def add_parsers(sub: Any) -> None:
    p = add_command(
        sub,
        "serve",
        cmd_serve,
        help="a read-only web dashboard of the fleet",
        description="Serve a web dashboard over the store: the fleet overview (per stack and "
        "deployment: converged, in progress, waiting and on what, failed, quarantined, "
        "unreachable; rollouts in flight), each server's deployments and last runs, each "
        "deployment's servers in rollout order and its derived config, and, with --repo, "
        "the history of deployed commits and the pending change; /metrics in Prometheus' text "
        "format, as 'watch --metrics-port' serves it. Pages work without "
        "JavaScript and update in place with it. It only reads: the store and the "
        "repository are never written, and secret inputs are masked everywhere.",
        epilog="It listens on 127.0.0.1 unless --host says otherwise, and refuses another "
        "address without --token (checked as a bearer token, or as the password of HTTP "
        "basic auth) unless --insecure-no-auth. exit codes: 0 stopped (Ctrl-C or SIGTERM), "
        "4 the store or the repository cannot be read, or the address cannot be bound, 64 "
        "wrong usage "
        "(another address without a token).",
    )
    p.add_argument("--store", required=True, help="store URL or path (read only)")
    p.add_argument("--repo", help="definitions repository: history and the pending change")
    p.add_argument(
        "--branch", default="HEAD", help="the branch desired (with --repo; default: HEAD)"
    )
    env_arg(p)
    render_secret_arg(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (8080; 0: any free port)")
    p.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV),
        help=f"require this token on every request (default: ${TOKEN_ENV})",
    )
    p.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="serve on a non-loopback --host without a token",
    )
    p.add_argument(
        "--refresh",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="read the fleet from the store in the background this often; pages answer "
        "from the last read and say how old it is (2; a slow read: at most a third of the time)",
    )
    p.add_argument(
        "--live-every",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between a page's live updates in the browser; 0: none (5)",
    )
    tuning_args(p, rounds=False)
    store_workers_arg(p)


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, listening (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=128)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from setpoint.controller.dashboard.access import BindRefused, check_bind
    from setpoint.controller.dashboard.app import create_app
    from setpoint.controller.dashboard.metrics import fleet_metrics
    from setpoint.controller.definitions.repository import GitRepo

    try:
        check_bind(args.host, args.token, args.insecure_no_auth)
    except BindRefused as exc:
        print(f"setpoint: {exc}", file=sys.stderr)
        return USAGE
    store = open_existing_store(args, args.store)
    if store is None:
        return UNAVAILABLE
    if args.repo:
        with GitRepo.open(args.repo) as repo:  # a wrong path fails now, not on a page
            repo_path = repo.path
    app = create_app(
        store,
        repo=repo_path if args.repo else None,
        branch=args.branch,
        env=args.env,
        render_secret=render_secret(args),
        token=args.token,
        refresh=args.refresh,
        live_every=args.live_every,
        unreachable_after=args.unreachable_after,
        # /metrics: the fleet of the snapshot the pages read, as fresh as --refresh.
        metrics=fleet_metrics(store, args.unreachable_after),
    )
    try:
        sock = listen(args.host, args.port)
    except OSError as exc:
        print(f"setpoint: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return UNAVAILABLE
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"setpoint serve: http://{shown}:{port}/ (read only; Ctrl-C stops)", flush=True)
    # Lifespan events start the background read of the fleet and stop it with the server.
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    # uvicorn shuts down on SIGINT or SIGTERM, then raises the signal again, and
    # SIGTERM's default action would end the process by the signal (-15), which
    # systemd counts as a failure. SIGTERM raises KeyboardInterrupt as Ctrl-C does:
    # stopping is the normal way out (exit 0, as --help says and as 'watch' does).
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.Server(config).run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
