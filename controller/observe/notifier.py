"""After each pass: which events are new, record them in the ledger, then send them.

Targets come from the deployed commit's ``notifications.yaml`` and from the
command line (``--notify URL``, ``--notify-slack URL``). With none, nothing is
derived and nothing written: the ledger of a controller that tells no one
stays as it was.

Order is what makes a notification go at most once, across restarts and
replicas: the new events' keys are written into the ledger (signed, fenced by
the lease like the pass's own write) and only then queued for sending. A
controller that dies between the two loses those notifications; one that
restarts finds their keys and sends nothing again. A write that fails sends
nothing either: the next pass finds the events still new.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from setpoint.controller.converge.reconcile import PassOutcome, Reconciler
from setpoint.controller.definitions.model import NotifyTarget
from setpoint.controller.observe.events import (
    UNREACHABLE_BURST,
    Event,
    grouped,
    pass_events,
    unsent,
)
from setpoint.controller.observe.sender import Sender
from setpoint.controller.rollout.batches import UNREACHABLE_AFTER_BEATS
from setpoint.store.errors import StoreError

log = structlog.get_logger("setpoint.notify")


def command_line_targets(
    webhooks: list[str], slack: list[str], secret_env: str | None = None
) -> tuple[NotifyTarget, ...]:
    """``--notify URL`` (signed with ``$secret_env`` when given) and ``--notify-slack URL``."""
    targets = [
        NotifyTarget(f"--notify {url}", "webhook", url, secret_env=secret_env) for url in webhooks
    ]
    targets += [NotifyTarget(f"--notify-slack {url}", "slack", url) for url in slack]
    return tuple(targets)


@dataclass
class Notifier:
    targets: tuple[NotifyTarget, ...] = ()
    sender: Sender = field(default_factory=Sender)
    clock: Callable[[], float] = time.time
    unreachable_after: float = UNREACHABLE_AFTER_BEATS
    # More agents than this going silent in one pass are told in one notification.
    burst: int = UNREACHABLE_BURST

    def after_pass(self, reconciler: Reconciler, outcome: PassOutcome) -> list[Event]:
        """Record the pass's new events in the ledger, then queue them; the events."""
        targets = self.targets + outcome.notifications
        if not targets:
            return []
        events = pass_events(outcome, self.clock(), self.unreachable_after)
        new = unsent(events, outcome.ledger, outcome.commit)
        try:
            reconciler.rewrite_ledger(outcome.ledger)
        except StoreError as exc:
            log.warning(
                "notifications_held",
                error=str(exc),
                notifications=[e.key for e in new],
                reason="not recorded in the ledger, so not sent: the next pass tries again",
            )
            return []
        for event in grouped(new, self.burst):
            for target in targets:
                if event.kind in target.events:
                    self.sender.submit(target, event)
        return new
