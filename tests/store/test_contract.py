"""The contract every store backend passes (see ``conftest.BACKENDS``)."""

from __future__ import annotations

import json

import pytest
from store_backends import Harness

from setpoint.store.base import Store, blob_key, pointer_key, report_key
from setpoint.store.digest import canonical_json, digest_bytes
from setpoint.store.documents import DeploymentReport, Pointer, Report
from setpoint.store.errors import (
    DigestMismatch,
    GenerationRegression,
    InvalidDigest,
    InvalidDocument,
    NotFound,
)


def pointer(server: str = "web-1", generation: int = 1, content: bytes = b"m1") -> Pointer:
    return Pointer(
        server=server,
        generation=generation,
        manifest=digest_bytes(content),
        commit="0" * 40,
        published_at="2024-01-01T00:00:00Z",
    )


def report(server: str = "web-1", generation: int = 1) -> Report:
    config = digest_bytes(b"config")
    return Report(
        server=server,
        generation=generation,
        manifest=digest_bytes(b"m1"),
        updated_at="2024-01-01T00:00:01Z",
        deployments={
            "app/db": DeploymentReport(
                name="app/db",
                config=config,
                action="CREATE",
                status="COMPLETE",
                outputs={"port": 5432},
                exit_code=0,
                attempts=1,
                final=True,
            )
        },
        agent_version="test",
    )


def http_requests(store: Store) -> int:
    return sum(n for op, n in store.stats.requests.items() if op.startswith("http."))


# -- blobs ---------------------------------------------------------------------


def test_put_get_roundtrip(store: Store) -> None:
    data = b"hello \x00 world"
    digest = store.put_blob(data)
    assert digest == digest_bytes(data)
    assert store.get_blob(digest) == data
    assert store.list_blobs() == [digest]


def test_json_blob_roundtrip(store: Store) -> None:
    value = {"b": [1, 2], "a": "é"}
    digest = store.put_json_blob(value)
    assert digest == digest_bytes(canonical_json(value))
    assert store.get_json_blob(digest) == value


def test_put_is_idempotent(store: Store) -> None:
    data = b"x" * 1000
    first = store.put_blob(data)
    assert store.stats.bytes_written == len(data)
    second = store.put_blob(data)
    assert second == first
    assert store.stats.bytes_written == len(data)
    assert store.stats.requests["put_if_absent"] == 2
    assert store.list_blobs() == [first]


def test_get_corrupted_blob_raises(harness: Harness) -> None:
    store = harness.store
    digest = store.put_blob(b"the real thing")
    harness.raw_put(blob_key(digest), b"something else")
    with pytest.raises(DigestMismatch) as info:
        store.get_blob(digest)
    assert info.value.expected == digest
    assert info.value.got == digest_bytes(b"something else")


def test_get_missing_blob_raises_not_found(store: Store) -> None:
    digest = digest_bytes(b"never stored")
    with pytest.raises(NotFound) as info:
        store.get_blob(digest)
    assert info.value.key == blob_key(digest)


@pytest.mark.parametrize("bad", ["", "blake3:xyz", "sha256:" + "0" * 64, "BLAKE3:" + "0" * 64])
def test_invalid_digest_refused(store: Store, bad: str) -> None:
    with pytest.raises(InvalidDigest):
        store.get_blob(bad)
    with pytest.raises(InvalidDigest):
        store.find_missing([bad])


def test_find_missing_is_one_batched_request(store: Store) -> None:
    present = [store.put_blob(f"blob {i}".encode()) for i in range(3)]
    absent = [digest_bytes(f"absent {i}".encode()) for i in range(4)]
    store.stats.reset()
    missing = store.find_missing([*present, *absent, *absent])
    assert missing == set(absent)
    assert store.stats.requests["exists"] == 1
    assert store.stats.total == 1
    # and on a small store it is one real request too (a listing page)
    assert http_requests(store) <= 1 + store.stats.requests["retries"]


def test_http_backends_count_every_request(harness: Harness) -> None:
    store = harness.store
    digest = store.put_blob(b"counted")
    assert store.get_blob(digest) == b"counted"
    if harness.http:
        assert store.stats.requests["http.PUT"] >= 1
        assert store.stats.requests["http.GET"] >= 1
    else:
        assert http_requests(store) == 0


def test_find_missing_of_nothing_costs_nothing(store: Store) -> None:
    assert store.find_missing([]) == set()
    assert store.stats.total == 0


def test_find_missing_of_one_blob(harness: Harness) -> None:
    store = harness.store
    present = store.put_blob(b"one")
    absent = digest_bytes(b"other")
    store.stats.reset()
    assert store.find_missing([present]) == set()
    assert store.find_missing([absent]) == {absent}
    assert store.stats.total == 2
    # One key is one HEAD on the HTTP backends, never a listing (store.listing.probe).
    requests = 2 if harness.http else 0
    retried = store.stats.requests["retries"]
    assert http_requests(store) - retried == requests
    assert store.stats.requests["http.HEAD"] - retried == requests


