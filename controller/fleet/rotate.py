"""Rotate Swift's TempURL key without breaking running agents.

Swift checks a TempURL against both account keys, so the rotation is:

1. put a new secret in key 2 (URLs signed with key 1 keep working);
2. publish every server a new pointer generation whose URLs are signed with
   key 2 (the store signs with key 2 while it is set);
3. wait until every agent has answered that generation: it now polls with
   the new URLs;
4. move the new secret to key 1 and remove key 2: the old URLs stop working,
   the new ones keep working.

An agent that does not answer in time stops the rotation before step 4 (the
old key stays valid) unless ``force`` is given; it must then be enrolled
again. An account without a key simply gets one.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol, cast

import structlog

from setpoint.controller.converge.reconcile import Reconciler
from setpoint.controller.errors import SetpointError

log = structlog.get_logger("setpoint.rotate")


class RotationError(SetpointError):
    def __init__(self, reason: str, behind: list[str] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.behind = behind or []


class KeyedStore(Protocol):
    """A store with TempURL keys (Swift)."""

    def temp_url_keys(self) -> tuple[str | None, str | None]: ...
    def set_temp_url_key(self, slot: Literal[1, 2], value: str | None) -> None: ...


@dataclass
class RotationResult:
    generations: dict[str, int] = field(default_factory=dict)
    behind: list[str] = field(default_factory=list)
    retired_old_key: bool = False


def rotate_temp_url_key(
    reconciler: Reconciler,
    timeout: float,
    interval: float = 2.0,
    force: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    new_secret: str | None = None,
) -> RotationResult:
    store = reconciler.store
    if store.capability_kind != "swift":
        raise RotationError(f"{store.url}: only a Swift store has TempURL keys to rotate")
    keyed = cast(KeyedStore, store)
    secret = new_secret or secrets.token_urlsafe(32)
    key1, key2 = keyed.temp_url_keys()
    result = RotationResult()
    if key1 is None and key2 is None:
        keyed.set_temp_url_key(1, secret)
        log.info("temp_url_key_created")
        return result
    if key2 is not None:
        log.warning("temp_url_rotation_resumed", detail="key 2 was set: finishing that rotation")
        secret = key2
    else:
        keyed.set_temp_url_key(2, secret)
    log.info("temp_url_key_2_set")

    forced = replace(reconciler, policy=replace(reconciler.policy, force_renewal=True))
    outcome = forced.run_pass()
    result.generations = {s: p.generation for s, p in outcome.published.pointers.items()}
    log.info("capabilities_reissued", servers=len(result.generations))

    deadline = reconciler.clock() + timeout
    while True:
        result.behind = sorted(
            server
            for server, generation in result.generations.items()
            if (report := store.read_report(server)) is None or report.generation < generation
        )
        if not result.behind or reconciler.clock() >= deadline:
            break
        sleep(interval)
    if result.behind and not force:
        raise RotationError(
            f"not every agent picked up its new URLs (behind: "
            f"{', '.join(result.behind)}); the old key stays valid (rerun, or --force to "
            "retire it anyway and enroll those servers again)",
            result.behind,
        )
    keyed.set_temp_url_key(1, secret)
    keyed.set_temp_url_key(2, None)
    result.retired_old_key = True
    log.info("temp_url_key_rotated", behind=result.behind)
    return result
