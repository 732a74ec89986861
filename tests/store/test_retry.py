"""``store.retry.Retry``: backoff with jitter, bounded by attempts and time, instantly."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from setpoint.store.errors import NotFound, PermanentError, TransientError
from setpoint.store.retry import Retry


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def failing(times: int, error: Exception | None = None, result: str = "ok"):  # type: ignore[no-untyped-def]
    calls: list[int] = []

    def op() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error or TransientError("busy", delay=0.0)
        return result

    op.calls = calls  # type: ignore[attr-defined]
    return op


def make(t: FakeTime, rand: float = 1.0, **kw: float) -> Retry:
    return Retry(sleep=t.sleep, clock=t.clock, random=lambda: rand, **kw)  # type: ignore[arg-type]


def test_retries_with_exponential_backoff_then_succeeds() -> None:
    t = FakeTime()
    op = failing(3)
    assert make(t, rand=1.0, base_delay=0.1).call(op) == "ok"
    assert len(op.calls) == 4
    assert t.sleeps == pytest.approx([0.1, 0.2, 0.4])


def test_jitter_stays_within_half_to_full_backoff() -> None:
    t = FakeTime()
    make(t, rand=0.0, base_delay=0.1).call(failing(3))
    assert t.sleeps == pytest.approx([0.05, 0.1, 0.2])


def test_backoff_is_capped_by_max_delay() -> None:
    t = FakeTime()
    make(t, rand=1.0, base_delay=1.0, max_delay=2.5, attempts=6, deadline=100).call(failing(5))
    assert t.sleeps == pytest.approx([1.0, 2.0, 2.5, 2.5, 2.5])


def test_the_errors_delay_hint_is_a_floor() -> None:
    t = FakeTime()
    make(t, base_delay=0.1).call(failing(2, TransientError("slow down", delay=1.5)))
    assert t.sleeps == pytest.approx([1.5, 1.5])


def test_a_hint_longer_than_max_delay_goes_to_the_caller_at_once() -> None:
    t = FakeTime()
    error = TransientError("come back in a minute", delay=60)
    with pytest.raises(TransientError) as info:
        make(t, max_delay=5).call(failing(1, error))
    assert info.value is error
    assert t.sleeps == []


def test_gives_up_after_the_attempts_with_the_last_error() -> None:
    t = FakeTime()
    op = failing(10)
    with pytest.raises(TransientError):
        make(t, attempts=3).call(op)
    assert len(op.calls) == 3
    assert len(t.sleeps) == 2


def test_gives_up_when_the_next_wait_would_pass_the_deadline() -> None:
    t = FakeTime()
    op = failing(10)
    with pytest.raises(TransientError):
        make(t, rand=1.0, base_delay=1.0, max_delay=4.0, attempts=100, deadline=6.0).call(op)
    # waits 1 + 2 = 3 s; the next (4 s) would end at 7 s > 6 s
    assert t.sleeps == pytest.approx([1.0, 2.0])
    assert len(op.calls) == 3


@pytest.mark.parametrize("error", [NotFound("k"), PermanentError("no"), ValueError("bug")])
def test_other_errors_are_not_retried(error: Exception) -> None:
    t = FakeTime()
    op = failing(1, error)
    with pytest.raises(type(error)):
        make(t).call(op)
    assert len(op.calls) == 1
    assert t.sleeps == []


def test_one_attempt_means_no_retry() -> None:
    t = FakeTime()
    with pytest.raises(TransientError):
        make(t, attempts=1).call(failing(1))
    assert t.sleeps == []
    with pytest.raises(ValueError, match="attempts"):
        Retry(attempts=0)


def test_each_retry_is_logged() -> None:
    t = FakeTime()
    with capture_logs() as logs:
        make(t, rand=1.0, base_delay=0.1).call(failing(2), "get blobs/ab/cd")
    assert [(e["event"], e["what"], e["attempt"], e["wait"]) for e in logs] == [
        ("store.retry", "get blobs/ab/cd", 1, 0.1),
        ("store.retry", "get blobs/ab/cd", 2, 0.2),
    ]