def test_requests_side_by_side_on_the_pool_are_all_counted(harness: Harness) -> None:
    """Every backend counts from the pool's threads without losing a request."""
    store = harness.store
    blobs = [b"side by side %d" % i for i in range(64)]
    store.stats.reset()
    digests = store.pool.map(store.put_blob, blobs)
    assert store.find_missing(digests) == set()
    assert store.pool.map(store.get_blob, digests) == blobs
    assert store.stats.requests["put_if_absent"] == 64
    assert store.stats.requests["get"] == 64
    assert store.stats.bytes_written == store.stats.bytes_read == sum(map(len, blobs))
    if harness.http:  # (more PUTs where the first writes create the container)
        assert store.stats.requests["http.PUT"] >= 64
        assert store.stats.requests["http.GET"] == 64


# -- pointers --------------------------------------------------------------------


def test_pointer_write_read(store: Store) -> None:
    assert store.read_pointer("web-1") is None
    p = pointer()
    store.write_pointer(p, None)
    assert store.read_pointer("web-1") == p
    assert store.read_pointer("web-2") is None


def test_generation_must_grow(store: Store) -> None:
    p1 = pointer(generation=1)
    store.write_pointer(p1, None)
    for proposed in (1, 0):
        with pytest.raises(GenerationRegression) as info:
            store.write_pointer(pointer(generation=proposed, content=b"other"), p1)
        assert (info.value.server, info.value.current, info.value.proposed) == (
            "web-1",
            1,
            proposed,
        )
    assert store.read_pointer("web-1") == p1
    p2 = pointer(generation=2, content=b"other")
    store.write_pointer(p2, p1)
    assert store.read_pointer("web-1") == p2


def test_stats_count_how_each_operation_ended(store: Store) -> None:
    store.stats.reset()
    with pytest.raises(NotFound):
        store.get_blob(digest_bytes(b"absent"))
    assert store.read_pointer("web-1") is None
    store.write_pointer(pointer(), None)
    got = store.poll_pointer("web-1", None)
    assert got is not None
    assert store.poll_pointer("web-1", got[1]) is None
    counts = store.stats.outcome_counts()
    assert counts[("get", "not_found")] == 2
    assert counts[("get", "ok")] == 0
    assert counts[("get_if_changed", "ok")] == 1
    assert counts[("get_if_changed", "not_modified")] == 1
    assert store.stats.not_modified == 1


def test_poll_pointer_missing_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.poll_pointer("web-1", None)


def test_poll_pointer_unchanged_then_replaced_with_same_size(store: Store) -> None:
    p1 = pointer(generation=1, content=b"m1")
    p2 = pointer(generation=2, content=b"m2")
    # The replacement is byte-for-byte the same length: size alone cannot tell.
    assert len(canonical_json(p1.to_dict())) == len(canonical_json(p2.to_dict()))
    store.write_pointer(p1, None)

    got = store.poll_pointer("web-1", None)
    assert got is not None
    assert got[0] == p1
    etag = got[1]

    assert store.poll_pointer("web-1", etag) is None
    assert store.stats.not_modified == 1

    store.write_pointer(p2, p1)
    again = store.poll_pointer("web-1", etag)
    assert again is not None
    assert again[0] == p2
    assert again[1] != etag
    assert store.poll_pointer("web-1", again[1]) is None


# -- reports ---------------------------------------------------------------------


def test_report_write_read(store: Store) -> None:
    assert store.read_report("web-1") is None
    r = report()
    store.write_report(r)
    assert store.read_report("web-1") == r
    newer = report(generation=2)
    store.write_report(newer)
    assert store.read_report("web-1") == newer


# -- listing and names -------------------------------------------------------------


def test_list_servers(store: Store) -> None:
    assert store.list_servers() == []
    store.put_blob(b"a blob is not a server")
    store.write_pointer(pointer("c-3"), None)
    store.write_report(report("b-2"))
    store.write_pointer(pointer("a-1"), None)
    store.write_report(report("a-1"))
    assert store.list_servers() == ["a-1", "b-2", "c-3"]


def test_forget_server_deletes_its_pointer_report_and_other_objects(store: Store) -> None:
    for server in ("web-1", "web-2"):
        store.write_pointer(pointer(server), None)
        store.write_report(report(server))
    store.write_agent_object("web-1", "heat-metadata", b"{}")
    assert store.forget_server("web-1") == [
        "agents/web-1/heat-metadata",
        "agents/web-1/pointer",
        "agents/web-1/report",
    ]
    assert store.list_servers() == ["web-2"]
    assert store.read_pointer("web-1") is None
    assert store.read_report("web-1") is None
    assert store.read_pointer("web-2") is not None
    assert store.forget_server("web-1") == []  # nothing left: not an error


