"""``setpoint watch``: the controller daemon. Follow a branch, deploy it, record the outcome.

Each pass:

1. refresh the source (a remote is fetched into the mirror when its interval
   is due; a local repository is read as it is);
2. if the branch head moved, decide whether it may be deployed (``CommitGate``:
   fast-forward, signature) and whether its definitions are valid; a refused
   or invalid head is reported once and skipped, and the commit deployed so
   far keeps converging;
3. run one reconcile pass for the commit being deployed;
4. record the outcome in the commit's note (``controller.recording``, the
   code ``reconcile --notes`` uses too), and push the notes when asked;
5. with notification targets, record the pass's new events in the ledger and
   hand them to the sender thread (``controller.observe.notifier``); with
   ``--metrics-port``, count the pass and keep the fleet it saw for ``/metrics``.

A newer head is taken at the start of the next pass, so a rollout in progress
moves to the newest commit at its next pass (batch) boundary and never waits
for a stale rollout to finish or time out.

Like ``reconcile``, the watcher keeps nothing it cannot rebuild: on start,
the commit being deployed is the one the store's newest pointer names, and
the record of that commit is read back from its note.

Several replicas (``--replica NAME``) share one store through its lease
(``store.lease``): the holder runs the passes, renewing the lease every
``ttl / 3`` seconds, and every write of its passes is fenced by it; the others
stand by, look at the lease once per renewal interval, write a heartbeat once
per ttl, and take over when the lease goes unrenewed for ``ttl`` seconds. A
replica that takes over rebuilds what it deploys from the store, as on start.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from setpoint.controller.converge.publish import PointerPolicy
from setpoint.controller.converge.reconcile import PassOutcome
from setpoint.controller.converge.trust import UntrustedPointers
from setpoint.controller.definitions.loader import load_model
from setpoint.controller.definitions.model import DEFAULT_CONVERGE_ROUNDS
from setpoint.controller.definitions.repository import GitRepo
from setpoint.controller.errors import InvalidDefinitions
from setpoint.controller.gitops.commitgate import CommitGate, Verdict
from setpoint.controller.gitops.environments import EnvironmentReconciler
from setpoint.controller.gitops.notes import DeployRecord, Notebook, NotesError
from setpoint.controller.gitops.recording import Recorder, deployed_commit
from setpoint.controller.gitops.source import FetchError, LocalSource, RemoteSource
from setpoint.controller.observe.metrics import Metrics
from setpoint.controller.observe.notifier import Notifier
from setpoint.controller.rollout.batches import UNREACHABLE_AFTER_BEATS
from setpoint.store.base import Store
from setpoint.store.errors import StoreError
from setpoint.store.lease import Lease, remove_heartbeat, write_heartbeat

log = structlog.get_logger("setpoint.watch")


@dataclass
class WatchPass:
    """What one pass saw and did."""

    head: str | None
    deploying: str | None
    refused: Verdict | None = None
    outcome: PassOutcome | None = None
    record: DeployRecord | None = None
    # Another replica holds the lease: this one only stood by.
    standby: bool = False
    # Why the pass ran but did not finish: "failed" (the store), "refused" (pointers).
    failure: str | None = None

    @property
    def result(self) -> str:
        """ok, failed, refused, standby, or idle (nothing to deploy yet)."""
        if self.standby:
            return "standby"
        if self.failure is not None:
            return self.failure
        return "ok" if self.outcome is not None else "idle"


@dataclass
class Watcher:
    source: LocalSource | RemoteSource
    store: Store
    gate: CommitGate
    env: str | None = None
    policy: PointerPolicy = field(default_factory=PointerPolicy)
    render_secret: bytes | None = field(default=None, repr=False)
    push_notes: bool = False
    interval: float = 1.0
    converge_rounds: int = DEFAULT_CONVERGE_ROUNDS
    unreachable_after: float = UNREACHABLE_AFTER_BEATS
    clock: Callable[[], float] = time.time
    # The lease among replicas (``--replica``); None: the only controller.
    lease: Lease | None = None
    # Heads already refused, with why: each is reported once, not every pass.
    refused: dict[str, Verdict] = field(default_factory=dict)
    # Told of each pass's new events (``--notify``, notifications.yaml).
    notifier: Notifier | None = None
    # Counts each pass and keeps the fleet it saw for ``/metrics`` (``--metrics-port``).
    metrics: Metrics | None = None
    _heartbeat_at: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._resume()

    def _resume(self) -> None:
        """Take up what the store says is being deployed (on start, and on takeover)."""
        self.recorder = Recorder(
            Notebook(self.source.path),
            self.env,
            self.clock,
            current=deployed_commit(self.store),
            on_save=self._push_notes if self.push_notes else None,
        )
        self.env_name = self.recorder.env_name
        if self.current is not None:
            log.info("watch_resume", commit=self.current[:12], env=self.env_name)

    @property
    def current(self) -> str | None:
        """The commit being deployed."""
        return self.recorder.current

    @property
    def record(self) -> DeployRecord | None:
        """Its record (as in its note)."""
        return self.recorder.record

    # -- choosing the commit --------------------------------------------------------

    def _accept(self, head: str) -> Verdict:
        verdict = self.gate.check(self.current, head)
        if not verdict.ok:
            return verdict
        with GitRepo.open(self.source.path) as repo:
            try:
                load_model(repo.tree(head), env=self.env, render_secret=self.render_secret)
            except InvalidDefinitions as exc:
                return Verdict(head, False, f"invalid definitions: {exc}")
        return verdict

    # -- recording ------------------------------------------------------------------------

    def _push_notes(self) -> None:
        try:
            self.source.push_notes()
        except FetchError as exc:
            log.warning("notes_push_failed", error=str(exc))

    # -- the loop --------------------------------------------------------------------------

    def _lead(self) -> bool:
        """Whether this replica leads now: renew, or look at the lease, when due."""
        lease = self.lease
        if lease is None:
            return True
        was = lease.held
        try:
            held = lease.poll()
        except StoreError as exc:
            log.warning("lease_check_failed", replica=lease.holder, error=str(exc))
            return False
        if held and not was:
            log.info("replica_leads", replica=lease.holder, epoch=lease.epoch)
            self._resume()
        elif not held:
            now = self.clock()
            if self._heartbeat_at is None or now - self._heartbeat_at >= lease.ttl:
                self._heartbeat_at = now
                try:
                    write_heartbeat(self.store, lease.holder, "standby", now, lease.ttl)
                except StoreError as exc:
                    log.warning("heartbeat_failed", replica=lease.holder, error=str(exc))
        return held

    def step(self) -> WatchPass:
        started = time.monotonic()
        result = self._step()
        if self.metrics is not None:
            self.metrics.record_pass(time.monotonic() - started, result.result, result.outcome)
        return result

    def _step(self) -> WatchPass:
        if not self._lead():
            return WatchPass(head=None, deploying=None, standby=True)
        try:
            self.source.refresh()
        except FetchError as exc:
            log.warning("fetch_failed", error=str(exc))  # deploy what the mirror has
        head = self.source.head()
        result = WatchPass(head=head, deploying=self.current)
        if head is not None and head != self.current:
            verdict = self.refused.get(head)
            if verdict is None:
                verdict = self._accept(head)
                if not verdict.ok:
                    self.refused[head] = verdict
                    log.warning("head_refused", commit=head[:12], reason=verdict.reason)
            if verdict.ok:
                self.recorder.switch(head)
            else:
                result.refused = verdict
        result.deploying = self.current
        if self.current is None:
            return result
        with GitRepo.open(self.source.path) as repo:
            reconciler = EnvironmentReconciler(
                repo,
                self.store,
                rev=self.current,
                clock=self.clock,
                policy=self.policy,
                converge_rounds=self.converge_rounds,
                unreachable_after=self.unreachable_after,
                env=self.env,
                lease=self.lease,
                render_secret=self.render_secret,
            )
            try:
                result.outcome = reconciler.run_pass()
            except StoreError as exc:
                # The daemon outlives a store outage: the next pass tries again.
                log.warning("pass_failed", commit=self.current[:12], error=str(exc))
                result.failure = "failed"
                return result
            except UntrustedPointers as exc:
                # Nothing was published; the fleet keeps what it runs. The daemon
                # stays up, so an operator who restarts it with the right key
                # (or --trusted-key during a rotation) loses no history.
                log.error("pass_refused", commit=self.current[:12], error=str(exc))
                result.failure = "refused"
                return result
            if self.notifier is not None:
                self.notifier.after_pass(reconciler, result.outcome)
        try:
            self.recorder.update(result.outcome)
        except (NotesError, OSError) as exc:
            log.warning("notes_write_failed", error=str(exc))
        result.record = self.record
        return result

    def run(self, stop: threading.Event | None = None, max_passes: int | None = None) -> int:
        """Pass after pass until ``stop`` is set or ``max_passes`` ran; returns the count."""
        stop = stop or threading.Event()
        self.source.start()
        passes = 0
        try:
            while not stop.is_set():
                self.step()
                passes += 1
                if max_passes is not None and passes >= max_passes:
                    break
                self.source.wait(self.wait_between_passes)
        finally:
            self.source.stop()
            if self.lease is not None:
                self.lease.release()
                remove_heartbeat(self.store, self.lease.holder)
        return passes

    @property
    def wait_between_passes(self) -> float:
        """``interval``, shortened so the lease is renewed (or looked at) in time."""
        if self.lease is None:
            return self.interval
        return min(self.interval, self.lease.renew_interval)
