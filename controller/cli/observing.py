"""The flags of ``watch`` and ``reconcile`` that tell people: ``--notify``, ``--metrics-port``."""

from __future__ import annotations

import argparse
import os
from typing import Any
from urllib.parse import urlsplit

import structlog

from setpoint.controller.errors import SetpointError
from setpoint.controller.observe.metrics import Metrics
from setpoint.controller.observe.notifier import Notifier, command_line_targets
from setpoint.controller.observe.sender import Sender
from setpoint.store.base import Store
from setpoint.store.lease import Lease

log = structlog.get_logger("setpoint.cli")


def _http_url(text: str) -> str:
    if urlsplit(text).scheme not in ("http", "https") or not urlsplit(text).netloc:
        raise argparse.ArgumentTypeError(f"expected an http or https URL, got {text!r}")
    return text


def notify_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--notify",
        action="append",
        default=[],
        type=_http_url,
        metavar="URL",
        help="POST each event (rollout started, batch failed, rollback, commit converged, "
        "agent unreachable) as JSON to URL, as well as to the targets of the commit's "
        "notifications.yaml (may be repeated)",
    )
    p.add_argument(
        "--notify-slack",
        action="append",
        default=[],
        type=_http_url,
        metavar="URL",
        help="post each event's summary to a Slack-compatible incoming webhook (may be repeated)",
    )
    p.add_argument(
        "--notify-secret-env",
        metavar="VAR",
        help="sign --notify bodies with HMAC-SHA256 under the key in $VAR "
        "(header X-Setpoint-Signature: sha256=<hex>)",
    )


def metrics_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (0: any free port)",
    )
    p.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="the address --metrics-port binds (default: 127.0.0.1)",
    )


def notifier(args: argparse.Namespace, clock: Any = None) -> Notifier:
    """The notifier the flags ask for (the commit's notifications.yaml is added per pass)."""
    secret = args.notify_secret_env
    if secret is not None and not os.environ.get(secret):
        # Found out now, not as every notification refused later.
        raise SetpointError(f"--notify-secret-env {secret}: ${secret} is not set")
    targets = command_line_targets(args.notify, args.notify_slack, args.notify_secret_env)
    extra = {"clock": clock} if clock is not None else {}
    return Notifier(targets, Sender(), unreachable_after=args.unreachable_after, **extra)


def metrics(args: argparse.Namespace, store: Store, lease: Lease | None) -> Metrics | None:
    """With ``--metrics-port``: the daemon's metrics, served from a background thread."""
    if args.metrics_port is None:
        return None
    served = Metrics(store, lease, unreachable_after=args.unreachable_after, read_store=False)
    try:
        server = served.serve(args.metrics_port, args.metrics_host)
    except OSError as exc:  # the port is taken, the address is not this machine's
        where = f"{args.metrics_host}:{args.metrics_port}"
        raise SetpointError(f"--metrics-port: cannot serve on {where}: {exc.strerror}") from exc
    host, port = server.server_address[:2]
    log.info("metrics_serving", url=f"http://{host}:{port}/metrics")
    return served
