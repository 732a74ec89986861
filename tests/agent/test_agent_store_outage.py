"""During a store outage the agent backs off: exponential, jittered, capped; back to
its interval once the store answers again."""

from __future__ import annotations

import random
import threading
from pathlib import Path

from agenttest import SERVER, Clock, Publisher, script
from structlog.testing import capture_logs

from setpoint.agentshim.agent import JITTER, MAX_OUTAGE_DELAY, Agent
from setpoint.store.errors import TransientError
from setpoint.store.memory import MemoryStore

INTERVAL = 10.0


class OutageStore(MemoryStore):
    """A working MemoryStore whose next ``down_for`` pointer polls fail."""

    def __init__(self, down_for: int, hint: float = 1.0) -> None:
        super().__init__("outage")
        self.down_for = down_for
        self.hint = hint
        self.polls = 0

    def poll_pointer(self, server: str, etag: str | None) -> object:  # type: ignore[override]
        self.polls += 1
        if self.down_for > 0:
            self.down_for -= 1
            raise TransientError("store unreachable", delay=self.hint)
        return super().poll_pointer(server, etag)


def run_cycles(agent: Agent, clock: Clock, cycles: int) -> list[float]:
    """Run the agent's loop for ``cycles`` cycles; the delays it slept between them."""
    stop = threading.Event()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)
        if len(slept) >= cycles:
            stop.set()

    agent.sleep = sleep
    agent.run_forever(INTERVAL, stop)
    return slept


def make(store: MemoryStore, tmp_path: Path, clock: Clock, seed: int) -> Agent:
    Publisher(store).publish({"app/web": script("true")})
    return Agent(store, SERVER, tmp_path / f"state-{seed}", clock=clock, rng=random.Random(seed))


def test_delays_grow_with_jitter_and_return_to_the_interval(tmp_path: Path, clock: Clock) -> None:
    failures = 5
    store = OutageStore(down_for=failures)
    agent = make(store, tmp_path, clock, seed=1)
    with capture_logs() as logs:
        slept = run_cycles(agent, clock, failures + 3)
    outage, after = slept[:failures], slept[failures:]
    for n, delay in enumerate(outage, start=1):
        ceiling = min(MAX_OUTAGE_DELAY, INTERVAL * 2**n)
        assert ceiling / 2 <= delay <= ceiling, (n, delay)
    assert outage == sorted(outage)
    assert outage[-1] > 4 * INTERVAL
    assert len(set(outage)) == failures
    for delay in after:
        assert INTERVAL * (1 - JITTER) <= delay <= INTERVAL * (1 + JITTER)
    backoffs = [e for e in logs if e["event"] == "store_backoff"]
    assert [e["failures"] for e in backoffs] == list(range(1, failures + 1))
    report = store.read_report(SERVER)
    assert report is not None
    assert report.deployments["app/web"].status == "COMPLETE"


def test_two_agents_do_not_back_off_in_step(tmp_path: Path, clock: Clock) -> None:
    first = run_cycles(make(OutageStore(down_for=4), tmp_path, clock, seed=1), clock, 4)
    second = run_cycles(make(OutageStore(down_for=4), tmp_path, clock, seed=2), clock, 4)
    assert all(a != b for a, b in zip(first, second, strict=True))


def test_the_backoff_is_capped(tmp_path: Path, clock: Clock) -> None:
    store = OutageStore(down_for=20)
    slept = run_cycles(make(store, tmp_path, clock, seed=3), clock, 20)
    assert max(slept) <= MAX_OUTAGE_DELAY
    assert min(slept[-8:]) >= MAX_OUTAGE_DELAY / 2
    assert store.polls == 20


def test_the_store_retry_hint_is_honoured_up_to_the_cap(tmp_path: Path, clock: Clock) -> None:
    slept = run_cycles(make(OutageStore(down_for=2, hint=120.0), tmp_path, clock, seed=4), clock, 2)
    assert [d >= 120.0 for d in slept] == [True, True]
    capped = run_cycles(
        make(OutageStore(down_for=1, hint=10_000.0), tmp_path, clock, seed=5), clock, 1
    )
    assert capped[0] <= MAX_OUTAGE_DELAY
