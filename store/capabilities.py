"""What an agent may do in the store, as URLs: its capability set.

An agent holds no store credentials. Its bootstrap (from ``setpoint enroll``)
and then every pointer carry the URLs it needs, each signed by the store and
valid until ``expires_at``:

- ``pointer``: GET of its own ``agents/<server>/pointer``;
- ``report``: PUT of its own ``agents/<server>/report``, nothing else;
- blobs: on Swift one prefix TempURL for ``blobs/`` (``blob_prefix`` +
  key + ``?`` + ``blob_query``); on S3, which has no prefix signatures, one
  presigned GET per blob the server's manifest needs (``blobs``).

The controller renews them through the pointer well before they expire, so an
agent that keeps polling never needs new credentials.

Where an operator prefers keys to URLs, kind ``s3-keys`` carries plain object
URLs and ``credentials`` (an access key limited by an IAM policy to the
server's own pointer and report and to ``blobs/``); the agent signs each
request itself (``store.sigv4``), and pointers need not renew anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from setpoint.store.digest import is_digest
from setpoint.store.errors import InvalidDocument

KINDS = ("swift", "s3", "s3-keys")
_CREDENTIAL_FIELDS = ("access_key_id", "secret_access_key", "region")


def _url(value: Any, field_name: str) -> str:
    if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
        raise InvalidDocument("capabilities", f"{field_name} must be an http(s) URL")
    return value


@dataclass(frozen=True)
class Capabilities:
    kind: str
    pointer: str
    report: str
    expires_at: int
    blob_prefix: str | None = None
    blob_query: str | None = None
    blobs: dict[str, str] = field(default_factory=dict)
    credentials: dict[str, str] | None = None

    def blob_url(self, key: str, digest: str) -> str | None:
        """The URL that reads blob ``key`` (``blobs/ab/...``) of ``digest``, if any."""
        if self.blob_prefix is not None and self.blob_query is not None:
            return (
                f"{self.blob_prefix}{key}?{self.blob_query}"
                if self.blob_query
                else (f"{self.blob_prefix}{key}")
            )
        return self.blobs.get(digest)

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "kind": self.kind,
            "pointer": self.pointer,
            "report": self.report,
            "expires_at": self.expires_at,
        }
        if self.blob_prefix is not None:
            doc["blob_prefix"] = self.blob_prefix
            doc["blob_query"] = self.blob_query
        if self.blobs:
            doc["blobs"] = dict(sorted(self.blobs.items()))
        if self.credentials is not None:
            doc["credentials"] = dict(self.credentials)
        return doc

    @classmethod
    def from_dict(cls, doc: Any) -> Capabilities:
        if not isinstance(doc, dict):
            raise InvalidDocument("capabilities", "not a JSON object")
        kind = doc.get("kind")
        if kind not in KINDS:
            raise InvalidDocument("capabilities", f"kind must be one of {', '.join(KINDS)}")
        expires = doc.get("expires_at")
        if not isinstance(expires, int) or isinstance(expires, bool):
            raise InvalidDocument("capabilities", "expires_at must be a unix time")
        blobs = doc.get("blobs", {})
        if not isinstance(blobs, dict) or not all(is_digest(k) for k in blobs):
            raise InvalidDocument("capabilities", "blobs must map digests to URLs")
        prefix = doc.get("blob_prefix")
        query = doc.get("blob_query")
        if (prefix is None) != (query is None):
            raise InvalidDocument("capabilities", "blob_prefix and blob_query go together")
        if query is not None and not isinstance(query, str):
            raise InvalidDocument("capabilities", "blob_query must be a string")
        credentials = doc.get("credentials")
        if (kind == "s3-keys") != (credentials is not None):
            raise InvalidDocument("capabilities", "credentials go with kind s3-keys, and only")
        if credentials is not None and (
            not isinstance(credentials, dict)
            or sorted(credentials) != sorted(_CREDENTIAL_FIELDS)
            or not all(isinstance(v, str) and v for v in credentials.values())
        ):
            raise InvalidDocument(
                "capabilities", f"credentials need {', '.join(_CREDENTIAL_FIELDS)}"
            )
        return cls(
            kind=kind,
            pointer=_url(doc.get("pointer"), "pointer"),
            report=_url(doc.get("report"), "report"),
            expires_at=expires,
            blob_prefix=None if prefix is None else _url(prefix, "blob_prefix"),
            blob_query=query,
            blobs={k: _url(v, f"blobs[{k}]") for k, v in blobs.items()},
            credentials=dict(credentials) if credentials is not None else None,
        )
