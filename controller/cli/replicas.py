"""Several controllers, one leader: the lease flags of ``watch`` and ``reconcile``.

``setpoint watch --replica NAME`` runs one replica of the controller daemon;
``setpoint reconcile`` takes the lease for the length of its run, so two runs
(or a run and a daemon) never interleave a pass. See ``store.lease``.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import structlog

from setpoint.controller.errors import SetpointError
from setpoint.controller.rollout.ledger import ledger_epoch
from setpoint.store.base import Store
from setpoint.store.errors import ConditionalWriteUnsupported
from setpoint.store.lease import (
    DEFAULT_TTL,
    Lease,
    LeaseBusy,
    LeaseLost,
    is_replica_name,
    lease_status,
)

log = structlog.get_logger("setpoint.cli")

LEASE_HELD = 5
"""Exit code of ``setpoint reconcile`` when another controller holds the lease."""


def _seconds(minimum: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
        if not value >= minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, got {text}")
        return value

    return parse


def lease_ttl_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lease-ttl",
        type=_seconds(1.0),
        default=DEFAULT_TTL,
        metavar="SECONDS",
        help="the leader renews the store's lease every third of this; a standby takes "
        f"over when it goes unrenewed this long (default: {DEFAULT_TTL:g})",
    )


def watch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--replica",
        metavar="NAME",
        help="run as one of several controllers on this store: the replica holding the "
        "store's lease deploys, the others stand by and take over when it stops renewing "
        "(NAME: lower-case letters, digits, - and _; unique per replica)",
    )
    lease_ttl_arg(p)


def reconcile_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lease-wait",
        type=_seconds(0.0),
        default=0.0,
        metavar="SECONDS",
        help="wait this long for another controller to release the store's lease "
        f"(default: 0: exit {LEASE_HELD} at once)",
    )
    lease_ttl_arg(p)


def _check(lease: Lease) -> None:
    """Refuse at start-up a store that cannot hold a lease, with what to do instead."""
    try:
        lease.slot.check()
    except ConditionalWriteUnsupported as exc:
        raise SetpointError(
            f"{exc}; several replicas would overwrite each other there: run a single "
            "controller, without --replica"
        ) from exc


def replica_lease(args: argparse.Namespace, store: Store) -> Lease | None:
    """The lease of ``watch --replica NAME``, checked usable. None without --replica:
    then the only controller, which refuses to start beside live replicas."""
    if args.replica is None:
        status = lease_status(store, time.time())
        if status is not None and status.leader is not None:
            raise SetpointError(
                f"{status.leader} leads this store (lease epoch {status.epoch}): another "
                "controller is running; start this one with --replica NAME to stand by"
            )
        return None
    if not is_replica_name(args.replica):
        raise SetpointError(
            f"--replica {args.replica!r}: use lower-case letters, digits, - and _ (at most 64)"
        )
    lease = Lease(store, args.replica, ttl=args.lease_ttl, epoch_floor=lambda: ledger_epoch(store))
    _check(lease)
    return lease


def _run_prefix() -> str:
    host = re.sub(r"[^a-z0-9-]+", "-", socket.gethostname().lower()).strip("-") or "host"
    return f"reconcile-{host}-"


def run_holder() -> str:
    """The holder name of a one-off ``reconcile`` run: host and process."""
    return f"{_run_prefix()}{os.getpid()}"


def run_gone(holder: str) -> bool:
    """Whether ``holder`` is a ``reconcile`` run of this host whose process is gone
    (killed, crashed): its lease need not run out before the next run takes it.
    A process that still runs, or whose state cannot be told, is not gone."""
    prefix = _run_prefix()
    pid = holder[len(prefix) :]
    if not holder.startswith(prefix) or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


@contextmanager
def reconcile_lease(args: argparse.Namespace, store: Store) -> Iterator[Lease | None]:
    """Hold the store's lease for one ``reconcile`` run (waiting up to --lease-wait),
    and release it at the end. A store that cannot hold one runs without it,
    with a warning: one controller at a time there is the operator's to ensure."""
    lease = Lease(
        store,
        run_holder(),
        ttl=args.lease_ttl,
        epoch_floor=lambda: ledger_epoch(store),
        holder_gone=run_gone,
    )
    try:
        lease.acquire(args.lease_wait)
    except ConditionalWriteUnsupported as exc:
        log.warning("no_lease", store=store.url, reason=exc.reason)
        yield None
        return
    try:
        yield lease
    finally:
        lease.release()


def keep(lease: Lease | None) -> None:
    """Between the passes of ``reconcile --wait``: renew when due; stop if lost."""
    if lease is not None and not lease.poll():
        seen = lease.seen
        raise LeaseLost(
            lease.holder, None, seen.holder if seen else None, seen.epoch if seen else None
        )


def busy(exc: LeaseBusy | LeaseLost) -> int:
    """Another controller holds the lease: say who, and exit ``LEASE_HELD``."""
    done = "nothing was published" if isinstance(exc, LeaseBusy) else "stopped"
    print(
        f"setpoint: {exc}; {done}. Wait for it (--lease-wait SECONDS), or see 'setpoint status'",
        file=sys.stderr,
    )
    return LEASE_HELD


__all__ = [
    "LEASE_HELD",
    "LeaseBusy",
    "LeaseLost",
    "busy",
    "keep",
    "reconcile_args",
    "reconcile_lease",
    "replica_lease",
    "watch_args",
]