def test_list_versions_give_the_polled_etag(store: Store) -> None:
    assert store.list_versions("agents/") == {}
    p1 = pointer("a-1", 1, b"m1")
    written = store.write_pointer(p1, None)
    store.write_report(report("a-1"))
    store.write_pointer(pointer("b-2"), None)
    store.put_blob(b"not under agents/")
    store.stats.reset()
    versions = store.list_versions("agents/")
    assert store.stats.requests["list"] == 1
    assert store.stats.requests["get"] == 0
    assert sorted(versions) == [pointer_key("a-1"), report_key("a-1"), pointer_key("b-2")]
    v1 = versions[pointer_key("a-1")]
    assert written is None or written == v1
    # The listed version is the etag a poll compares: unchanged, not read again.
    assert store.poll_pointer("a-1", v1) is None
    got = store.read_pointer_versioned("a-1")
    assert got == (p1, v1)
    rgot = store.read_report_versioned("a-1")
    assert rgot is not None
    assert rgot == (report("a-1"), versions[report_key("a-1")])
    assert store.read_report_versioned("b-2") is None
    assert store.read_pointer_versioned("c-3") is None

    # A same-size replacement changes the version, in the listing and in the write.
    p2 = pointer("a-1", 2, b"m2")
    written = store.write_pointer(p2, p1)
    store.write_report(report("a-1", generation=2))
    after = store.list_versions("agents/")
    v2 = after[pointer_key("a-1")]
    assert v2 != v1
    assert written is None or written == v2
    assert after[report_key("a-1")] != versions[report_key("a-1")]
    assert after[pointer_key("b-2")] == versions[pointer_key("b-2")]
    assert store.poll_pointer("a-1", v2) is None


@pytest.mark.parametrize("name", ["", "../etc", "a/b", ".hidden", "-x", "a..b", "a b", "x" * 300])
def test_invalid_server_names_refused(store: Store, name: str) -> None:
    with pytest.raises(InvalidDocument):
        pointer_key(name)
    with pytest.raises(InvalidDocument):
        store.read_pointer(name)
    with pytest.raises(InvalidDocument):
        store.read_report(name)
    with pytest.raises(InvalidDocument):
        store.write_pointer(pointer(name), None)
    with pytest.raises(InvalidDocument):
        store.write_report(report(name))
    assert store.list_servers() == []


# -- malformed documents -------------------------------------------------------------

GOOD_POINTER = pointer().to_dict()
GOOD_REPORT = report().to_dict()

MALFORMED_POINTERS: dict[str, str | bytes] = {
    "not json": b"{not json",
    "not utf-8": b"\xff\xfe",
    "a list": b"[]",
    "a string": b'"pointer"',
    "missing generation": json.dumps({k: v for k, v in GOOD_POINTER.items() if k != "generation"}),
    "generation as string": json.dumps({**GOOD_POINTER, "generation": "1"}),
    "generation as bool": json.dumps({**GOOD_POINTER, "generation": True}),
    "generation zero": json.dumps({**GOOD_POINTER, "generation": 0}),
    "bad manifest digest": json.dumps({**GOOD_POINTER, "manifest": "blake3:nothex"}),
}

MALFORMED_REPORTS: dict[str, str | bytes] = {
    "not json": b"\x00\x01",
    "a number": b"42",
    "missing server": json.dumps({k: v for k, v in GOOD_REPORT.items() if k != "server"}),
    "deployments as list": json.dumps({**GOOD_REPORT, "deployments": []}),
    "bad manifest": json.dumps({**GOOD_REPORT, "manifest": "sha1:abc"}),
    "bad status": json.dumps(
        {
            **GOOD_REPORT,
            "deployments": {"app/db": {**GOOD_REPORT["deployments"]["app/db"], "status": "DONE"}},
        }
    ),
}


def _raw(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


@pytest.mark.parametrize("case", sorted(MALFORMED_POINTERS))
def test_malformed_pointer_refused(harness: Harness, case: str) -> None:
    harness.raw_put(pointer_key("web-1"), _raw(MALFORMED_POINTERS[case]))
    with pytest.raises(InvalidDocument) as info:
        harness.store.read_pointer("web-1")
    assert info.value.what == "pointer"
    with pytest.raises(InvalidDocument):
        harness.store.poll_pointer("web-1", None)


@pytest.mark.parametrize("case", sorted(MALFORMED_REPORTS))
def test_malformed_report_refused(harness: Harness, case: str) -> None:
    harness.raw_put(report_key("web-1"), _raw(MALFORMED_REPORTS[case]))
    with pytest.raises(InvalidDocument):
        harness.store.read_report("web-1")


def test_malformed_json_blob_refused(store: Store) -> None:
    digest = store.put_blob(b"[1, 2]")
    with pytest.raises(InvalidDocument):
        store.get_json_blob(digest, "manifest")
