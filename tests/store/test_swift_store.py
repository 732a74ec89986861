"""What only ``SwiftStore`` promises, on a real Swift: auth (tempauth, keystone v3,
pre-authenticated, re-auth on 401), error translation and retries through a
faulty proxy, the container made on first write, the listing probe, and
TempURLs an agent uses with plain urllib and no token."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flaky import Fault, FlakyProxy, flaky_proxy
from store_backends import unique_name

from setpoint.store import swift as swift_module
from setpoint.store.base import blob_key, pointer_key, report_key
from setpoint.store.digest import canonical_json, digest_bytes
from setpoint.store.documents import Pointer, Report
from setpoint.store.errors import (
    InvalidArgument,
    NotFound,
    PermanentError,
    PermissionDenied,
    StoreError,
    TransientError,
)
from setpoint.store.retry import Retry, Timeouts
from setpoint.store.swift import (
    KeystoneV3Auth,
    PreAuth,
    SwiftHTTPError,
    SwiftStore,
    TempAuth,
    auth_from_env,
)
from setpoint.store.url import open_store
from tests.swift_fixtures import SwiftServer


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def http(s: SwiftStore) -> dict[str, int]:
    return {k: v for k, v in s.stats.requests.items() if k.startswith("http.")}


def fresh(server: SwiftServer, **kw: Any) -> SwiftStore:
    return SwiftStore(unique_name("sw"), "pre", auth=kw.pop("auth", server.tempauth()), **kw)


def assert_http_cause(err: StoreError, status: int) -> None:
    assert type(err).__module__ == "setpoint.store.errors"
    assert isinstance(err.__cause__, SwiftHTTPError)
    assert err.__cause__.status == status


def pointer(generation: int) -> Pointer:
    return Pointer("web-1", generation, digest_bytes(b"m%d" % generation), "0" * 40, "now")


# -- plain urllib, as an agent would --------------------------------------------------


def fetch(url: str, data: bytes | None = None, method: str = "GET") -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, bytes(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, b""


def with_query(object_url: str, signed_url: str) -> str:
    return object_url + "?" + urlsplit(signed_url).query


# -- auth --------------------------------------------------------------------------------


def test_tempauth_then_reauth_once_on_401(swift_server: SwiftServer) -> None:
    s = fresh(swift_server)
    digest = s.put_blob(b"x")
    assert s.stats.requests["http.AUTH"] == 1
    storage_url, _ = s._session or ("", "")
    s._session = (storage_url, "AUTH_tk-expired")  # as if the token had expired
    s.stats.reset()
    assert s.get_blob(digest) == b"x"
    assert http(s) == {"http.GET": 2, "http.AUTH": 1}


def test_wrong_key_is_permission_denied(swift_server: SwiftServer) -> None:
    s = fresh(swift_server, auth=swift_server.tempauth(key="wrong"))
    with pytest.raises(PermissionDenied) as info:
        s.get_blob(digest_bytes(b"x"))
    assert_http_cause(info.value, 401)


def test_non_admin_user_is_denied(swift_server: SwiftServer) -> None:
    owner = fresh(swift_server)
    digest = owner.put_blob(b"private")
    other = SwiftStore(
        owner.container, "pre", auth=swift_server.tempauth("test:tester3", "testing3")
    )
    with pytest.raises(PermissionDenied) as info:
        other.get_blob(digest)
    assert_http_cause(info.value, 403)
    with pytest.raises(PermissionDenied):
        other.put_blob(b"intruder")


def test_pre_authenticated(swift_server: SwiftServer) -> None:
    storage_url, token = swift_server.token()
    s = fresh(swift_server, auth=PreAuth(storage_url, token))
    digest = s.put_blob(b"pre")
    assert s.get_blob(digest) == b"pre"
    assert s.stats.requests["http.AUTH"] == 0
    bad = SwiftStore(s.container, "pre", auth=PreAuth(storage_url, "AUTH_tk-bogus"))
    with pytest.raises(PermissionDenied):
        bad.get_blob(digest)
    assert http(bad) == {"http.GET": 1}  # nothing to renew: no second try


class FakeKeystone:
    """Keystone v3's POST /v3/auth/tokens, handing out a real tempauth token and a
    catalog whose object-store endpoints differ by interface and region."""

    def __init__(self, server: SwiftServer) -> None:
        self.storage_url, self.token = server.token()
        self.bodies: list[dict[str, Any]] = []
        keystone = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                keystone.bodies.append(body)
                user = body["auth"]["identity"]["password"]["user"]
                ok = self.path == "/v3/auth/tokens" and user["password"] == "secret"
                endpoints = [
                    {"interface": "internal", "region": "RegionOne", "url": "http://127.0.0.1:1/x"},
                    {"interface": "public", "region": "RegionTwo", "url": "http://127.0.0.1:1/y"},
                    {"interface": "public", "region": "RegionOne", "url": keystone.storage_url},
                ]
                catalog = [
                    {"type": "identity", "endpoints": []},
                    {"type": "object-store", "endpoints": endpoints},
                ]
                data = json.dumps({"token": {"catalog": catalog}}).encode()
                self.send_response(201 if ok else 401)
                if ok:
                    self.send_header("X-Subject-Token", keystone.token)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def keystone(swift_server: SwiftServer) -> Iterator[FakeKeystone]:
    k = FakeKeystone(swift_server)
    try:
        yield k
    finally:
        k.close()


def test_keystone_v3_password_auth(
    keystone: FakeKeystone, swift_server: SwiftServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("OS_STORAGE_URL", "OS_AUTH_TOKEN", "ST_AUTH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OS_AUTH_URL", keystone.url + "/v3")
    monkeypatch.setenv("OS_USERNAME", "alice")
    monkeypatch.setenv("OS_PASSWORD", "secret")
    monkeypatch.setenv("OS_PROJECT_NAME", "ops")
    monkeypatch.setenv("OS_USER_DOMAIN_NAME", "users")
    monkeypatch.setenv("OS_PROJECT_DOMAIN_NAME", "projects")
    monkeypatch.setenv("OS_REGION_NAME", "RegionOne")
    monkeypatch.setenv("OS_INTERFACE", "publicURL")
    s = open_store(f"swift://{unique_name('ks')}/p")
    assert isinstance(s, SwiftStore)
    assert isinstance(s.auth, KeystoneV3Auth)
    digest = s.put_blob(b"via keystone")
    assert s.get_blob(digest) == b"via keystone"
    assert s.storage_url == keystone.storage_url
    (body,) = keystone.bodies
    assert body["auth"]["identity"]["password"]["user"] == {
        "name": "alice",
        "domain": {"name": "users"},
        "password": "secret",
    }
    assert body["auth"]["scope"] == {"project": {"name": "ops", "domain": {"name": "projects"}}}

    wrong = SwiftStore("c", auth=KeystoneV3Auth(keystone.url, "alice", "nope", "ops"))
    with pytest.raises(PermissionDenied):
        wrong.list_blobs()
    nowhere = SwiftStore(
        "c", auth=KeystoneV3Auth(keystone.url, "alice", "secret", "ops", region_name="Mars")
    )
    with pytest.raises(PermanentError, match="object-store endpoint"):
        nowhere.list_blobs()


def test_auth_from_env_precedence() -> None:
    tempauth = {"ST_AUTH": "http://h/auth/v1.0", "ST_USER": "a:b", "ST_KEY": "k"}
    keystone = {
        "OS_AUTH_URL": "http://h:5000/v3",
        "OS_USERNAME": "u",
        "OS_PASSWORD": "p",
        "OS_PROJECT_NAME": "pr",
    }
    pre = {"OS_STORAGE_URL": "http://h/v1/AUTH_x/", "OS_AUTH_TOKEN": "t"}
    assert auth_from_env({**tempauth, **keystone, **pre}) == PreAuth("http://h/v1/AUTH_x", "t")
    assert auth_from_env({**tempauth, **keystone}) == TempAuth("http://h/auth/v1.0", "a:b", "k")
    ks = auth_from_env(keystone)
    assert ks == KeystoneV3Auth("http://h:5000/v3", "u", "p", "pr", "Default", "Default")
    assert "p'" not in repr(ks)  # no password in reprs (logs)
    with pytest.raises(InvalidArgument, match="OS_PASSWORD"):
        auth_from_env({k: v for k, v in keystone.items() if k != "OS_PASSWORD"})
    with pytest.raises(InvalidArgument, match="no Swift credentials"):
        auth_from_env({})
    with pytest.raises(InvalidArgument):
        auth_from_env({"ST_AUTH": "http://h/auth/v1.0"})


# -- errors and retries through a faulty proxy ---------------------------------------------


@pytest.fixture
def proxied(swift_server: SwiftServer) -> Iterator[tuple[FlakyProxy, PreAuth]]:
    storage_url, token = swift_server.token()
    with flaky_proxy(swift_server.endpoint) as p:
        yield p, PreAuth(p.url + urlsplit(storage_url).path, token)


def test_retry_on_503_then_success(
    swift_server: SwiftServer, proxied: tuple[FlakyProxy, PreAuth]
) -> None:
    proxy, auth = proxied
    sleeps = Sleeps()
    s = fresh(swift_server, auth=auth, retry=Retry(sleep=sleeps, random=lambda: 1.0))
    digest = s.put_blob(b"busy")
    s.stats.reset()
    proxy.fail_next(
        Fault(503, b"busy", method="GET"),
        Fault(498, b"rate limited", {"Retry-After": "2"}, method="GET"),
    )
    assert s.get_blob(digest) == b"busy"
    assert [x.answered for x in proxy.seen[-3:]] == [503, 498, 200]
    assert http(s) == {"http.GET": 3}
    assert s.stats.requests["retries"] == 2
    assert sleeps == [0.1, 2.0]  # backoff (5xx has no hint), then Retry-After


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, PermissionDenied),
        (403, PermissionDenied),
        (404, NotFound),
        (429, TransientError),
        (500, TransientError),
        (507, TransientError),
        (400, PermanentError),
        (501, PermanentError),
    ],
)
def test_statuses_become_store_errors(
    swift_server: SwiftServer,
    proxied: tuple[FlakyProxy, PreAuth],
    status: int,
    expected: type[StoreError],
) -> None:
    proxy, auth = proxied
    s = fresh(swift_server, auth=auth, retry=Retry(attempts=2, sleep=Sleeps()))
    digest = s.put_blob(b"e")
    proxy.fail_next(*[Fault(status, b"nope", method="GET")] * 2)
    with pytest.raises(expected) as info:
        s.get_blob(digest)
    assert_http_cause(info.value, status)
    tries = 2 if expected is TransientError else 1
    assert [x.answered for x in proxy.seen[-tries:]] == [status] * tries
    if expected is NotFound:
        assert info.value.key == blob_key(digest)  # type: ignore[attr-defined]


def test_a_closed_keepalive_connection_is_resent_at_once(
    swift_server: SwiftServer, proxied: tuple[FlakyProxy, PreAuth]
) -> None:
    proxy, auth = proxied
    sleeps = Sleeps()
    s = fresh(swift_server, auth=auth, retry=Retry(sleep=sleeps))
    digest = s.put_blob(b"k")
    s.stats.reset()
    proxy.fail_next(Fault(drop=True, method="GET"))
    assert s.get_blob(digest) == b"k"
    assert http(s) == {"http.GET": 2}
    assert s.stats.requests["retries"] == 1
    assert sleeps == []


def test_dropped_fresh_connection_is_retried(
    swift_server: SwiftServer, proxied: tuple[FlakyProxy, PreAuth]
) -> None:
    proxy, auth = proxied
    s = fresh(swift_server, auth=auth, retry=Retry(sleep=Sleeps()))
    proxy.fail_next(Fault(drop=True, method="PUT"))
    s.put_blob(b"first request of a new store")
    assert s.stats.requests["retries"] == 1


def test_read_timeout_is_transient(
    swift_server: SwiftServer, proxied: tuple[FlakyProxy, PreAuth]
) -> None:
    proxy, auth = proxied
    s = fresh(
        swift_server, auth=auth, timeouts=Timeouts(connect=1, read=0.2), retry=Retry(attempts=1)
    )
    digest = s.put_blob(b"slow")
    proxy.fail_next(Fault(stall=0.6, method="GET"))
    with pytest.raises(TransientError) as info:
        s.get_blob(digest)
    assert isinstance(info.value.__cause__, TimeoutError)


def test_connection_refused_is_transient() -> None:
    with flaky_proxy("http://127.0.0.1:9") as p:
        url = p.url  # a port that was just free
    s = SwiftStore(
        "c", auth=PreAuth(url + "/v1/AUTH_x", "t"), retry=Retry(attempts=2, sleep=Sleeps())
    )
    with pytest.raises(TransientError) as info:
        s.list_blobs()
    assert isinstance(info.value.__cause__, ConnectionRefusedError)
    assert http(s) == {"http.LIST": 2}


# -- objects --------------------------------------------------------------------------------


def test_container_is_created_on_first_write(swift_server: SwiftServer) -> None:
    s = fresh(swift_server)
    assert s.list_blobs() == []  # no container yet: nothing, and nothing created
    assert s.read_pointer("web-1") is None
    s.stats.reset()
    digest = s.put_blob(b"first")
    assert http(s) == {"http.PUT": 3}  # 404, the container, the object again
    s.stats.reset()
    s.put_blob(b"second")
    assert http(s) == {"http.PUT": 1}
    assert s.put_blob(b"first") == digest
    assert http(s) == {"http.PUT": 2}  # the repeat answered 412


def test_pointer_poll_is_a_conditional_get(swift_server: SwiftServer) -> None:
    s = fresh(swift_server)
    s.write_pointer(pointer(1), None)
    got = s.poll_pointer("web-1", None)
    assert got is not None
    etag = got[1]
    assert etag == hashlib.md5(canonical_json(pointer(1).to_dict())).hexdigest()
    s.stats.reset()
    assert s.poll_pointer("web-1", etag) is None
    assert http(s) == {"http.GET": 1}
    assert s.stats.not_modified == 1
    assert s.stats.bytes_read == 0


def test_damaged_upload_is_refused(
    swift_server: SwiftServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = fresh(swift_server, retry=Retry(attempts=1))
    s.put_blob(b"make the container")
    real = s._conns.request

    def corrupting(
        method: str, url: str, headers: Any, body: bytes | None = None, stat: Any = None
    ) -> Any:
        if method == "PUT" and body:
            body = b"X" + body[1:]  # damaged on the way, after the ETag was computed
        return real(method, url, headers, body, stat)

    monkeypatch.setattr(s._conns, "request", corrupting)
    with pytest.raises(PermanentError, match="422"):
        s.put_blob(b"precious bytes")


def test_find_missing_pages_skip_the_gaps(
    swift_server: SwiftServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(swift_module, "LIST_PAGE", 7)
    s = fresh(swift_server, workers=1)  # one probe: the bounds of store.listing.probe
    stored = [s.put_blob(b"blob %d" % i) for i in range(40)]
    s.write_report(Report("web-1", 1, None, "now"))
    absent = [digest_bytes(b"absent %d" % i) for i in range(30)]
    rng = random.Random(11)
    for size in (2, 5, 20, 70):
        wanted = rng.sample(stored + absent, size)
        s.stats.reset()
        assert s.find_missing(wanted) == set(wanted) & set(absent)
        requests = s.stats.requests["http.LIST"] + s.stats.requests["http.HEAD"]
        assert requests <= size
        assert requests <= 40 // 7 + 2
    s.stats.reset()
    assert s.find_missing([absent[0]]) == {absent[0]}
    assert http(s) == {"http.HEAD": 1}
    assert s.list_servers() == ["web-1"]


def test_urls(swift_server: SwiftServer, monkeypatch: pytest.MonkeyPatch) -> None:
    s = SwiftStore("box", "/a/b/", auth=swift_server.tempauth())
    assert s.prefix == "a/b/"
    assert s.url == "swift://box/a/b/"
    storage_url, _ = swift_server.token()
    assert s.object_url("blobs/ab/cd") == f"{storage_url}/box/a/b/blobs/ab/cd"
    monkeypatch.setenv("ST_AUTH", swift_server.auth_url)
    monkeypatch.setenv("ST_USER", swift_server.user)
    monkeypatch.setenv("ST_KEY", swift_server.key)
    for var in ("OS_STORAGE_URL", "OS_AUTH_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    again = open_store(s.url + "?read_timeout=5")
    assert isinstance(again, SwiftStore)
    assert (again.container, again.prefix, again.timeouts.read) == ("box", "a/b/", 5.0)
    for bad in ("", "a/b"):
        with pytest.raises(InvalidArgument):
            SwiftStore(bad, auth=s.auth)


# -- TempURLs ----------------------------------------------------------------------------


@pytest.fixture
def account2(swift_server: SwiftServer) -> SwiftStore:
    """A store in AUTH_test2 (its own TempURL keys), key 1 set, key 2 unset."""
    s = SwiftStore(
        unique_name("tu"), "site", auth=swift_server.tempauth("test2:tester2", "testing2")
    )
    s.set_temp_url_key(1, "first-secret")
    s.set_temp_url_key(2, None)
    return s


def test_get_temp_url_needs_no_token(account2: SwiftStore) -> None:
    s = account2
    digest = s.put_blob(b"for the agent")
    url = s.temp_url("GET", blob_key(digest), int(time.time()) + 300)
    assert fetch(url) == (200, b"for the agent")
    query = parse_qs(urlsplit(url).query)
    expires = query["temp_url_expires"][0]
    path = urlsplit(url).path
    expected = hmac.new(
        b"first-secret", f"GET\n{expires}\n{path}".encode(), hashlib.sha256
    ).hexdigest()
    assert query["temp_url_sig"] == [expected]
    assert fetch(url.replace(expected, "0" * 64))[0] == 401
    assert fetch(s.object_url(blob_key(digest)))[0] == 401  # no token, no signature
    with pytest.raises(InvalidArgument):
        s.temp_url("GET", blob_key(digest), int(time.time()) - 1)
    with pytest.raises(InvalidArgument):
        s.temp_url("PATCH", blob_key(digest), int(time.time()) + 60)


def test_prefix_temp_url_reads_blobs_and_nothing_else(account2: SwiftStore) -> None:
    s = account2
    digests = [s.put_blob(b"blob one"), s.put_blob(b"blob two")]
    s.write_pointer(pointer(1), None)
    url = s.temp_url("GET", "blobs/", int(time.time()) + 300, prefix=True)
    assert parse_qs(urlsplit(url).query)["temp_url_prefix"] == ["site/blobs/"]
    for digest, data in zip(digests, (b"blob one", b"blob two"), strict=True):
        assert fetch(with_query(s.object_url(blob_key(digest)), url)) == (200, data)
    assert fetch(with_query(s.object_url(pointer_key("web-1")), url))[0] == 401
    assert fetch(with_query(s.object_url("agents/x/pointer"), url))[0] == 401
    assert fetch(with_query(s.object_url(blob_key(digests[0])), url), b"x", "PUT")[0] == 401


def test_put_temp_url_writes_exactly_its_report(account2: SwiftStore) -> None:
    s = account2
    s.put_blob(b"make the container")
    url = s.temp_url("PUT", report_key("s1"), int(time.time()) + 300)
    assert fetch(url, b'{"report": 1}', "PUT")[0] == 201
    assert s._get(report_key("s1")) == b'{"report": 1}'
    other = with_query(s.object_url(report_key("s2")), url)
    assert fetch(other, b"forged", "PUT")[0] == 401
    assert fetch(url)[0] == 401  # a PUT signature does not read
    with pytest.raises(NotFound):
        s._get(report_key("s2"))


def test_key_rotation(account2: SwiftStore) -> None:
    s = account2
    digest = s.put_blob(b"rotating")
    key = blob_key(digest)
    expires = int(time.time()) + 300
    old_url = s.temp_url("GET", key, expires)
    assert s.temp_url_keys() == ("first-secret", None)

    s.set_temp_url_key(2, "second-secret")  # rotation starts
    assert s.temp_url_keys() == ("first-secret", "second-secret")
    new_url = s.temp_url("GET", key, expires)
    assert new_url != old_url  # signed with key 2 now
    assert fetch(new_url) == (200, b"rotating")
    assert fetch(old_url) == (200, b"rotating")  # key 1 is still there

    s.set_temp_url_key(1, "second-secret")  # rotation ends
    s.set_temp_url_key(2, None)
    assert s.temp_url_keys() == ("second-secret", None)
    assert s.temp_url("GET", key, expires) == new_url
    assert fetch(new_url) == (200, b"rotating")
    assert fetch(old_url)[0] == 401

    s.set_temp_url_key(1, None)
    with pytest.raises(PermanentError, match="no TempURL key"):
        s.temp_url("GET", key, expires)
    with pytest.raises(InvalidArgument):
        s.set_temp_url_key(3, "x")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        s.set_temp_url_key(1, "")
