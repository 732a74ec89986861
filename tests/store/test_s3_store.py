"""What only ``S3Store`` promises: conditional PUT or its fallback, error translation,
retries, the listing probe, presigned URLs. Fast ones on moto; the s3api ones on a
real Swift (2.30 without conditional PUT, >= 2.36 with it)."""

from __future__ import annotations

import random
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import botocore.exceptions as bce
import pytest
from flaky import Fault, FlakyProxy, flaky_proxy
from store_backends import unique_name

from setpoint.store import s3 as s3_module
from setpoint.store.base import blob_key
from setpoint.store.digest import digest_bytes
from setpoint.store.documents import Report
from setpoint.store.errors import (
    InvalidArgument,
    NotFound,
    PermanentError,
    PermissionDenied,
    StoreError,
    TransientError,
)
from setpoint.store.listing import MIN_KEYS_PER_SLICE
from setpoint.store.retry import Retry, Timeouts
from setpoint.store.s3 import MAX_PRESIGN_SECONDS, S3Store, make_client, translate
from setpoint.store.url import open_store
from tests.swift_fixtures import SwiftServer, unavailable


def moto_client(endpoint: str, timeouts: Timeouts | None = None) -> Any:
    return make_client(
        endpoint,
        "us-east-1",
        timeouts=timeouts,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def s3_error(code: str, message: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>{message or code}</Message><RequestId>r1</RequestId></Error>"
    ).encode()


def moto_store(endpoint: str, timeouts: Timeouts | None = None, **kw: Any) -> S3Store:
    client = moto_client(endpoint, timeouts)
    return S3Store(unique_name("moto"), "p", client=client, **kw)


@pytest.fixture
def proxy(moto_server: str) -> Iterator[FlakyProxy]:
    with flaky_proxy(moto_server) as p:
        yield p


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def http(store: S3Store) -> dict[str, int]:
    return {k: v for k, v in store.stats.requests.items() if k.startswith("http.")}


def assert_translated(err: StoreError) -> None:
    """A store error, its botocore cause chained, no botocore type in sight."""
    assert not isinstance(err, (bce.BotoCoreError, bce.ClientError))
    assert type(err).__module__ == "setpoint.store.errors"
    assert isinstance(err.__cause__, (bce.BotoCoreError, bce.ClientError))


# -- conditional PUT --------------------------------------------------------------------


def test_conditional_put_on_moto(moto_server: str) -> None:
    store = moto_store(moto_server)
    digest = store.put_blob(b"once")
    assert store.conditional_put is True
    store.stats.reset()
    assert store.put_blob(b"once") == digest
    assert store.stats.bytes_written == 0
    assert http(store) == {"http.PUT": 1}  # answered 412: no HEAD


def test_conditional_put_falls_back_on_swift_230(swift_server: SwiftServer) -> None:
    if swift_server.version >= (2, 36):
        unavailable(f"SETPOINT_SWIFT_AUTH_URL names a Swift {swift_server.version}, not < 2.36")
    store = S3Store(unique_name("s3"), "p", client=swift_server.s3_client())
    first = store.put_blob(b"a blob")
    assert store.conditional_put is False
    assert store.stats.requests["http.HEAD"] >= 1
    # Remembered: no conditional PUT is tried again; HEAD says it is there.
    # (Swift 2.30 may close a connection after refusing a request without
    # reading its body, and not say so: a request that meets such a connection
    # is retried, and counted in "retries".)
    store.stats.reset()
    assert store.put_blob(b"a blob") == first
    assert http(store) == {"http.HEAD": 1 + store.stats.requests["retries"]}
    assert store.stats.bytes_written == 0
    store.stats.reset()
    store.put_blob(b"another blob")
    assert sum(http(store).values()) == 2 + store.stats.requests["retries"]
    assert store.stats.requests["http.PUT"] >= 1
    assert store.get_blob(first) == b"a blob"


def test_conditional_put_used_on_swift_236_and_later(swift_new_server: SwiftServer) -> None:
    store = S3Store(unique_name("s3"), "p", client=swift_new_server.s3_client())
    digest = store.put_blob(b"a blob")
    assert store.conditional_put is True
    assert store.stats.requests["http.HEAD"] == 0
    store.stats.reset()
    assert store.put_blob(b"a blob") == digest
    assert http(store) == {"http.PUT": 1}
    assert store.stats.bytes_written == 0


# -- errors and retries -----------------------------------------------------------------


def test_retry_on_503_slowdown_then_success(proxy: FlakyProxy) -> None:
    sleeps = Sleeps()
    store = moto_store(proxy.url, retry=Retry(sleep=sleeps, random=lambda: 1.0))
    digest = store.put_blob(b"first")  # creates the bucket
    store.stats.reset()
    slow = Fault(503, s3_error("SlowDown"), method="GET")
    proxy.fail_next(slow, Fault(503, s3_error("SlowDown"), {"Retry-After": "2"}, method="GET"))
    assert store.get_blob(digest) == b"first"
    assert [s.answered for s in proxy.seen[-3:]] == [503, 503, 200]
    assert store.stats.requests["http.GET"] == 3  # every real request counted
    assert store.stats.requests["get"] == 1
    assert sleeps == [1.0, 2.0]  # SlowDown's default hint, then Retry-After


def test_dropped_connection_is_retried(proxy: FlakyProxy) -> None:
    store = moto_store(proxy.url, retry=Retry(sleep=Sleeps()))
    digest = store.put_blob(b"x")
    proxy.fail_next(Fault(drop=True, method="GET"))
    assert store.get_blob(digest) == b"x"
    assert [s.answered for s in proxy.seen[-2:]] == [0, 200]


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (403, "AccessDenied", PermissionDenied),
        (401, "Unauthorized", PermissionDenied),
        (404, "NoSuchKey", NotFound),
        (500, "InternalError", TransientError),
        (502, "BadGateway", TransientError),
        (503, "ServiceUnavailable", TransientError),
        (429, "TooManyRequests", TransientError),
        (400, "InvalidArgument", PermanentError),
        (501, "NotImplemented", PermanentError),
    ],
)
def test_statuses_become_store_errors(
    proxy: FlakyProxy, status: int, code: str, expected: type[StoreError]
) -> None:
    store = moto_store(proxy.url, retry=Retry(attempts=2, sleep=Sleeps()))
    digest = store.put_blob(b"y")
    proxy.fail_next(*[Fault(status, s3_error(code), method="GET")] * 2)
    with pytest.raises(expected) as info:
        store.get_blob(digest)
    assert_translated(info.value)
    tries = 2 if expected is TransientError else 1
    assert [s.answered for s in proxy.seen[-tries:]] == [status] * tries
    if expected is NotFound:
        assert info.value.key == blob_key(digest)  # type: ignore[attr-defined]


