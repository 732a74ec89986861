"""Open a store from a URL: the scheme picks the backend, and only that one loads.

Backends are imported lazily so the agent, which only ever opens a local or
HTTP store, never imports boto3 or a Swift client.

URL forms:

- a plain path, or ``file:///path``: ``LocalStore``.
- ``memory://name``: a process-wide ``MemoryStore``.
- ``s3://bucket/prefix``: ``S3Store``. Query options: ``endpoint`` (e.g.
  ``?endpoint=http://127.0.0.1:8080``; default ``SETPOINT_S3_ENDPOINT``, then
  ``AWS_ENDPOINT_URL``, then AWS), ``region``, ``connect_timeout``,
  ``read_timeout`` (seconds). Credentials the usual boto3 way, never in the URL.
- ``swift://container/prefix``: ``SwiftStore`` (native Swift API). Query
  options: ``connect_timeout``, ``read_timeout``. Credentials from the
  environment (``store.swift.auth_from_env``), never in the URL.

An unknown scheme or query option is an error.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from setpoint.store.base import Store
from setpoint.store.errors import InvalidArgument, UnknownScheme
from setpoint.store.pool import WorkerPool
from setpoint.store.retry import Timeouts

SCHEMES = ("file", "memory", "s3", "swift")

_memory_stores: dict[str, Store] = {}
# "s3:bucket" is a URL with a typo, not a relative path: only something that
# does not start like a scheme is a plain path ("./s3:bucket" still is one).
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def open_store(url: str, workers: int | None = None) -> Store:
    """``file:///path`` or a plain path opens a ``LocalStore``; ``memory://name`` a
    process-wide ``MemoryStore``. Anything else is an error, never a silent
    local fallback.

    ``workers``: how many requests of a pass run at once on ``Store.pool``
    (default ``$SETPOINT_STORE_WORKERS``, else 32).
    """
    if "://" not in url and not _SCHEME_RE.match(url):
        from setpoint.store.local import LocalStore

        return LocalStore(Path(url), workers)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise UnknownScheme(url, f"file://{parts.netloc}", SCHEMES)
        from setpoint.store.local import LocalStore

        return LocalStore(Path(unquote(parts.path)), workers)
    if scheme == "memory":
        from setpoint.store.memory import MemoryStore

        name = parts.netloc or "default"
        if name not in _memory_stores:
            _memory_stores[name] = MemoryStore(name, workers)
        elif workers is not None and _memory_stores[name].pool.size != workers:
            _memory_stores[name].pool.close()
            _memory_stores[name].pool = WorkerPool(workers)
        return _memory_stores[name]
    if scheme in ("s3", "swift"):
        return _open_object_store(url, scheme, workers)
    raise UnknownScheme(url, scheme, SCHEMES)


def _open_object_store(url: str, scheme: str, workers: int | None) -> Store:
    parts = urlsplit(url)
    if not url.lower().startswith(f"{scheme}://") or not parts.netloc:
        what = "bucket" if scheme == "s3" else "container"
        raise InvalidArgument("store URL", url, f"expected {scheme}://{what}/prefix")
    name = unquote(parts.netloc)
    prefix = unquote(parts.path).strip("/")
    allowed = {"connect_timeout", "read_timeout"} | (
        {"endpoint", "region"} if scheme == "s3" else set()
    )
    options: dict[str, str] = {}
    for option, values in parse_qs(parts.query, keep_blank_values=True).items():
        if option not in allowed:
            raise InvalidArgument(
                "store URL option", option, f"{scheme} URLs take {', '.join(sorted(allowed))}"
            )
        options[option] = values[-1]
    timeouts = Timeouts()
    try:
        timeouts = Timeouts(
            connect=float(options.get("connect_timeout", timeouts.connect)),
            read=float(options.get("read_timeout", timeouts.read)),
        )
    except ValueError as exc:  # InvalidArgument (<= 0) is a ValueError too
        raise InvalidArgument("store URL timeout", parts.query, "must be seconds > 0") from exc
    if scheme == "s3":
        from setpoint.store.s3 import S3Store

        return S3Store(
            name,
            prefix,
            endpoint_url=options.get("endpoint") or None,
            region_name=options.get("region") or None,
            timeouts=timeouts,
            workers=workers,
        )
    from setpoint.store.swift import SwiftStore

    return SwiftStore(name, prefix, timeouts=timeouts, workers=workers)
