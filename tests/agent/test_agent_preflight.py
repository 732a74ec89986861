"""The agent's preflight: each digest checked once, never applied; a failed check
checked again after a backoff, written only when its answer changes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agenttest import SERVER, Clock, Deploy, Publisher, component

from setpoint.agentshim.agent import Agent
from setpoint.store import CheckReport
from setpoint.store.memory import MemoryStore


def checked(store: MemoryStore) -> CheckReport:
    got = store.read_report(SERVER)
    assert got is not None
    return got.preflight["app/web"]


def config(tmp_path: Path) -> dict[str, object]:
    """Applies by writing ``applied``; its CHECK fails while ``broken`` exists."""
    return component(
        [
            (["CREATE", "UPDATE"], "script", f"#!/bin/sh\ntouch {tmp_path / 'applied'}\n"),
            (
                ["CHECK"],
                "script",
                f"#!/bin/sh\necho checked >> {tmp_path / 'checks'}\n"
                f"if [ -e {tmp_path / 'broken'} ]; then echo 'disk full' >&2; exit 3; fi\n"
                "echo 'would touch applied'\n",
            ),
        ]
    )


def test_a_digest_is_checked_once_and_never_applied(
    tmp_path: Path, store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    publisher.publish({}, preflight={"app/web": config(tmp_path)})
    agent = make_agent()
    agent.run_once()
    agent.run_once()
    assert checked(store) == CheckReport(
        publisher.digests["app/web"], "PASSED", "would touch applied"
    )
    assert (tmp_path / "checks").read_text() == "checked\n"
    assert not (tmp_path / "applied").exists()


def test_a_failed_check_is_checked_again_after_a_backoff(
    tmp_path: Path,
    store: MemoryStore,
    publisher: Publisher,
    make_agent: Callable[..., Agent],
    clock: Clock,
) -> None:
    (tmp_path / "broken").touch()
    publisher.publish({}, preflight={"app/web": config(tmp_path)})
    agent = make_agent(retry_backoff=10.0, heartbeat=None)
    agent.run_once()
    assert (checked(store).status, checked(store).reason) == (
        "FAILED",
        "script exited with status 3",
    )
    agent.run_once()  # not due yet
    assert (tmp_path / "checks").read_text() == "checked\n"

    clock.advance(11)
    store.stats.reset()
    agent.run_once()  # due: the same answer, so no report is written
    assert (tmp_path / "checks").read_text() == "checked\n" * 2
    assert store.stats.requests["put"] == 0

    (tmp_path / "broken").unlink()
    clock.advance(21)  # the backoff doubled
    agent.run_once()
    assert checked(store).status == "PASSED"
    assert not (tmp_path / "applied").exists()


def test_a_new_run_token_asks_for_a_fresh_check_of_the_same_digest(
    tmp_path: Path, store: MemoryStore, publisher: Publisher, make_agent: Callable[..., Agent]
) -> None:
    agent = make_agent()
    for token in ("plan-1", "plan-1", "plan-2"):
        check = Deploy(config(tmp_path), run=("CHECK", token))
        publisher.publish({}, preflight={"app/web": check})
        agent.run_once()
        assert checked(store).token == token
    assert (tmp_path / "checks").read_text() == "checked\n" * 2
