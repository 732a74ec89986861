"""The agent's cycle: poll the pointer, accept a verified manifest, run what is due.

One cycle (``Agent.run_once``):

1. A hook run that was in flight when a previous agent died counts as a failed
   attempt ("agent stopped during the run") and is due again at once
   (``agentshim.ledger``).
2. Poll the pointer (conditional, one small request). A new pointer is
   accepted only whole: its generation must not go back (anti-rollback), and
   its manifest, every derived config and every attached file must fetch and
   verify. Otherwise the last good manifest stays, and the report says why
   (``agentshim.pointer``, ``agentshim.admission``, ``agentshim.relocate``,
   ``agentshim.renewal``, ``agentshim.configs``).
3. For each deployment of the manifest, in order: nothing if its digest already
   succeeded here; else CREATE (nothing ever succeeded for it) or UPDATE. An
   action outside the entry's ``actions``, or that the component has no config
   for, is recorded COMPLETE without running. A failure is retried after a
   backoff, up to ``max_attempts``; it never stops the other deployments
   (``agentshim.converge``, ``agentshim.due``, ``agentshim.running``).
4. Deployments gone from the manifest run their DELETE config (from the kept
   copy), in reverse of their previous order, and are then forgotten.
5. The manifest's preflight entries are checked, never applied
   (``agentshim.preflight``); with a drift interval, the applied configs are
   checked again when a drift check is due (``agentshim.drift``). Both run the
   tools' check modes (``agentshim.checking``).

The state on disk is written before a run (in-flight marker) and after it
(result), and the report is rewritten after every change of state
(``agentshim.ledger``, ``agentshim.reporting``).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from setpoint.agentshim.checking import Checker
from setpoint.agentshim.context import AgentContext
from setpoint.agentshim.converge import Converger
from setpoint.agentshim.cycle import CycleResult
from setpoint.agentshim.drift import DriftWatch
from setpoint.agentshim.due import next_retry_at
from setpoint.agentshim.hooks import HookRunner
from setpoint.agentshim.ledger import Ledger
from setpoint.agentshim.pointer import PointerFollower
from setpoint.agentshim.preflight import Preflight
from setpoint.agentshim.relocate import resume_location
from setpoint.agentshim.renewal import resume_capabilities
from setpoint.agentshim.reporting import DEFAULT_HEARTBEAT, Reporter
from setpoint.agentshim.running import Attempts
from setpoint.agentshim.state import AgentState, Layout, load_state
from setpoint.agentshim.trust import Trust
from setpoint.store import Report, Store, StoreError, TransientError

log = structlog.get_logger("setpoint.agent")

JITTER = 0.1
# During a store outage the delay between cycles doubles from twice the
# interval up to this (seconds), with equal jitter (drawn from [d/2, d]) so a
# fleet that lost its store does not come back in step.
MAX_OUTAGE_DELAY = 300.0


class Agent:
    """The agent of one server, over one state dir."""

    def __init__(
        self,
        store: Store,
        server: str,
        state_dir: str | Path,
        hooks_dir: str | Path | None = None,
        max_attempts: int = 3,
        retry_backoff: float = 5.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = time.sleep,
        stop_event: threading.Event | None = None,
        trust: Trust | None = None,
        heartbeat: float | None = DEFAULT_HEARTBEAT,
        rng: random.Random | None = None,
        drift_interval: float | None = None,
        once: bool = False,
    ) -> None:
        """``trust`` None accepts unsigned pointers (tests, development); the CLI
        always passes one. ``rng`` draws the jitter of the loop's delays and of
        the drift checks, every ``drift_interval`` seconds (None: never).
        ``once``: this agent runs one cycle (``--once``, from a timer), so the
        drift checks that fell due while no agent ran run in it, rather than
        being spread over the start of a long-running agent."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.layout = Layout(Path(state_dir).absolute())
        self.hooks_dir = Path(hooks_dir) if hooks_dir else self.layout.root / "hooks"
        self.sleep = sleep
        self.rng = rng or random.Random()
        # Cycles in a row that could not read or write the store, and the
        # store's own hint (seconds) from the last of them.
        self.outage_cycles = 0
        self.outage_hint = 0.0
        self.layout.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        state: AgentState = load_state(self.layout)
        bound = log.bind(server=server)
        self.ctx = AgentContext(
            server=server,
            layout=self.layout,
            state=state,
            store=store,
            clock=clock,
            stop=stop_event or threading.Event(),
            reporter=Reporter(server, clock, heartbeat, bound),
            log=bound,
            result=CycleResult(state.generation, state.manifest),
        )
        self.runner = HookRunner(self.layout, self.hooks_dir.absolute(), self.ctx.stop)
        resume_location(self.ctx)
        resume_capabilities(self.ctx.store, state)
        self.follower = PointerFollower(self.ctx, trust)
        self.ledger = Ledger(self.ctx, max_attempts, retry_backoff)
        self.converger = Converger(
            self.ctx, self.ledger, Attempts(self.ctx, self.runner, self.ledger)
        )
        checker = Checker(self.ctx, self.runner)
        self.preflight = Preflight(self.ctx, checker, retry_backoff)
        self.drift = DriftWatch(self.ctx, checker, drift_interval, self.rng, once)

    @property
    def store(self) -> Store:
        """The store the agent polls and reports to (another one once the fleet moved)."""
        return self.ctx.store

    @property
    def state(self) -> AgentState:
        return self.ctx.state

    @property
    def stop(self) -> threading.Event:
        """Set to stop: the running hook is aborted and the cycle ends."""
        return self.ctx.stop

    # -- the loop ------------------------------------------------------------------

    def run_forever(self, interval: float, stop_event: threading.Event) -> None:
        """Run cycles every ``interval`` seconds (jittered ±10%) until ``stop_event``.

        Store errors never end the loop: the last good configs keep running, and
        the delay backs off (``next_delay``) until the store answers again.
        """
        self.ctx.stop = self.runner.stop = stop_event
        self.ctx.log.info("agent_started", interval=interval, state_dir=str(self.layout.root))
        while not stop_event.is_set():
            try:
                self._count_outage(self.run_once())
            except Exception as exc:
                self.ctx.log.exception("cycle_crashed", error=str(exc))
            if stop_event.is_set():
                break
            delay = self.next_delay(interval)
            if self.outage_cycles:
                self.ctx.log.warning("store_backoff", failures=self.outage_cycles, delay=delay)
            self.sleep(delay)
        self.ctx.log.info("agent_stopped")

    def _count_outage(self, result: CycleResult) -> None:
        if result.store_error is None:
            self.outage_cycles, self.outage_hint = 0, 0.0
        else:
            self.outage_cycles += 1
            self.outage_hint = result.store_retry_after or 0.0

    def next_delay(self, interval: float) -> float:
        """The jittered interval, or the outage backoff while the store fails;
        shortened when a retry falls due before it (hooks run from local copies)."""
        if self.outage_cycles:
            cap = max(MAX_OUTAGE_DELAY, interval)
            ceiling = min(cap, interval * 2.0**self.outage_cycles)
            delay = max(self.rng.uniform(ceiling / 2, ceiling), min(self.outage_hint, cap))
        else:
            delay = interval * self.rng.uniform(1 - JITTER, 1 + JITTER)
        retry_at = next_retry_at(self.state)
        if retry_at is not None:
            until = retry_at - self.ctx.clock()
            delay = max(min(delay, until), min(1.0, delay))
        return delay

    # -- one cycle -----------------------------------------------------------------

    def run_once(self) -> CycleResult:
        ctx, state = self.ctx, self.ctx.state
        ctx.result = result = CycleResult(state.generation, state.manifest)
        if state.in_flight is not None:
            self.ledger.recover_in_flight(state.in_flight)
        try:
            self.follower.poll()
        except StoreError as exc:
            result.store_error = f"cannot read the pointer: {exc}"
            if isinstance(exc, TransientError):
                result.store_retry_after = exc.delay
            ctx.log.warning("store_error", error=str(exc))
        if state.manifest_doc is not None:
            self.converger.converge(state.manifest_doc)
            self.preflight.run(state.manifest_doc)
            self.drift.run(state.manifest_doc)
        ctx.reporter.publish(ctx.store, state)
        return self._summary(result)

    def _summary(self, result: CycleResult) -> CycleResult:
        """The cycle's result completed with how the agent stands after it."""
        state = self.state
        result.generation, result.manifest = state.generation, state.manifest
        result.error = state.error
        result.stopped = self.stop.is_set()
        report_error = self.ctx.reporter.error
        if report_error is not None and result.store_error is None:
            result.store_error = f"cannot write the report: {report_error}"
        result.failing = sorted(
            name
            for name, d in state.deployments.items()
            if d.report is not None and d.report.status == "FAILED"
        )
        return result

    def report(self) -> Report:
        """The report as it would be written now."""
        return self.ctx.reporter.report(self.state)


__all__ = ["Agent"]
