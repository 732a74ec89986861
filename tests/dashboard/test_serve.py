"""``setpoint serve`` as a process, read over HTTP: every page, links that
resolve, no secret anywhere, access rules, pages of long lists, nothing written."""

from __future__ import annotations

import base64
import hashlib
import html
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
import uvicorn

from setpoint.controller.cli.common import UNAVAILABLE, USAGE
from setpoint.controller.cli.serve import TOKEN_ENV, listen
from setpoint.controller.dashboard.app import METRICS_PATH, create_app
from setpoint.controller.rollout.ledger import read_ledger, write_ledger
from setpoint.store.documents import Report
from setpoint.store.local import LocalStore
from tests.browser_fixtures import ServeFactory
from tests.controller.test_status_logs import publish, run, script
from tests.dashboard.dashfleet import SECRET, FleetOnDisk, build_fleet


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href and href.startswith("/"):
            self.hrefs.append(href)


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8")


def crawl(base: str, start: str = "/", limit: int = 200) -> dict[str, tuple[int, str]]:
    """Every page reachable from ``start`` by following links, by path."""
    seen: dict[str, tuple[int, str]] = {}
    queue = [start]
    while queue and len(seen) < limit:
        path = queue.pop(0)
        if path in seen:
            continue
        seen[path] = got = get(base + path)
        parser = Links()
        parser.feed(got[1])
        queue += [h for h in parser.hrefs if h not in seen and not h.startswith("/static/")]
    return seen