def test_head_statuses_too(proxy: FlakyProxy) -> None:
    store = moto_store(proxy.url, retry=Retry(attempts=1))
    digest = store.put_blob(b"z")
    proxy.fail_next(Fault(403, method="HEAD"))
    with pytest.raises(PermissionDenied) as info:
        store.find_missing([digest])
    assert_translated(info.value)


def test_read_timeout_is_transient(proxy: FlakyProxy) -> None:
    # A read timeout with room for the PUT before it on a loaded machine (0.2 s
    # timed the PUT out too under CI load); the stalled GET far outlasts it.
    store = moto_store(proxy.url, timeouts=Timeouts(connect=1, read=1.0), retry=Retry(attempts=1))
    digest = store.put_blob(b"slow")
    proxy.fail_next(Fault(stall=2.5, method="GET"))
    with pytest.raises(TransientError) as info:
        store.get_blob(digest)
    assert_translated(info.value)
    assert isinstance(info.value.__cause__, bce.ReadTimeoutError)


def test_connection_refused_is_transient() -> None:
    with flaky_proxy("http://127.0.0.1:9") as p:
        url = p.url  # a port that was just free
    store = moto_store(url, retry=Retry(attempts=2, sleep=Sleeps()))
    with pytest.raises(TransientError) as info:
        store.get_blob(digest_bytes(b"nothing"))
    assert_translated(info.value)
    assert store.stats.requests["http.GET"] == 2


