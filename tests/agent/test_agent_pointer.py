"""Accepting pointers: anti-rollback, verification, store errors, the report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agenttest import SERVER, Clock, Publisher, lines, script
from structlog.testing import capture_logs

from setpoint.agentshim import __version__
from setpoint.agentshim.agent import Agent
from setpoint.store import Pointer, TransientError, blob_key, canonical_json
from setpoint.store.memory import MemoryStore


class FlakyStore(MemoryStore):
    """A working MemoryStore whose requests can be made to fail."""

    def __init__(self) -> None:
        super().__init__("flaky")
        self.down = False
        self.reports_down = False

    def _get_if_changed(self, key: str, etag: str | None) -> tuple[bytes, str] | None:
        if self.down:
            raise TransientError("store unreachable")
        return super()._get_if_changed(key, etag)

    def _get(self, key: str) -> bytes:
        if self.down:
            raise TransientError("store unreachable")
        return super()._get(key)

    def _put(self, key: str, data: bytes) -> str:
        if self.down or (self.reports_down and key.endswith("/report")):
            raise TransientError("store unreachable")
        return super()._put(key, data)


def test_no_pointer_yet_is_nothing_to_do(
    store: MemoryStore, make_agent: Callable[..., Agent]
) -> None:
    result = make_agent().run_once()
    assert (result.exit_code, result.ran, result.error, result.store_error) == (0, [], None, None)
    report = store.read_report(SERVER)
    assert report is not None
    assert (report.generation, report.manifest, report.deployments) == (0, None, {})
    assert report.agent_version == __version__


def test_unchanged_pointer_costs_one_conditional_request(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent]
) -> None:
    publisher.publish({"app/web": script("true")})
    agent = make_agent()
    agent.run_once()
    store.stats.reset()
    agent.run_once()
    assert store.stats.total == 1
    assert store.stats.not_modified == 1
    # And a restart still knows the etag.
    store.stats.reset()
    make_agent().run_once()
    assert store.stats.requests["get_if_changed"] == 1
    assert store.stats.requests["get"] == 0


def test_older_generation_is_refused(
    tmp_path: Path, publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent]
) -> None:
    runs = tmp_path / "runs"
    old = publisher.publish({"app/web": script(f"echo v1 >> {runs}")})
    agent = make_agent()
    agent.run_once()
    new = publisher.publish({"app/web": script(f"echo v2 >> {runs}")})
    agent.run_once()
    assert lines(runs) == ["v1", "v2"]

    # Someone replays the old pointer (generation 1): refused, v2 keeps running.
    store.write_pointer(old, None)
    with capture_logs() as logs:
        result = agent.run_once()
    assert lines(runs) == ["v1", "v2"]
    assert result.error is not None
    assert "refused pointer generation 1" in result.error
    assert "anti-rollback" in result.error
    assert result.exit_code == 1
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["pointer_refused"]
    report = store.read_report(SERVER)
    assert report is not None
    assert (report.generation, report.manifest) == (2, new.manifest)
    assert report.error == result.error
    # Not fetched again, not logged again, until the pointer changes.
    store.stats.reset()
    with capture_logs() as logs:
        agent.run_once()
    assert store.stats.requests["get"] == 0
    assert logs == []

    # A rollback done right is a new generation naming the old digests.
    publisher.current = new
    publisher.publish({"app/web": script(f"echo v1 >> {runs}")})
    result = agent.run_once()
    assert lines(runs) == ["v1", "v2", "v1"]
    assert result.error is None
    report = store.read_report(SERVER)
    assert report is not None
    assert (report.generation, report.error) == (3, None)


def test_same_generation_with_another_manifest_is_refused(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent]
) -> None:
    first = publisher.publish({"app/web": script("true")})
    agent = make_agent()
    agent.run_once()
    other = store.put_json_blob({"kind": "Manifest", "deployments": [], "bundles": {}})
    forged = Pointer(SERVER, first.generation, other, "x", "2024-01-01T00:00:00Z")
    store.write_pointer(forged, None)
    result = agent.run_once()
    assert result.error is not None
    assert "a new manifest needs a new generation" in result.error
    assert result.deleted == []


def test_pointer_naming_another_server_is_refused(
    store: MemoryStore, make_agent: Callable[..., Agent]
) -> None:
    manifest = store.put_json_blob({"kind": "Manifest", "deployments": [], "bundles": {}})
    # A pointer stored under our key that names someone else.
    store.corrupt(
        f"agents/{SERVER}/pointer",
        canonical_json(Pointer("db1", 1, manifest, "x", "t").to_dict()),
    )
    result = make_agent().run_once()
    assert result.error is not None
    assert "names server 'db1'" in result.error


def test_tampered_config_blob_is_refused_and_reported(
    tmp_path: Path,
    publisher: Publisher,
    store: MemoryStore,
    make_agent: Callable[..., Agent],
) -> None:
    runs = tmp_path / "runs"
    publisher.publish({"app/web": script(f"echo good >> {runs}")})
    agent = make_agent()
    agent.run_once()
    publisher.publish(
        {"app/web": script(f"echo v2 >> {runs}"), "app/db": script(f"echo db >> {runs}")}
    )
    digest = publisher.digests["app/web"]
    store.corrupt(blob_key(digest), canonical_json(script(f"echo evil >> {runs}")))

    with capture_logs() as logs:
        result = agent.run_once()
    assert lines(runs) == ["good"]  # nothing from the tampered generation ran
    assert result.error is not None
    assert "pointer generation 2" in result.error
    assert f"digest mismatch: expected {digest}" in result.error
    assert any(e["event"] == "pointer_unverified" for e in logs)
    report = store.read_report(SERVER)
    assert report is not None
    assert report.generation == 1
    assert report.error == result.error
    assert not (agent.layout.configs / f"{digest.removeprefix('blake3:')}.json").exists()

    # Still refused next cycle; once the blob is repaired, the same pointer is accepted.
    assert agent.run_once().error == result.error
    store.delete_blob(digest)
    store.put_json_blob(script(f"echo v2 >> {runs}"))
    result = agent.run_once()
    assert result.error is None
    assert lines(runs) == ["good", "v2", "db"]


def test_tampered_manifest_is_refused(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent]
) -> None:
    pointer = publisher.publish({"app/web": script("true")})
    store.corrupt(blob_key(pointer.manifest), b'{"kind": "Manifest"}')
    result = make_agent().run_once()
    assert result.error is not None
    assert "digest mismatch" in result.error
    assert result.ran == []


def test_cached_config_is_reverified(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    publisher.publish({"app/web": script(f"echo ok >> {runs}")})
    agent = make_agent()
    digest = publisher.digests["app/web"]
    cache = agent.layout.config_path(digest)
    cache.parent.mkdir(parents=True)
    cache.write_text('{"group": "script", "config": "echo evil"}')  # planted, wrong digest
    agent.run_once()
    assert lines(runs) == ["ok"]


def test_store_errors_keep_the_last_good_configs(
    tmp_path: Path, clock: Clock, state_dir: Path
) -> None:
    store = FlakyStore()
    publisher = Publisher(store)
    runs = tmp_path / "runs"
    publisher.publish({"app/web": script(f"echo run >> {runs}; exit 1")})
    agent = Agent(store, SERVER, state_dir, tmp_path / "hooks", 5, 1.0, clock, clock.sleep)
    agent.run_once()
    store.down = True
    clock.advance(5)
    with capture_logs() as logs:
        result = agent.run_once()
    # The store is down, the failed config is still retried from the local copy.
    assert lines(runs) == ["run", "run"]
    assert result.store_error is not None
    assert "cannot read the pointer" in result.store_error
    assert result.exit_code == 3
    assert "store_error" in [e["event"] for e in logs]
    assert "report_write_failed" in [e["event"] for e in logs]

    store.down = False
    result = agent.run_once()
    assert result.store_error is None
    report = store.read_report(SERVER)
    assert report is not None
    assert report.deployments["app/web"].attempts == 2


def test_report_write_failure_is_retried_next_cycle(tmp_path: Path, clock: Clock) -> None:
    store = FlakyStore()
    Publisher(store).publish({"app/web": script("true")})
    agent = Agent(store, SERVER, tmp_path / "state", tmp_path / "hooks", clock=clock)
    store.reports_down = True
    result = agent.run_once()
    assert result.store_error is not None
    assert "cannot write the report" in result.store_error
    assert store.read_report(SERVER) is None
    store.reports_down = False
    assert agent.run_once().store_error is None
    report = store.read_report(SERVER)
    assert report is not None
    assert report.deployments["app/web"].status == "COMPLETE"


def test_report_answers_the_generation_and_carries_timestamps(
    publisher: Publisher, store: MemoryStore, make_agent: Callable[..., Agent], clock: Clock
) -> None:
    pointer = publisher.publish({"app/web": script("true")})
    clock.advance(0.25)
    make_agent().run_once()
    report = store.read_report(SERVER)
    assert report is not None
    assert (report.server, report.generation, report.manifest) == (
        SERVER,
        1,
        pointer.manifest,
    )
    assert report.updated_at == "2023-11-14T22:13:20.250Z"
    assert report.deployments["app/web"].finished_at == "2023-11-14T22:13:20.250Z"