def tree(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``root``: its mtime (ns) and the hash of its bytes."""
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_every_page_links_resolve_and_no_secret_shows(
    fleet_on_disk: FleetOnDisk, serve: ServeFactory
) -> None:
    served = serve("--store", str(fleet_on_disk.store), "--repo", str(fleet_on_disk.repo))
    pages = crawl(served.url)
    assert {
        "/",
        "/servers",
        "/history",
        "/pending",
        "/servers/db-02",
        "/deployments/shop/web",
    } <= set(pages)
    assert {path: code for path, (code, _) in pages.items() if code != 200} == {}
    assert not [path for path, (_, html) in pages.items() if SECRET in html]
    server = pages["/servers/db-02"][1]
    assert "FAILED (quarantined)" in server
    assert "connecting with password ********" in server  # the agent's output, masked
    assert "exit 3" in server
    deployment = get(served.url + "/deployments/shop/db")[1]
    assert "password = ******** (secret)" in deployment  # the derived config, masked
    assert "batch 1 of 3" in pages["/"][1]
    first, second = fleet_on_disk.first[:12], fleet_on_disk.second[:12]
    named = f"pointers name 2 commits: <code>{first}</code> on 12 servers, <code>{second}</code>"
    assert named in pages["/"][1]
    pending = pages["/pending"][1]
    assert "1 deployment change" in pending or "deployments change" in pending
    assert fleet_on_disk.third[:12] in pending
    history = pages["/history"][1]
    assert fleet_on_disk.first[:12] in history
    assert fleet_on_disk.second[:12] in history
    # Each commit's failures, as its note records them: the reason masked.
    assert "shop/db: failed on db-02 (script exited with status 3 (password ********))" in history


def test_a_reason_an_older_controller_kept_unmasked_is_shown_masked(
    tmp_path: Path, serve: ServeFactory
) -> None:
    fleet = build_fleet(tmp_path)
    store = LocalStore(fleet.store)
    ledger = read_ledger(store)
    held = ledger.quarantine["shop/db"]["db-02"]
    ledger.quarantine_add("shop/db", "db-02", held.config, f"exited 3 (password {SECRET})")
    write_ledger(store, ledger)
    served = serve("--store", str(fleet.store))
    pages = crawl(served.url)
    assert not [path for path, (_, html) in pages.items() if SECRET in html]
    assert "quarantined: exited 3 (password ********)" in pages["/deployments/shop/db"][1]


def test_serving_writes_nothing_to_the_store_or_the_repository(
    fleet_on_disk: FleetOnDisk, serve: ServeFactory
) -> None:
    before = tree(fleet_on_disk.store), tree(fleet_on_disk.repo)
    served = serve("--store", str(fleet_on_disk.store), "--repo", str(fleet_on_disk.repo))
    crawl(served.url)
    assert (tree(fleet_on_disk.store), tree(fleet_on_disk.repo)) == before


def test_unknown_server_and_deployment_are_404(
    fleet_on_disk: FleetOnDisk, serve: ServeFactory
) -> None:
    served = serve("--store", str(fleet_on_disk.store))
    assert get(served.url + "/servers/nope")[0] == 404
    assert get(served.url + "/deployments/shop/nope")[0] == 404
    # Without --repo, history and the pending change say what they need.
    code, html = get(served.url + "/pending")
    assert code == 200
    assert "no --repo" in html


def serve_once(*args: str) -> subprocess.CompletedProcess[str]:
    """``setpoint serve ARGS`` expected to exit at once (no token from the environment)."""
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    command = [sys.executable, "-m", "setpoint.controller.cli", "serve", "--port", "0", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_serve_cleanly_with_exit_0(
    fleet_on_disk: FleetOnDisk, serve: ServeFactory, stop: signal.Signals
) -> None:
    # systemd stops a unit with SIGTERM and counts anything but exit 0 as a failure;
    # Ctrl-C ends it as it ends 'setpoint watch': exit 0.
    served = serve("--store", str(fleet_on_disk.store))
    assert get(served.url + "/")[0] == 200
    sent = time.monotonic()
    served.proc.send_signal(stop)
    code = served.proc.wait(timeout=15)
    took = time.monotonic() - sent
    served.stop()
    assert code == 0, served.stderr
    assert took < 5, f"stopped {took:.1f}s after {stop.name}"
    assert "Traceback" not in served.stderr


def test_another_address_needs_a_token(fleet_on_disk: FleetOnDisk) -> None:
    refused = serve_once("--store", str(fleet_on_disk.store), "--host", "0.0.0.0")
    assert refused.returncode == USAGE
    assert "refusing to serve on 0.0.0.0 without a token" in refused.stderr
    assert "--token" in refused.stderr


def test_a_token_is_asked_of_every_request(fleet_on_disk: FleetOnDisk, serve: ServeFactory) -> None:
    served = serve("--store", str(fleet_on_disk.store), "--host", "0.0.0.0", "--token", "t0k3n")
    url = served.url.replace("0.0.0.0", "127.0.0.1")
    code, _ = get(url + "/")
    assert code == 401
    assert get(url + "/", {"Authorization": "Bearer wrong"})[0] == 401
    assert get(url + "/static/style.css")[0] == 401
    assert get(url + "/", {"Authorization": "Bearer t0k3n"})[0] == 200
    basic = base64.b64encode(b"anyone:t0k3n").decode()
    assert get(url + "/servers/db-02", {"Authorization": f"Basic {basic}"})[0] == 200


def test_the_token_may_come_from_the_environment(
    fleet_on_disk: FleetOnDisk, serve: ServeFactory
) -> None:
    served = serve("--store", str(fleet_on_disk.store), env={"SETPOINT_SERVE_TOKEN": "from-env"})
    assert get(served.url + "/")[0] == 401
    assert get(served.url + "/", {"Authorization": "Bearer from-env"})[0] == 200


def test_a_store_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    result = serve_once("--store", str(tmp_path / "typo"))
    assert result.returncode == UNAVAILABLE
    assert "no store at" in result.stderr


def many_servers(path: Path, n: int) -> None:
    store = LocalStore(path)
    for i in range(n):
        server = f"node-{i:04d}"
        pointer = publish(store, server, {"app/web": script("echo web")})
        digest = store.put_json_blob(script("echo web"))
        status = "FAILED" if i % 10 == 0 else "COMPLETE"
        got = {
            "app/web": run("app/web", digest, status, exit_code=0 if status == "COMPLETE" else 1)
        }
        store.write_report(Report(server, 1, pointer.manifest, pointer.published_at, got))


def test_long_lists_come_a_page_at_a_time(tmp_path: Path, serve: ServeFactory) -> None:
    many_servers(tmp_path / "store", 250)
    served = serve("--store", str(tmp_path / "store"))
    first = get(served.url + "/servers")[1]
    assert "page 1 of 3 (250)" in first
    assert first.count('href="/servers/node-') == 100
    last = get(served.url + "/servers?page=3")[1]
    assert last.count('href="/servers/node-') == 50
    failed = get(served.url + "/servers?state=failed")[1]
    assert failed.count('href="/servers/node-') == 25
    assert 'href="/servers/node-0010"' in failed
    # The overview shows the first troubled servers and links to the rest.
    overview = get(served.url + "/")[1]
    assert 'href="/servers?state=trouble"' in overview
    assert "all 25" in overview


@pytest.fixture
def in_thread(tmp_path: Path) -> Iterator[str]:
    """The app with a metrics source, served by uvicorn in a thread."""
    exposition = (b"setpoint_up 1\n", "text/plain; version=0.0.4; charset=utf-8")
    app = create_app(LocalStore(tmp_path), metrics=lambda _snapshot: exposition)
    sock = listen("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)


def test_metrics_mount_where_the_app_is_given_them(in_thread: str) -> None:
    code, text = get(in_thread + METRICS_PATH)
    assert (code, text) == (200, "setpoint_up 1\n")
    assert re.search(r"no servers|Nothing published", get(in_thread + "/")[1])


def test_the_pending_change_is_what_plan_against_the_store_prints(
    fleet_on_disk: FleetOnDisk, serve: ServeFactory
) -> None:
    store, repo = str(fleet_on_disk.store), str(fleet_on_disk.repo)
    served = serve("--store", store, "--repo", repo)
    page = get(served.url + "/pending?branch=HEAD")[1]
    block = re.search(r'<pre class="plan">(.*?)</pre>', page, re.S)
    assert block is not None, page
    shown = html.unescape(block[1])
    printed = subprocess.run(
        [sys.executable, "-m", "setpoint.controller.cli", "plan", "HEAD", "--store", store,
         "--repo", repo],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    assert shown == printed
    # Planned against what the store deployed, naming who has not converged on it.
    assert f"deployed: {fleet_on_disk.second[:12]} (the store's newest pointers)" in shown
    assert "db-02 (shop/db FAILED (quarantined))" in shown
    # Mid-rollout: the servers still on the first commit get version 1 -> 3.
    assert f"pointers name 2 commits: {fleet_on_disk.first[:12]} on 12 servers" in shown
    assert '-  version = "1"' in shown
    assert '-  version = "2"' in shown
    assert "setpoint plan HEAD --store" in page
