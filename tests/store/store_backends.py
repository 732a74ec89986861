"""The backends every store contract test runs against (used by ``conftest.py``).

Adding a backend is one entry in ``BACKENDS``: a context manager that, given a
scratch directory and the test's fixture request (to reach session fixtures
such as a real Swift), yields a ``Harness`` (the store, plus a way to write raw
bytes behind its back, for corruption and malformed-document tests).

- ``memory``, ``local``: in-process.
- ``s3-moto``: ``S3Store`` on moto's in-process S3 (``mock_aws``).
- ``swift``: ``SwiftStore`` on a real Swift (Debian's 2.30), native API.
- ``swift-s3``: ``S3Store`` on the same Swift's s3api (2.30: no conditional PUT,
  so blob writes take the HEAD-then-PUT fallback).
- ``swift-s3-new``: ``S3Store`` on Swift >= 2.36's s3api (conditional PUT).

Each object-store test gets its own bucket or container, so tests never see
each other's objects.
"""

from __future__ import annotations

import contextlib
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from setpoint.store.base import Store
from setpoint.store.local import LocalStore
from setpoint.store.memory import MemoryStore


@dataclass
class Harness:
    store: Store
    raw_put: Callable[[str, bytes], None]
    """Overwrite the object at a key without going through the store's checks."""
    http: bool = False
    """The backend talks HTTP, and counts each request in ``stats.requests["http.*"]``."""


def unique_name(kind: str) -> str:
    """A fresh bucket or container name (S3-valid: lowercase, digits, '-')."""
    return f"t-{kind}-{uuid.uuid4().hex[:16]}"


@contextlib.contextmanager
def memory_backend(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Harness]:
    store = MemoryStore(f"contract-{tmp_path.name}")
    yield Harness(store, store.corrupt)


@contextlib.contextmanager
def local_backend(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Harness]:
    root = tmp_path / "store"
    store = LocalStore(root)

    def raw_put(key: str, data: bytes) -> None:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    yield Harness(store, raw_put)


def _s3_raw_put(client: object, bucket: str, prefix: str) -> Callable[[str, bytes], None]:
    def raw_put(key: str, data: bytes) -> None:
        with contextlib.suppress(Exception):  # already there (owned by us)
            client.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
        client.put_object(Bucket=bucket, Key=prefix + key, Body=data)  # type: ignore[attr-defined]

    return raw_put


@contextlib.contextmanager
def s3_moto_backend(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Harness]:
    from moto import mock_aws

    from setpoint.store.s3 import S3Store, make_client

    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    for var in ("SETPOINT_S3_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    with mock_aws():
        client = make_client(None, "us-east-1")
        bucket = unique_name("moto")
        store = S3Store(bucket, "pre/fix", client=client)
        raw = _s3_raw_put(make_client(None, "us-east-1"), bucket, "pre/fix/")
        yield Harness(store, raw, http=True)


@contextlib.contextmanager
def swift_backend(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Harness]:
    from setpoint.store.swift import SwiftStore

    server = request.getfixturevalue("swift_server")
    container = unique_name("sw")
    store = SwiftStore(container, "pre/fix", auth=server.tempauth())
    storage_url, token = server.token()

    def raw_put(key: str, data: bytes) -> None:
        for url, body in (
            (f"{storage_url}/{container}", b""),
            (f"{storage_url}/{container}/{quote('pre/fix/' + key)}", data),
        ):
            req = urllib.request.Request(url, body, {"X-Auth-Token": token}, method="PUT")
            urllib.request.urlopen(req, timeout=10).close()

    try:
        yield Harness(store, raw_put, http=True)
    finally:
        store.close()


def _swift_s3(
    fixture: str,
) -> Callable[[Path, pytest.FixtureRequest], contextlib.AbstractContextManager[Harness]]:
    @contextlib.contextmanager
    def backend(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Harness]:
        from setpoint.store.s3 import S3Store

        server = request.getfixturevalue(fixture)
        bucket = unique_name("s3")
        store = S3Store(bucket, "pre/fix", client=server.s3_client())
        yield Harness(store, _s3_raw_put(server.s3_client(), bucket, "pre/fix/"), http=True)

    return backend


Backend = Callable[[Path, pytest.FixtureRequest], contextlib.AbstractContextManager[Harness]]

BACKENDS: dict[str, Backend] = {
    "memory": memory_backend,
    "local": local_backend,
    "s3-moto": s3_moto_backend,
    "swift": swift_backend,
    "swift-s3": _swift_s3("swift_server"),
    "swift-s3-new": _swift_s3("swift_new_server"),
}
