"""Content digests and canonical JSON: the naming scheme of everything published.

A digest is ``blake3:<64 lowercase hex>``. Canonical JSON is sorted keys, no
insignificant whitespace, UTF-8, so the same value gives the same bytes (and so
the same digest) in any process on any machine.
"""

from __future__ import annotations

import json
import re
from typing import Any

import blake3

from setpoint.store.errors import InvalidDigest

PREFIX = "blake3:"
_DIGEST_RE = re.compile(r"^blake3:[0-9a-f]{64}$")


def digest_bytes(data: bytes) -> str:
    """The digest of ``data``."""
    return PREFIX + blake3.blake3(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    """The one byte form of a JSON value that is hashed and stored."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def digest_json(value: Any) -> str:
    """The digest of the canonical JSON of ``value``."""
    return digest_bytes(canonical_json(value))


def is_digest(value: object) -> bool:
    return isinstance(value, str) and _DIGEST_RE.match(value) is not None


def check_digest(value: str) -> str:
    """Return ``value`` if it is a well-formed digest, else raise ``InvalidDigest``."""
    if not is_digest(value):
        raise InvalidDigest(value)
    return value


def hex_of(digest: str) -> str:
    """The 64 hex characters of a digest."""
    return check_digest(digest)[len(PREFIX) :]


def short(digest: str | None, length: int = 12) -> str:
    """A digest shortened for tables: ``blake3:`` dropped, first ``length`` hex."""
    if not digest:
        return "-"
    return digest.removeprefix(PREFIX)[:length]
