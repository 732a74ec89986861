"""Real OpenStack Swift servers for the tests (a pytest plugin, loaded by conftest.py).

Two session fixtures, each a ``SwiftServer`` (endpoint, tempauth and S3 settings):

- ``swift_server``: Debian's Swift (2.30 on bookworm), whose s3api answers 501
  to a conditional PUT.
- ``swift_new_server``: Swift >= 2.36 from PyPI in its own venv, whose s3api
  honours ``If-None-Match: *``.

Both are started on free loopback ports by ``tools/swift-saio.sh start`` (in
parallel, the first time either is asked for) and stopped at the end of the
session. ``.ci/install-swift.sh`` installs both.

Environment:

- ``SETPOINT_SWIFT_AUTH_URL`` (and optional ``SETPOINT_SWIFT_USER``, default
  ``test:tester``, ``SETPOINT_SWIFT_KEY``, default ``testing``): use an already
  running Swift (tempauth v1 URL, s3api on the same host:port) instead of
  starting Debian's. ``SETPOINT_SWIFT_NEW_AUTH_URL``, ``..._NEW_USER``,
  ``..._NEW_KEY``: the same for the >= 2.36 one.
- ``SETPOINT_SWIFT_NEW_PYTHON``: the interpreter that has swift >= 2.36
  (default ``/opt/setpoint-swift-venv/bin/python3``).
- ``CI=true``: a Swift that is not installed fails the tests that need it,
  instead of skipping them, so CI never passes without having run them.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from setpoint.store.swift import TempAuth

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "swift-saio.sh"
DEBIAN_PYTHON = "/usr/bin/python3"
NEW_PYTHON_DEFAULT = "/opt/setpoint-swift-venv/bin/python3"
START_TIMEOUT = 120.0


@dataclass(frozen=True)
class SwiftServer:
    """One running Swift: tempauth accounts ``test:tester`` (admin of AUTH_test) and
    ``test:tester3`` (not an admin), s3api with access key = user, secret = key."""

    flavour: str
    endpoint: str
    auth_url: str
    user: str
    key: str
    version: tuple[int, ...]
    started_by_us: bool

    @property
    def s3_endpoint(self) -> str:
        return self.endpoint

    def tempauth(self, user: str | None = None, key: str | None = None) -> TempAuth:
        return TempAuth(self.auth_url, user or self.user, self.key if key is None else key)

    def token(self, user: str | None = None, key: str | None = None) -> tuple[str, str]:
        """(storage URL, token) from tempauth, fetched with plain urllib."""
        auth = self.tempauth(user, key)
        req = urllib.request.Request(
            auth.auth_url, headers={"X-Auth-User": auth.user, "X-Auth-Key": auth.key}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.headers["X-Storage-Url"], resp.headers["X-Auth-Token"]

    def s3_client(self, user: str | None = None, key: str | None = None) -> Any:
        from setpoint.store.s3 import make_client

        return make_client(
            self.s3_endpoint,
            "us-east-1",
            aws_access_key_id=user or self.user,
            aws_secret_access_key=self.key if key is None else key,
        )


def unavailable(reason: str) -> None:
    """Skip the test, or under ``CI=true`` fail it: CI must run every real-Swift test."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the real-Swift tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


def _version(endpoint: str) -> tuple[int, ...]:
    with urllib.request.urlopen(endpoint + "/info", timeout=10) as resp:
        text = json.load(resp)["swift"]["version"]
    return tuple(int(p) for p in text.split(".")[:2] if p.isdigit())


def _free_base_port() -> int:
    """A proxy port P with P+10..P+13 (object, container, account, memcached) free too."""
    for _ in range(200):
        base = random.randrange(20000, 40000, 20)
        ok = True
        for port in (base, base + 10, base + 11, base + 12, base + 13):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free ports for Swift")