def test_wrong_secret_on_swift_is_permission_denied(swift_server: SwiftServer) -> None:
    client = swift_server.s3_client(key="not-the-secret")
    store = S3Store(unique_name("s3"), client=client, retry=Retry(attempts=1))
    with pytest.raises(PermissionDenied) as info:
        store.put_blob(b"x")
    assert_translated(info.value)


def test_translate_credentials_and_other_botocore_errors() -> None:
    assert isinstance(translate(bce.NoCredentialsError(), "k"), PermissionDenied)
    assert isinstance(translate(bce.ParamValidationError(report="bad"), "k"), PermanentError)
    assert isinstance(
        translate(bce.EndpointConnectionError(endpoint_url="http://x"), "k"), TransientError
    )


# -- listing probe ----------------------------------------------------------------------


def test_find_missing_pages_skip_the_gaps(
    moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_module, "LIST_PAGE", 7)
    s = moto_store(moto_server, workers=1)  # one probe: the bounds of store.listing.probe
    stored = [s.put_blob(b"blob %d" % i) for i in range(60)]
    absent = [digest_bytes(b"absent %d" % i) for i in range(40)]
    rng = random.Random(7)
    for size in (2, 5, 30, 100):
        wanted = rng.sample(stored + absent, size)
        s.stats.reset()
        assert s.find_missing(wanted) == set(wanted) & set(absent)
        requests = s.stats.requests["http.LIST"] + s.stats.requests["http.HEAD"]
        assert requests <= size  # never worse than a HEAD per key
        assert requests <= 60 // 7 + 2  # nor than listing everything
    s.stats.reset()
    assert s.find_missing([stored[0]]) == set()
    assert http(s) == {"http.HEAD": 1}


