"""Open a store from a URL: the scheme picks the backend, and only that one loads.

Backends are imported lazily so the agent, which only ever opens a local or
HTTP store, never imports boto3 or a Swift client.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from store.base import Store
from store.errors import UnknownScheme

SCHEMES = ("file", "memory")

_memory_stores: dict[str, Store] = {}
# "s3:bucket" is a URL with a typo, not a relative path: only something that
# does not start like a scheme is a plain path ("./s3:bucket" still is one).
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def open_store(url: str) -> Store:
    """``file:///path`` or a plain path opens a ``LocalStore``; ``memory://name`` a
    process-wide ``MemoryStore``. Anything else is an error, never a silent
    local fallback."""
    if "://" not in url and not _SCHEME_RE.match(url):
        from store.local import LocalStore

        return LocalStore(Path(url))
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise UnknownScheme(url, f"file://{parts.netloc}", SCHEMES)
        from store.local import LocalStore

        return LocalStore(Path(unquote(parts.path)))
    if scheme == "memory":
        from store.memory import MemoryStore

        name = parts.netloc or "default"
        if name not in _memory_stores:
            _memory_stores[name] = MemoryStore(name)
        return _memory_stores[name]
    raise UnknownScheme(url, scheme, SCHEMES)
