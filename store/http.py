"""The agent's view of a remote store: plain HTTP(S) to the URLs it was given.

``CapabilityStore`` moves bytes with the standard library only (no boto3, no
Swift client on servers). It can read its own pointer (conditionally: a 304
costs one small request), read the blobs its capabilities cover, and write
its own report; anything else is ``PermissionDenied``. The ``Store`` base
class still re-hashes every blob it reads.

Statuses become store errors by the rule every HTTP backend shares
(``store.http_errors``). Retries go through ``store.retry.Retry`` like every
backend's; by default there are none (``NO_RETRY``): the agent's poll cycle
is its retry loop, and a poll stays one request.
"""

from __future__ import annotations

import http.client
import threading
import urllib.error
import urllib.request

from setpoint.store.base import BLOBS, Store, digest_of_blob_key, pointer_key, report_key
from setpoint.store.capabilities import Capabilities
from setpoint.store.errors import PermissionDenied, StoreError
from setpoint.store.http_errors import error_for_status, unreachable
from setpoint.store.retry import NO_RETRY, Retry
from setpoint.store.sigv4 import sign_s3

DEFAULT_TIMEOUT = 30.0


def translate(exc: urllib.error.HTTPError, key: str, now: float | None = None) -> StoreError:
    """The store error for an HTTP error answer (the caller chains ``exc``), by the
    rule of ``store.http_errors``. ``now`` (Unix time) dates an HTTP-date
    ``Retry-After``."""
    status = exc.code
    # Not the URL: a capability URL's query is the credential.
    detail = f"HTTP {status} on {key}"
    if status in (401, 403):
        detail += " (expired or revoked URL?)"
    return error_for_status(status, key, detail, (exc.headers or {}).items(), now=now)


class CapabilityStore(Store):
    def __init__(
        self,
        server: str,
        capabilities: Capabilities,
        timeout: float = DEFAULT_TIMEOUT,
        retry: Retry = NO_RETRY,
    ) -> None:
        super().__init__(retry)
        self.server = server
        self.timeout = timeout
        self._lock = threading.Lock()
        self._caps = capabilities
        self._pointer_key = pointer_key(server)
        self._report_key = report_key(server)

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    def renew(self, capabilities: Capabilities) -> None:
        """Use the URLs a verified pointer carries from now on.

        An agent holding its own keys (``s3-keys``) keeps signing with them:
        URLs in a pointer would only expire.
        """
        with self._lock:
            if self._caps.credentials is None:
                self._caps = capabilities

    @property
    def url(self) -> str:
        return self._caps.pointer.split("?", 1)[0]

    # -- mapping keys to URLs ---------------------------------------------------

    def _read_url(self, key: str) -> str:
        caps = self._caps
        if key == self._pointer_key:
            return caps.pointer
        digest = digest_of_blob_key(key) if key.startswith(BLOBS) else None
        if digest is not None:
            url = caps.blob_url(key, digest)
            if url is not None:
                return url
        raise PermissionDenied(key, "this agent holds no URL that reads it")

    def _request(
        self, method: str, url: str, key: str, data: bytes | None = None, etag: str | None = None
    ) -> tuple[int, bytes, str]:
        return self._retrying(
            lambda: self._send(method, url, key, data, etag), f"{method.lower()} {key}"
        )

    def _send(
        self, method: str, url: str, key: str, data: bytes | None, etag: str | None
    ) -> tuple[int, bytes, str]:
        headers = {"User-Agent": "setpoint-agent"}
        creds = self._caps.credentials
        if creds is not None:
            headers.update(
                sign_s3(
                    method,
                    url,
                    data or b"",
                    creds["access_key_id"],
                    creds["secret_access_key"],
                    creds["region"],
                )
            )
        if etag:
            headers["If-None-Match"] = etag
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        self.stats.count(f"http.{method}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.read(), response.headers.get("ETag", "")
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 304:
                return 304, b"", etag or ""
            raise translate(exc, key) from exc
        except (http.client.HTTPException, OSError) as exc:  # URLError, timeouts included
            raise unreachable(key, exc) from exc

    # -- byte movers ------------------------------------------------------------

    def _get(self, key: str) -> bytes:
        return self._request("GET", self._read_url(key), key)[1]

    def _get_if_changed(self, key: str, etag: str | None) -> tuple[bytes, str] | None:
        status, body, new_etag = self._request("GET", self._read_url(key), key, etag=etag)
        if status == 304:
            return None
        return body, new_etag

    def _put(self, key: str, data: bytes) -> None:
        if key != self._report_key:
            raise PermissionDenied(key, "an agent writes its own report only")
        self._request("PUT", self._caps.report, key, data=data)

    def _put_if_absent(self, key: str, data: bytes) -> bool:
        raise PermissionDenied(key, "an agent does not write blobs")

    def _exists(self, keys: list[str]) -> set[str]:
        raise PermissionDenied(keys[0] if keys else BLOBS, "an agent cannot list the store")

    def _list(self, prefix: str) -> list[str]:
        raise PermissionDenied(prefix, "an agent cannot list the store")

    def _delete(self, key: str) -> None:
        raise PermissionDenied(key, "an agent deletes nothing")
