"""``setpoint serve`` reads the fleet in a background thread: requests answer
from the last snapshot without waiting for the store, pages say how old it is
and why a read failed, and the thread ends with the server."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from setpoint.controller.cli.serve import listen
from setpoint.controller.dashboard.app import create_app
from setpoint.controller.dashboard.refresher import SnapshotRefresher
from setpoint.controller.dashboard.snapshot import Snapshot
from setpoint.store.errors import TransientError
from setpoint.store.local import LocalStore
from tests.browser_fixtures import ServeFactory
from tests.dashboard.dashfleet import FleetOnDisk
from tests.dashboard.test_serve import get

THREAD = "setpoint-dashboard-refresh"


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.01)


def refresh_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD]


class GatedStore(LocalStore):
    """A local store whose fleet reads (``list_servers``, the first step of
    one) can be held at a gate, or fail."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.gate = threading.Event()
        self.gate.set()
        self.reading = threading.Event()  # a read is held at the gate
        self.broken: str | None = None

    def list_servers(self) -> list[str]:
        if not self.gate.is_set():
            self.reading.set()
            self.gate.wait()
        if self.broken is not None:
            raise TransientError(self.broken)
        return super().list_servers()


@contextmanager
def serving(store: LocalStore, refresh: float) -> Iterator[tuple[str, SnapshotRefresher]]:
    """The dashboard served by uvicorn in a thread, with its lifespan events."""
    app = create_app(store, refresh=refresh)
    sock = listen("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    eventually(lambda: server.started)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", app.state.dashboard.snapshots
    finally:
        server.should_exit = True
        thread.join(10)


def test_a_request_answers_from_the_last_snapshot_while_the_fleet_is_read(
    fleet_on_disk: FleetOnDisk,
) -> None:
    store = GatedStore(fleet_on_disk.store)
    refresher = SnapshotRefresher(store, refresh=0.01)
    try:
        first = refresher.get()  # the first read: the only one a request waits for
        store.gate.clear()
        assert store.reading.wait(10)  # the next read started, in the background
        got: list[Snapshot] = []
        asker = threading.Thread(target=lambda: got.append(refresher.get()))
        asker.start()
        asker.join(10)
        assert got == [first]  # answered at once, while the read is held
        store.gate.set()
        eventually(lambda: refresher.get() is not first)
    finally:
        store.gate.set()
        refresher.stop()
    assert not refresh_threads()


def test_a_failed_read_keeps_the_last_snapshot_and_the_page_says_why(
    fleet_on_disk: FleetOnDisk,
) -> None:
    store = GatedStore(fleet_on_disk.store)
    with serving(store, refresh=0.05) as (url, refresher):
        code, page = get(url + "/")
        assert code == 200
        assert "fleet read 0s ago (every 0.1s)" in page
        assert "failed:" not in page
        store.broken = "swift answered 503"
        eventually(lambda: refresher.freshness().failure is not None)
        code, page = get(url + "/")
        assert code == 200
        assert "batch 1 of 3" in page  # the fleet of the last read that worked
        assert "ago, failed: swift answered 503" in page
        store.broken = None
        eventually(lambda: refresher.freshness().failure is None)
        assert "failed:" not in get(url + "/")[1]


def test_a_fleet_never_read_is_a_page_that_says_why(tmp_path: Path) -> None:
    store = GatedStore(tmp_path)
    store.broken = "no route to host"
    with serving(store, refresh=0.05) as (url, _refresher):
        code, page = get(url + "/")
        assert code == 503
        assert "cannot read the fleet from the store: no route to host" in page
        store.broken = None
        eventually(lambda: get(url + "/")[0] == 200)


def test_the_background_read_ends_with_the_server(fleet_on_disk: FleetOnDisk) -> None:
    with serving(LocalStore(fleet_on_disk.store), refresh=0.05) as (url, _refresher):
        assert get(url + "/")[0] == 200
        assert len(refresh_threads()) == 1
    assert not refresh_threads()


def test_serve_stops_on_ctrl_c_with_exit_0(fleet_on_disk: FleetOnDisk, serve: ServeFactory) -> None:
    served = serve("--store", str(fleet_on_disk.store), "--refresh", "0.05")
    assert get(served.url + "/")[0] == 200
    served.proc.send_signal(signal.SIGINT)
    assert served.proc.wait(10) == 0  # as --help says: 0 stopped (Ctrl-C)
    served.stop()
    assert "Traceback" not in served.stderr, served.stderr


def test_the_overview_is_counted_with_the_read_not_by_a_request(
    fleet_on_disk: FleetOnDisk,
) -> None:
    refresher = SnapshotRefresher(LocalStore(fleet_on_disk.store), refresh=60.0)
    try:
        assert "overview" in refresher.get().computed
    finally:
        refresher.stop()
