"""``open_store``: the scheme picks the backend; an unknown one is an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from store.errors import UnknownScheme
from store.local import LocalStore
from store.memory import MemoryStore
from store.url import open_store


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
        ("s3:bucket", "s3"),
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
