"""One rule for HTTP answers: the same status and headers give the same store error
whether they came through S3 (botocore), Swift's native API, or the agent's
plain-HTTP reader (urllib)."""

from __future__ import annotations

import threading
import urllib.error
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import Message
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import botocore.exceptions as bce
import pytest

from setpoint.store import http as agent_http
from setpoint.store import s3, swift
from setpoint.store.capabilities import Capabilities
from setpoint.store.errors import (
    NotFound,
    PermanentError,
    PermissionDenied,
    StoreError,
    TransientError,
)
from setpoint.store.http import CapabilityStore
from setpoint.store.http_errors import retry_after
from setpoint.store.retry import Retry

NOW = 1_800_000_000.0
KEY = "agents/web-1/pointer"
URL = "http://store.example/v1/AUTH_x/c/" + KEY


def via_s3(status: int, headers: dict[str, str]) -> StoreError:
    # botocore lowercases header names, and names a bodiless error by its status
    response = {
        "Error": {"Code": str(status), "Message": ""},
        "ResponseMetadata": {
            "HTTPStatusCode": status,
            "HTTPHeaders": {k.lower(): v for k, v in headers.items()},
        },
    }
    return s3.translate(bce.ClientError(response, "GetObject"), KEY, now=NOW)


def message(headers: dict[str, str]) -> Message:
    msg = Message()
    for name, value in headers.items():
        msg[name] = value
    return msg


def via_swift(status: int, headers: dict[str, str]) -> StoreError:
    resp = swift.Response("GET", URL, status, "reason", message(headers), b"")
    return swift.translate(resp, KEY, now=NOW)


def via_agent_http(status: int, headers: dict[str, str]) -> StoreError:
    exc = urllib.error.HTTPError(URL, status, "reason", message(headers), None)
    return agent_http.translate(exc, KEY, now=NOW)


BACKENDS: dict[str, Callable[[int, dict[str, str]], StoreError]] = {
    "s3": via_s3,
    "swift": via_swift,
    "agent-http": via_agent_http,
}

# (status, headers, error type, delay of a TransientError)
RULE: list[tuple[int, dict[str, str], type[StoreError], float | None]] = [
    (404, {}, NotFound, None),
    (401, {}, PermissionDenied, None),
    (403, {}, PermissionDenied, None),
    (400, {}, PermanentError, None),
    (405, {}, PermanentError, None),
    (409, {}, PermanentError, None),
    (422, {}, PermanentError, None),
    (302, {}, PermanentError, None),
    (501, {}, PermanentError, None),
    (501, {"Retry-After": "5"}, PermanentError, None),
    (500, {}, TransientError, 0.0),
    (502, {}, TransientError, 0.0),
    (503, {}, TransientError, 0.0),
    (507, {}, TransientError, 0.0),
    (408, {}, TransientError, 1.0),
    (429, {}, TransientError, 1.0),
    (498, {}, TransientError, 1.0),
    (503, {"Retry-After": "7"}, TransientError, 7.0),
    (429, {"retry-after": "120"}, TransientError, 120.0),
    (503, {"Retry-After": formatdate(NOW + 30, usegmt=True)}, TransientError, 30.0),
    (429, {"Retry-After": formatdate(NOW - 30, usegmt=True)}, TransientError, 0.0),
    (503, {"Retry-After": "soon"}, TransientError, 0.0),
    (429, {"Retry-After": "soon"}, TransientError, 1.0),
]


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize(
    ("status", "headers", "expected", "delay"),
    RULE,
    ids=[f"{s}-{'-'.join(h.values()) or 'plain'}" for s, h, _e, _d in RULE],
)
def test_every_backend_reads_a_status_the_same_way(
    backend: str,
    status: int,
    headers: dict[str, str],
    expected: type[StoreError],
    delay: float | None,
) -> None:
    err = BACKENDS[backend](status, headers)
    assert type(err) is expected
    if isinstance(err, TransientError):
        assert err.delay == pytest.approx(delay)
    if isinstance(err, NotFound | PermissionDenied):
        assert err.key == KEY


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("0", 0.0),
        ("2.5", 2.5),
        ("-3", 0.0),
        (" 12 ", 12.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # long past
        (formatdate(NOW + 90, usegmt=True), 90.0),
        ("next tuesday", None),
        ("", None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(value: str | None, seconds: float | None) -> None:
    assert retry_after(value, now=NOW) == (None if seconds is None else pytest.approx(seconds))


# -- S3 names a few errors more precisely than their status --------------------------------


@pytest.mark.parametrize(
    ("status", "code", "expected", "delay"),
    [
        (503, "SlowDown", TransientError, 1.0),
        (503, "ServiceUnavailable", TransientError, 0.0),
        (400, "RequestTimeout", TransientError, 0.0),
        (409, "ConditionalRequestConflict", TransientError, 0.0),
        (400, "ExpiredToken", PermissionDenied, None),
        (400, "InvalidArgument", PermanentError, None),
        (501, "NotImplemented", PermanentError, None),
    ],
)
def test_s3_error_codes_refine_the_status(
    status: int, code: str, expected: type[StoreError], delay: float | None
) -> None:
    response = {
        "Error": {"Code": code, "Message": ""},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}},
    }
    err = s3.translate(bce.ClientError(response, "GetObject"), KEY)
    assert type(err) is expected
    if isinstance(err, TransientError):
        assert err.delay == delay


# -- the agent's reader retries through Retry, as the backends do ---------------------------


@contextmanager
def answering(*statuses: int) -> Iterator[tuple[str, list[int]]]:
    """A server that answers the given statuses in turn, then 200 with a body."""
    pending = list(statuses)
    served: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = pending.pop(0) if pending else 200
            served.append(status)
            self.send_response(status)
            if status == 503:
                self.send_header("Retry-After", "3")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()


def caps(base: str) -> Capabilities:
    return Capabilities("swift", f"{base}/pointer", f"{base}/report", int(NOW))


def test_the_agent_reader_retries_with_the_shared_retry() -> None:
    sleeps: list[float] = []
    with answering(503, 500) as (base, served):
        store = CapabilityStore(
            "web-1", caps(base), retry=Retry(sleep=sleeps.append, random=lambda: 1.0)
        )
        store._put("agents/web-1/report", b"{}")
    assert served == [503, 500, 200]
    assert sleeps == [3.0, 0.2]  # Retry-After, then the backoff of the second retry
    assert store.stats.requests["retries"] == 2


def test_the_agent_reader_sends_one_request_by_default() -> None:
    with answering(503) as (base, served):
        store = CapabilityStore("web-1", caps(base))
        with pytest.raises(TransientError) as info:
            store._put("agents/web-1/report", b"{}")
    assert served == [503]
    assert info.value.delay == 3.0
    assert isinstance(info.value.__cause__, urllib.error.HTTPError)


def test_the_agent_reader_never_puts_its_capability_url_in_an_error() -> None:
    signed = URL + "?temp_url_sig=secret-signature&temp_url_expires=1"
    for status in (403, 404, 503, 400):
        exc = urllib.error.HTTPError(signed, status, "reason", message({}), None)
        assert "secret-signature" not in str(agent_http.translate(exc, KEY))
