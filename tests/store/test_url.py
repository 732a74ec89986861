"""``open_store``: the scheme picks the backend; an unknown one is an error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from setpoint.store.errors import InvalidArgument, UnknownScheme
from setpoint.store.local import LocalStore
from setpoint.store.memory import MemoryStore
from setpoint.store.url import open_store

ROOT = Path(__file__).resolve().parents[2]


def test_plain_absolute_path_opens_local(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "s"))
    assert isinstance(store, LocalStore)
    assert store.root == tmp_path / "s"


def test_plain_relative_path_opens_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("rel/store")
    assert isinstance(store, LocalStore)
    assert store.root == tmp_path / "rel" / "store"
    colon = open_store("./odd:name")
    assert isinstance(colon, LocalStore)
    assert colon.root == tmp_path / "odd:name"


def test_file_url_opens_local(tmp_path: Path) -> None:
    for url in (f"file://{tmp_path}/s", f"file://localhost{tmp_path}/s", (tmp_path / "s").as_uri()):
        store = open_store(url)
        assert isinstance(store, LocalStore)
        assert store.root == tmp_path / "s"


def test_file_url_unquotes(tmp_path: Path) -> None:
    store = open_store((tmp_path / "with space").as_uri())
    assert isinstance(store, LocalStore)
    assert store.root == tmp_path / "with space"


def test_local_store_url_reopens_the_same_place(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "s"))
    digest = store.put_blob(b"x")
    again = open_store(store.url)
    assert isinstance(again, LocalStore)
    assert again.get_blob(digest) == b"x"


def test_memory_url(request: pytest.FixtureRequest) -> None:
    name = f"url-{request.node.name}"
    store = open_store(f"memory://{name}")
    assert isinstance(store, MemoryStore)
    assert store.url == f"memory://{name}"
    digest = store.put_blob(b"shared in this process")
    assert open_store(f"memory://{name}") is store
    other = open_store(f"memory://{name}-other")
    assert other is not store
    assert other.find_missing([digest]) == {digest}


@pytest.mark.parametrize(
    ("url", "scheme"),
    [
        ("ftp://x", "ftp"),
        ("s4://bucket/prefix", "s4"),
        ("s4://", "s4"),
        ("HTTP://example.invalid/x", "http"),
        ("file://remote.example/x", "file://remote.example"),
    ],
)
def test_unknown_scheme_never_falls_back_to_local(
    url: str, scheme: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UnknownScheme) as info:
        open_store(url)
    assert info.value.url == url
    assert info.value.scheme == scheme
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "url",
    ["s3:bucket", "swift:container", "s3://", "swift:///prefix", "s3:///b/p"],
)
def test_object_store_url_without_a_name_is_refused(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidArgument) as info:
        open_store(url)
    assert info.value.value == url
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def no_endpoint_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SETPOINT_S3_ENDPOINT", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.usefixtures("no_endpoint_env")
def test_s3_url() -> None:
    from setpoint.store.s3 import S3Store

    store = open_store(
        "s3://my-bucket/team/a?endpoint=http://127.0.0.1:8080&region=eu-west-1&read_timeout=7"
    )
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix) == ("my-bucket", "team/a/")
    assert store.client.meta.endpoint_url == "http://127.0.0.1:8080"
    assert store.client.meta.region_name == "eu-west-1"
    assert store.client.meta.config.read_timeout == 7.0
    assert store.client.meta.config.connect_timeout == 10.0
    bare = open_store("s3://b")
    assert isinstance(bare, S3Store)
    assert (bare.bucket, bare.prefix, bare.url) == ("b", "", "s3://b/")


@pytest.fixture
def tempauth_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OS_STORAGE_URL", "OS_AUTH_TOKEN", "OS_AUTH_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ST_AUTH", "http://127.0.0.1:1/auth/v1.0")
    monkeypatch.setenv("ST_USER", "test:tester")
    monkeypatch.setenv("ST_KEY", "testing")


@pytest.mark.usefixtures("tempauth_env")
def test_swift_url() -> None:
    from setpoint.store.swift import SwiftStore, TempAuth

    store = open_store("swift://box/a/b/?connect_timeout=2")
    assert isinstance(store, SwiftStore)
    assert (store.container, store.prefix, store.url) == ("box", "a/b/", "swift://box/a/b/")
    assert store.timeouts.connect == 2.0
    assert store.auth == TempAuth("http://127.0.0.1:1/auth/v1.0", "test:tester", "testing")
    assert store.stats.total == 0  # opening costs no request


@pytest.mark.usefixtures("tempauth_env", "no_endpoint_env")
@pytest.mark.parametrize(
    "url",
    [
        "swift://box/p?endpoint=http://x",
        "s3://b/p?key=secret",
        "s3://b/p?read_timeout=soon",
        "swift://box/p?connect_timeout=0",
    ],
)
def test_unknown_or_bad_options_are_refused(url: str) -> None:
    with pytest.raises(InvalidArgument):
        open_store(url)


def test_only_s3_imports_boto3() -> None:
    code = """
import sys
from setpoint.store.url import open_store
open_store("memory://x"); open_store("/tmp/x"); open_store("swift://c/p")
assert "boto3" not in sys.modules and "botocore" not in sys.modules, "boto3 imported"
open_store("s3://b/p")
assert "boto3" in sys.modules
"""
    env = {
        **os.environ,  # with conftest.OFFLINE_AWS: no credential lookups off the host
        "ST_AUTH": "http://127.0.0.1:1/auth/v1.0",
        "ST_USER": "u",
        "ST_KEY": "k",
        "PYTHONPATH": str(ROOT),
    }
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