def test_find_missing_probes_slices_side_by_side_within_the_same_bounds(
    moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_module, "LIST_PAGE", 7)
    s = moto_store(moto_server, workers=4)
    stored = [s.put_blob(b"blob %d" % i) for i in range(60)]
    absent = [digest_bytes(b"absent %d" % i) for i in range(40)]
    rng = random.Random(7)
    for size in (5, 30, 100):
        wanted = rng.sample(stored + absent, size)
        slices = max(1, min(4, size // MIN_KEYS_PER_SLICE))
        s.stats.reset()
        assert s.find_missing(wanted) == set(wanted) & set(absent)
        requests = s.stats.requests["http.LIST"] + s.stats.requests["http.HEAD"]
        assert requests <= size  # never worse than a HEAD per key
        assert requests <= 60 // 7 + 2 * slices  # one listing, plus two per slice


def test_the_client_keeps_a_connection_per_worker(moto_server: str) -> None:
    """Fewer pooled connections than workers: urllib3 discards the extra ones."""
    s = S3Store(unique_name("moto"), "p", endpoint_url=moto_server, workers=48)
    assert s.pool.size == 48
    assert s.client.meta.config.max_pool_connections == 48
    opened = open_store(f"s3://{unique_name('moto')}/p?endpoint={moto_server}", workers=3)
    assert isinstance(opened, S3Store)
    assert opened.client.meta.config.max_pool_connections == 3


def test_find_missing_on_a_missing_bucket(moto_server: str) -> None:
    s = moto_store(moto_server)
    wanted = [digest_bytes(b"a"), digest_bytes(b"b")]
    assert s.find_missing(wanted) == set(wanted)
    assert s.list_blobs() == []
    assert s.list_servers() == []


# -- presigned URLs ----------------------------------------------------------------------


def _urlopen(url: str, data: bytes | None = None, method: str = "GET") -> bytes:
    """Plain urllib, no credentials: what an agent holding the URL does. An HTTP
    error is raised closed (its ``code`` still there)."""
    headers = {"Content-Type": "application/octet-stream"} if data is not None else {}
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return bytes(resp.read())
    except urllib.error.HTTPError as exc:
        exc.close()
        raise


def _check_presigned(s: S3Store, verifies_signatures: bool = True) -> None:
    digest = s.put_blob(b"published")  # also creates the bucket
    got = _urlopen(s.presign("GET", blob_key(digest), 300))
    assert got == b"published"
    report = b'{"a": "report"}'
    put_url = s.presign("PUT", "agents/s1/report", 300)
    _urlopen(put_url, report, "PUT")
    assert s._get("agents/s1/report") == report
    if not verifies_signatures:
        return
    # a signature is for one key and one method
    other = put_url.replace("agents/s1/report", "agents/s2/report")
    with pytest.raises(urllib.error.HTTPError) as info:
        _urlopen(other, b"forged", "PUT")
    assert info.value.code == 403
    with pytest.raises(urllib.error.HTTPError) as info:
        _urlopen(put_url)
    assert info.value.code == 403


def test_presigned_get_and_put_on_moto_server(moto_server: str) -> None:
    _check_presigned(moto_store(moto_server), verifies_signatures=False)  # moto does not


def test_presigned_get_and_put_on_swift(swift_server: SwiftServer) -> None:
    _check_presigned(S3Store(unique_name("s3"), "p", client=swift_server.s3_client()))


def test_presign_clamps_to_seven_days_and_refuses_nonsense(moto_server: str) -> None:
    s = moto_store(moto_server)

    def expires(url: str) -> int:
        return int(parse_qs(urlsplit(url).query)["X-Amz-Expires"][0])

    assert expires(s.presign("GET", "blobs/ab/cd", 10**9)) == MAX_PRESIGN_SECONDS == 604800
    assert expires(s.presign("PUT", "agents/a/report", 60)) == 60
    for bad in (0, -1):
        with pytest.raises(InvalidArgument):
            s.presign("GET", "k", bad)
    with pytest.raises(InvalidArgument):
        s.presign("DELETE", "k", 60)  # type: ignore[arg-type]


# -- names and URLs ------------------------------------------------------------------------


def test_object_url_and_store_url(moto_server: str) -> None:
    client = moto_client(moto_server)
    s = S3Store("bkt", "/team/a/", client=client)
    assert s.prefix == "team/a/"
    assert s.object_url("blobs/ab/cd") == f"{moto_server}/bkt/team/a/blobs/ab/cd"
    assert s.url == "s3://bkt/team/a/"
    explicit = S3Store("bkt", "x", endpoint_url=moto_server, region_name="eu-west-1")
    quoted = moto_server.replace(":", "%3A").replace("/", "%2F")
    assert explicit.url == f"s3://bkt/x/?endpoint={quoted}&region=eu-west-1"
    again = open_store(explicit.url)
    assert isinstance(again, S3Store)
    assert (again.bucket, again.prefix, again.url) == ("bkt", "x/", explicit.url)
    assert again.client.meta.endpoint_url == moto_server
    assert again.client.meta.region_name == "eu-west-1"


def test_endpoint_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("SETPOINT_S3_ENDPOINT", "http://127.0.0.1:2")
    assert S3Store("b").client.meta.endpoint_url == "http://127.0.0.1:2"
    monkeypatch.delenv("SETPOINT_S3_ENDPOINT")
    assert S3Store("b").client.meta.endpoint_url == "http://127.0.0.1:1"
    assert S3Store("b", endpoint_url="http://127.0.0.1:3").client.meta.endpoint_url == (
        "http://127.0.0.1:3"
    )


def test_bucket_is_created_on_first_write(moto_server: str) -> None:
    s = moto_store(moto_server)
    assert s.read_pointer("web-1") is None  # reading a missing bucket creates nothing
    s.write_report(Report("web-1", 1, None, "now"))
    assert s.list_servers() == ["web-1"]


def test_invalid_bucket_names_refused() -> None:
    for bad in ("", "a/b"):
        with pytest.raises(InvalidArgument):
            S3Store(bad, client=object())
