"""One reading of an HTTP answer as a store error, shared by every backend that
speaks HTTP: S3 (``store.s3``, through botocore), Swift's native API
(``store.swift``) and the agent's plain-HTTP reader (``store.http``).

The rule, for a status the caller did not expect:

- 404: ``NotFound``.
- 401, 403: ``PermissionDenied`` (a wrong key, an expired or revoked URL).
- 408, 429, 498 (Swift's rate limiting): ``TransientError``; the delay is
  ``Retry-After`` when given, else ``SLOW_DOWN_DELAY``: the server asked us to
  come back later, so the next try is not sent at once.
- 5xx except 501: ``TransientError``; the delay is ``Retry-After`` when
  given, else 0 (``Retry``'s own backoff decides the wait).
- 501 Not Implemented: ``PermanentError``. The server does not do what was
  asked (Swift's s3api before 2.36 and conditional PUTs); asking again will
  not change that.
- anything else (another 4xx, an unexpected 3xx): ``PermanentError``.

``Retry-After`` is read in both of its forms (RFC 9110, 10.2.3): a number of
seconds, or an HTTP-date (the delay is the time left until it, 0 if it has
passed). A value that is neither is ignored.

A backend may read more than the status where its protocol says more: S3
names its errors in the body (``SlowDown`` is a 503 that asks for a slower
pace, ``ExpiredToken`` is a 400 that means no rights), see ``store.s3``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from email.utils import parsedate_to_datetime

from setpoint.store.errors import (
    NotFound,
    PermanentError,
    PermissionDenied,
    StoreError,
    TransientError,
)

DENIED = frozenset({401, 403})
SLOW_DOWN = frozenset({408, 429, 498})
"""Request Timeout, Too Many Requests, and Swift's own rate limiting (498)."""
NOT_IMPLEMENTED = 501
SLOW_DOWN_DELAY = 1.0
"""Seconds before the next try when the server asked to slow down without a ``Retry-After``."""


def header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The value of header ``name`` in any capitalisation (botocore lowercases names,
    ``http.client`` keeps the server's)."""
    wanted = name.lower()
    for key, value in headers:
        if key.lower() == wanted:
            return value
    return None


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` value asks to wait (never negative); None when absent
    or unreadable. ``now`` (Unix time, default the system clock) dates an HTTP-date."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": RFC 5322's "UTC, origin unknown"
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def is_transient(status: int) -> bool:
    """Whether the rule above makes ``status`` worth another try."""
    return status in SLOW_DOWN or (status >= 500 and status != NOT_IMPLEMENTED)


def error_for_status(
    status: int,
    key: str,
    detail: str,
    headers: Iterable[tuple[str, str]] = (),
    *,
    transient: bool = False,
    slow_down: bool = False,
    now: float | None = None,
) -> StoreError:
    """The store error for an HTTP ``status`` on ``key``, by the rule above.

    ``detail`` says what failed (method, URL, status, the server's words);
    ``headers`` are the answer's, for ``Retry-After``. A backend whose protocol
    says more than the status sets ``transient`` for a failure worth another
    try whatever its status (S3's 400 ``RequestTimeout``), and ``slow_down``
    for one that asks for a slower pace (S3's 503 ``SlowDown``).
    """
    if status in DENIED:
        return PermissionDenied(key, detail)
    if status == 404:
        return NotFound(key)
    if transient or is_transient(status):
        hint = retry_after(header(headers, "Retry-After"), now)
        if hint is None:
            hint = SLOW_DOWN_DELAY if slow_down or status in SLOW_DOWN else 0.0
        return TransientError(detail, delay=hint)
    if status == NOT_IMPLEMENTED:
        return PermanentError(f"{detail} (not implemented by this server)")
    return PermanentError(detail)


def unreachable(key: str, exc: BaseException) -> TransientError:
    """A request that got no answer (refused, reset, timed out): worth another try,
    after ``Retry``'s own backoff."""
    return TransientError(f"cannot reach the store for {key}: {exc!r}", delay=0.0)