class _Launch:
    """One ``swift-saio.sh start`` in flight; ``wait()`` gives its server."""

    def __init__(self, flavour: str, python: str, directory: Path) -> None:
        self.flavour = flavour
        self.directory = directory
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SWIFT_SAIO_")}
        if python != DEBIAN_PYTHON:
            self.env["SWIFT_SAIO_PYTHON"] = python
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            ["bash", str(SCRIPT), "start", str(directory), str(_free_base_port())],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            text=True,
        )
        self.server: SwiftServer | None = None
        self.error: str | None = None

    def wait(self) -> SwiftServer:
        if self.server is None and self.error is None:
            try:
                out, err = self.proc.communicate(timeout=START_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                out, err = self.proc.communicate()
            if self.proc.returncode != 0:
                self.error = f"swift-saio.sh start ({self.flavour}) failed:\n{err[-3000:]}"
            else:
                values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
                endpoint = values["SWIFT_ENDPOINT"]
                self.server = SwiftServer(
                    flavour=self.flavour,
                    endpoint=endpoint,
                    auth_url=values["SWIFT_AUTH_URL"],
                    user=values["SWIFT_USER"],
                    key=values["SWIFT_KEY"],
                    version=_version(endpoint),
                    started_by_us=True,
                )
                self.seconds = time.monotonic() - self.started
        if self.server is None:
            pytest.fail(self.error or "swift did not start", pytrace=False)
        return self.server

    def stop(self) -> None:
        if self.server is None and self.error is None:  # never waited for
            try:
                self.proc.communicate(timeout=START_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.communicate()
        subprocess.run(
            ["bash", str(SCRIPT), "stop", str(self.directory)],
            env=self.env,
            capture_output=True,
            check=False,
            timeout=60,
        )


@dataclass(frozen=True)
class _Flavour:
    name: str
    env_prefix: str
    python: str

    def external(self) -> SwiftServer | None:
        auth_url = os.environ.get(f"{self.env_prefix}_AUTH_URL")
        if not auth_url:
            return None
        parts = urlsplit(auth_url)
        endpoint = f"{parts.scheme}://{parts.netloc}"
        return SwiftServer(
            flavour=self.name,
            endpoint=endpoint,
            auth_url=auth_url,
            user=os.environ.get(f"{self.env_prefix}_USER", "test:tester"),
            key=os.environ.get(f"{self.env_prefix}_KEY", "testing"),
            version=_version(endpoint),
            started_by_us=False,
        )

    def missing(self) -> str | None:
        """Why this flavour cannot be started here, or None."""
        if not shutil.which("memcached", path="/usr/bin:/usr/local/bin"):
            return "memcached is not installed (run .ci/install-swift.sh)"
        if not Path(self.python).exists():
            return f"{self.name} swift is not installed (run .ci/install-swift.sh)"
        probe = subprocess.run(
            [self.python, "-s", "-c", "import swift"], capture_output=True, check=False
        )
        if probe.returncode != 0:
            return f"{self.python} cannot import swift (run .ci/install-swift.sh)"
        return None


FLAVOURS = {
    "debian": _Flavour("debian", "SETPOINT_SWIFT", DEBIAN_PYTHON),
    "new": _Flavour(
        "new",
        "SETPOINT_SWIFT_NEW",
        os.environ.get("SETPOINT_SWIFT_NEW_PYTHON", NEW_PYTHON_DEFAULT),
    ),
}


class SwiftPool:
    """Starts every local flavour at once the first time any is asked for."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self._launches: dict[str, _Launch] = {}
        self._external: dict[str, SwiftServer] = {}
        self._missing: dict[str, str] = {}
        self._kicked_off = False

    def _kick_off(self) -> None:
        self._kicked_off = True
        for name, flavour in FLAVOURS.items():
            external = flavour.external()
            if external is not None:
                self._external[name] = external
                continue
            why = flavour.missing()
            if why is not None:
                self._missing[name] = why
                continue
            self._launches[name] = _Launch(name, flavour.python, self._tmp.mktemp(f"swift-{name}"))

    def get(self, name: str) -> SwiftServer:
        if not self._kicked_off:
            self._kick_off()
        if name in self._external:
            return self._external[name]
        if name in self._missing:
            unavailable(self._missing[name])
        return self._launches[name].wait()

    def stop(self) -> None:
        for launch in self._launches.values():
            launch.stop()


def pytest_configure(config: pytest.Config) -> None:
    """Loopback servers must never be reached through an HTTP proxy (boto3 and
    urllib honour ``http_proxy``; a CI runner may set one)."""
    if any(os.environ.get(v) for v in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY")):
        for var in ("no_proxy", "NO_PROXY"):
            current = [h for h in os.environ.get(var, "").split(",") if h]
            os.environ[var] = ",".join([*current, "127.0.0.1", "localhost"])


@pytest.fixture(scope="session")
def swift_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwiftPool]:
    pool = SwiftPool(tmp_path_factory)
    try:
        yield pool
    finally:
        pool.stop()


@pytest.fixture(scope="session")
def swift_server(swift_pool: SwiftPool) -> SwiftServer:
    """Debian's Swift (2.30 on bookworm): native API, tempurl, s3api without
    conditional PUT."""
    return swift_pool.get("debian")


@pytest.fixture(scope="session")
def swift_new_server(swift_pool: SwiftPool) -> SwiftServer:
    """Swift >= 2.36 from PyPI: s3api with conditional PUT."""
    server = swift_pool.get("new")
    if server.version < (2, 36):
        unavailable(
            f"the new Swift is {server.version}, not >= 2.36 with s3api conditional PUT "
            "(see SETPOINT_SWIFT_NEW_AUTH_URL and SETPOINT_SWIFT_NEW_PYTHON)"
        )
    return server
