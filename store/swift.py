"""OpenStack Swift through its native API, with the standard library only.

``swift://container/prefix``: objects live in ``container`` under ``prefix``.
Credentials come from the environment (see ``auth_from_env``) or an explicit
``auth``; the token is fetched on first use and fetched again once on a 401.

- Blobs are created with ``PUT`` + ``If-None-Match: *``: 412 means "already
  there", with no race between two writers.
- A pointer poll is ``GET`` + ``If-None-Match: <etag>``; 304 means unchanged.
- Every ``PUT`` carries the body's MD5 as ``ETag``: Swift refuses (422) a body
  damaged on the way.
- The container is created on the first write that finds it missing (a 404 on
  an object PUT), so reads and steady-state writes cost no extra request.
- ``find_missing`` probes with container listings, see ``_exists``.

Requests go through ``http.client`` with keep-alive connections, each with a
connect and a read timeout, and every one is counted in ``stats.requests`` as
``http.<METHOD>`` (listings as ``http.LIST``, authentication as ``http.AUTH``).
The agent side uses ``temp_url``: signed URLs that need no token at all.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Literal, NoReturn
from urllib.parse import quote, urlencode, urlsplit

from setpoint.store.base import Store
from setpoint.store.errors import (
    InvalidArgument,
    PermanentError,
    StoreError,
)
from setpoint.store.http_errors import error_for_status, unreachable
from setpoint.store.listing import norm_prefix, probe, probe_side_by_side
from setpoint.store.retry import Retry, Timeouts

LIST_PAGE = 1000
"""Names per listing page when probing for blobs (``_exists``)."""
LIST_ALL_PAGE = 10000
"""Names per page when listing everything under a prefix (Swift's maximum)."""
TEMPURL_METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE")


# -- authentication -------------------------------------------------------------------


@dataclass(frozen=True)
class TempAuth:
    """Swift's v1 auth (tempauth, swauth): ``ST_AUTH``, ``ST_USER``, ``ST_KEY``."""

    auth_url: str
    user: str
    key: str = ""

    def __repr__(self) -> str:
        return f"TempAuth({self.auth_url!r}, {self.user!r})"


@dataclass(frozen=True)
class KeystoneV3Auth:
    """Keystone v3 password auth scoped to a project; the storage URL is the
    ``object-store`` endpoint of the catalog for ``interface`` (and ``region_name``)."""

    auth_url: str
    username: str
    password: str
    project_name: str
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"
    region_name: str | None = None
    interface: str = "public"

    def __repr__(self) -> str:
        return (
            f"KeystoneV3Auth({self.auth_url!r}, {self.username!r}, project={self.project_name!r})"
        )


@dataclass(frozen=True)
class PreAuth:
    """A storage URL and a token obtained elsewhere; nothing to renew on a 401."""

    storage_url: str
    token: str

    def __repr__(self) -> str:
        return f"PreAuth({self.storage_url!r})"


SwiftAuth = TempAuth | KeystoneV3Auth | PreAuth


def auth_from_env(env: Mapping[str, str] | None = None) -> SwiftAuth:
    """Credentials from the environment, first match wins:

    1. ``OS_STORAGE_URL`` + ``OS_AUTH_TOKEN``: pre-authenticated.
    2. ``ST_AUTH`` + ``ST_USER`` + ``ST_KEY``: v1 auth (tempauth).
    3. ``OS_AUTH_URL`` + ``OS_USERNAME`` + ``OS_PASSWORD`` + ``OS_PROJECT_NAME``
       (+ ``OS_USER_DOMAIN_NAME``, ``OS_PROJECT_DOMAIN_NAME``, both "Default" when
       unset, optional ``OS_REGION_NAME``, ``OS_INTERFACE``): keystone v3.
    """
    env = os.environ if env is None else env

    def get(name: str) -> str:
        return env.get(name, "").strip()

    if get("OS_STORAGE_URL") and get("OS_AUTH_TOKEN"):
        return PreAuth(get("OS_STORAGE_URL").rstrip("/"), get("OS_AUTH_TOKEN"))
    if get("ST_AUTH"):
        if not get("ST_USER"):
            raise InvalidArgument("environment", "ST_AUTH", "ST_AUTH is set but ST_USER is not")
        return TempAuth(get("ST_AUTH"), get("ST_USER"), env.get("ST_KEY", ""))
    if get("OS_AUTH_URL"):
        missing = [
            n for n in ("OS_USERNAME", "OS_PASSWORD", "OS_PROJECT_NAME") if not env.get(n, "")
        ]
        if missing:
            raise InvalidArgument(
                "environment", "OS_AUTH_URL", f"keystone v3 also needs {', '.join(missing)}"
            )
        interface = get("OS_INTERFACE") or "public"
        return KeystoneV3Auth(
            auth_url=get("OS_AUTH_URL"),
            username=get("OS_USERNAME"),
            password=env["OS_PASSWORD"],
            project_name=get("OS_PROJECT_NAME"),
            user_domain_name=get("OS_USER_DOMAIN_NAME") or "Default",
            project_domain_name=get("OS_PROJECT_DOMAIN_NAME") or "Default",
            region_name=get("OS_REGION_NAME") or None,
            interface=interface.removesuffix("URL"),  # "publicURL" (v2 style) -> "public"
        )
    raise InvalidArgument(
        "environment",
        "",
        "no Swift credentials: set OS_STORAGE_URL + OS_AUTH_TOKEN, or ST_AUTH + ST_USER + "
        "ST_KEY, or OS_AUTH_URL + OS_USERNAME + OS_PASSWORD + OS_PROJECT_NAME",
    )


# -- HTTP ------------------------------------------------------------------------------


class SwiftHTTPError(Exception):
    """An HTTP status the store did not expect: the cause chained to the store error."""

    def __init__(self, method: str, url: str, status: int, reason: str, body: bytes) -> None:
        text = body[:200].decode("utf-8", "replace").strip()
        super().__init__(f"{method} {url}: {status} {reason}" + (f": {text}" if text else ""))
        self.method = method
        self.url = url
        self.status = status
        self.reason = reason
        self.body = body


@dataclass
class Response:
    method: str
    url: str
    status: int
    reason: str
    headers: Message
    body: bytes

    def error(self) -> SwiftHTTPError:
        return SwiftHTTPError(self.method, self.url, self.status, self.reason, self.body)


class _Connections:
    """Keep-alive ``http.client`` connections, reused per (scheme, host:port).

    A request on a reused connection that the server has meanwhile closed is
    sent again at once on a fresh connection (what every HTTP client does;
    counted in "retries"); any other connection failure or timeout is a
    ``TransientError``.
    """

    def __init__(self, timeouts: Timeouts, count: Callable[[str], None]) -> None:
        self.timeouts = timeouts
        self._count = count
        self._idle: dict[tuple[str, str], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def _take(self, scheme: str, netloc: str) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            idle = self._idle.get((scheme, netloc))
            if idle:
                return idle.pop(), True
        conn: http.client.HTTPConnection
        if scheme == "https":
            conn = http.client.HTTPSConnection(netloc, timeout=self.timeouts.connect)
        elif scheme == "http":
            conn = http.client.HTTPConnection(netloc, timeout=self.timeouts.connect)
        else:
            raise InvalidArgument("URL", f"{scheme}://{netloc}", "Swift URLs are http or https")
        return conn, False

    def _give_back(self, scheme: str, netloc: str, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.setdefault((scheme, netloc), []).append(conn)

    def close(self) -> None:
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for conn in conns:
            conn.close()

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None = None,
        stat: str | None = None,
    ) -> Response:
        parts = urlsplit(url)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        while True:
            conn, reused = self._take(parts.scheme, parts.netloc)
            self._count(stat or f"http.{method}")
            try:
                if conn.sock is None:
                    conn.connect()
                    assert conn.sock is not None
                    conn.sock.settimeout(self.timeouts.read)
                conn.request(method, target, body=body, headers=dict(headers))
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                conn.close()
                if reused:  # the server closed an idle keep-alive connection
                    self._count("retries")
                    continue
                raise unreachable(f"{method} {url}", exc) from exc
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise unreachable(f"{method} {url}", exc) from exc
            if resp.will_close:
                conn.close()
            else:
                self._give_back(parts.scheme, parts.netloc, conn)
            return Response(method, url, resp.status, resp.reason, resp.headers, data)


def translate(resp: Response, key: str, now: float | None = None) -> StoreError:
    """The store error for an unexpected HTTP status, by the one rule of
    ``store.http_errors`` (Swift says nothing the status does not); its cause is
    a ``SwiftHTTPError``. ``now`` (Unix time) dates an HTTP-date ``Retry-After``."""
    cause = resp.error()
    err = error_for_status(resp.status, key, str(cause), resp.headers.items(), now=now)
    err.__cause__ = cause
    return err


def _fail(resp: Response, key: str) -> NoReturn:
    err = translate(resp, key)
    raise err from err.__cause__


def _authenticate(auth: SwiftAuth, conns: _Connections) -> tuple[str, str]:
    """(storage URL, token)."""
    if isinstance(auth, PreAuth):
        return auth.storage_url, auth.token
    if isinstance(auth, TempAuth):
        resp = conns.request(
            "GET",
            auth.auth_url,
            {"X-Auth-User": auth.user, "X-Auth-Key": auth.key},
            stat="http.AUTH",
        )
        if resp.status // 100 != 2:
            _fail(resp, auth.auth_url)
        url, token = resp.headers.get("X-Storage-Url"), resp.headers.get("X-Auth-Token")
        if not url or not token:
            raise PermanentError(f"v1 auth at {auth.auth_url} gave no storage URL or token")
        return url.rstrip("/"), token
    base = auth.auth_url.rstrip("/")
    if not base.endswith("/v3"):
        base += "/v3"
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": auth.username,
                        "domain": {"name": auth.user_domain_name},
                        "password": auth.password,
                    }
                },
            },
            "scope": {
                "project": {"name": auth.project_name, "domain": {"name": auth.project_domain_name}}
            },
        }
    }
    resp = conns.request(
        "POST",
        base + "/auth/tokens",
        {"Content-Type": "application/json", "Accept": "application/json"},
        json.dumps(body).encode(),
        stat="http.AUTH",
    )
    if resp.status // 100 != 2:
        _fail(resp, base + "/auth/tokens")
    token = resp.headers.get("X-Subject-Token")
    try:
        catalog = json.loads(resp.body)["token"]["catalog"]
        urls = [
            ep["url"]
            for service in catalog
            if service.get("type") == "object-store"
            for ep in service.get("endpoints", [])
            if ep.get("interface") == auth.interface
            and auth.region_name in (None, ep.get("region"), ep.get("region_id"))
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise PermanentError(f"keystone at {base} answered an unreadable token") from exc
    if not token or not urls:
        raise PermanentError(
            f"keystone at {base} gave no token or no object-store endpoint "
            f"(interface {auth.interface!r}, region {auth.region_name!r})"
        )
    return urls[0].rstrip("/"), token


# -- the store --------------------------------------------------------------------------


class SwiftStore(Store):
    """A store in a Swift container, through the native API."""

    capability_kind = "swift"
    # A PUT takes only ``If-None-Match: *``: leases are numbered create-only objects.
    create_only_leases = True

    def __init__(
        self,
        container: str,
        prefix: str = "",
        auth: SwiftAuth | None = None,
        *,
        timeouts: Timeouts | None = None,
        retry: Retry | None = None,
        create_container: bool = True,
        workers: int | None = None,
    ) -> None:
        super().__init__(retry or Retry(), workers)
        if not container or "/" in container:
            raise InvalidArgument("container", container, "must be a non-empty name without '/'")
        self.container = container
        self.prefix = norm_prefix(prefix)
        self.auth = auth_from_env() if auth is None else auth
        self.timeouts = timeouts or Timeouts()
        self.create_container = create_container
        self._conns = _Connections(self.timeouts, self.stats.count)
        # idle keep-alive sockets are closed with the store, or at exit
        self._closer = weakref.finalize(self, self._conns.close)
        self._auth_lock = threading.Lock()
        self._session: tuple[str, str] | None = None
        self._tempurl_keys: tuple[str | None, str | None] | None = None

    @property
    def url(self) -> str:
        return f"swift://{self.container}/{self.prefix}"

    def close(self) -> None:
        """Close the idle keep-alive connections (the store stays usable)."""
        self._conns.close()

    # -- plumbing ---------------------------------------------------------------------

    def _login(self, stale: tuple[str, str] | None = None) -> tuple[str, str]:
        with self._auth_lock:
            if self._session is None or self._session == stale:
                self._session = _authenticate(self.auth, self._conns)
            return self._session

    @property
    def storage_url(self) -> str:
        """The account's URL (``.../v1/AUTH_x``), authenticating if needed."""
        return self._retrying(self._login, "auth")[0]

    def _path(self, key: str | None) -> str:
        """The URL path below the account: the container, or an object in it."""
        path = "/" + quote(self.container, safe="")
        if key is not None:
            path += "/" + quote(self.prefix + key, safe="/")
        return path

    def _send(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        stat: str | None = None,
    ) -> Response:
        """One authenticated request (``path`` below the storage URL), re-authenticating
        once on a 401. The status is the caller's to judge."""

        def send(session: tuple[str, str]) -> Response:
            storage_url, token = session
            url = storage_url + path + ("?" + urlencode(query) if query else "")
            return self._conns.request(
                method, url, {**(headers or {}), "X-Auth-Token": token}, body, stat
            )

        session = self._login()
        resp = send(session)
        if resp.status == 401 and not isinstance(self.auth, PreAuth):
            # the token expired (or memcached restarted): once more with a new one
            resp = send(self._login(stale=session))
        return resp

    def _ensure_container(self) -> None:
        resp = self._send("PUT", self._path(None))
        if resp.status not in (201, 202, 204):
            _fail(resp, self.container)

    def _put_object(self, key: str, data: bytes, extra: Mapping[str, str]) -> Response:
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": hashlib.md5(data, usedforsecurity=False).hexdigest(),
            **extra,
        }
        resp = self._send("PUT", self._path(key), headers=headers, body=data)
        if resp.status == 404 and self.create_container:
            self._ensure_container()
            resp = self._send("PUT", self._path(key), headers=headers, body=data)
        return resp

    def _list_page(self, prefix: str, marker: str, limit: int) -> list[str]:
        """Object names (with the store prefix) after ``marker``; [] if no container."""
        return [name for name, _hash in self._list_items(prefix, marker, limit)]

    def _list_items(self, prefix: str, marker: str, limit: int) -> list[tuple[str, str]]:
        """(name with the store prefix, its ``hash``: the MD5 a GET gives as ETag)."""
        query = {"format": "json", "prefix": prefix, "limit": str(limit)}
        if marker:
            query["marker"] = marker
        resp = self._send("GET", self._path(None), query=query, stat="http.LIST")
        if resp.status == 404:
            return []
        if resp.status == 204:
            return []
        if resp.status != 200:
            _fail(resp, prefix)
        try:
            return [(str(item["name"]), str(item["hash"])) for item in json.loads(resp.body)]
        except (ValueError, KeyError, TypeError) as exc:
            raise PermanentError(f"unreadable listing of {self.url}") from exc

    # -- the backend interface --------------------------------------------------------

    def _get(self, key: str) -> bytes:
        def op() -> bytes:
            resp = self._send("GET", self._path(key))
            if resp.status != 200:
                _fail(resp, key)
            return resp.body

        return self._retrying(op, f"get {key}")

    def _get_if_changed(self, key: str, etag: str | None) -> tuple[bytes, str] | None:
        def op() -> tuple[bytes, str] | None:
            headers = {"If-None-Match": etag} if etag else {}
            resp = self._send("GET", self._path(key), headers=headers)
            if resp.status == 304:
                return None
            if resp.status != 200:
                _fail(resp, key)
            # Unquoted, as the listing's ``hash`` (a proxy with etag_quoter quotes it).
            new = (resp.headers.get("ETag") or "").strip('"')
            return resp.body, new or hashlib.md5(resp.body, usedforsecurity=False).hexdigest()

        return self._retrying(op, f"poll {key}")

    def _put(self, key: str, data: bytes) -> str:
        def op() -> str:
            resp = self._put_object(key, data, {})
            if resp.status != 201:
                _fail(resp, key)
            # Swift checked the body against the MD5 we sent: that is its ETag.
            return hashlib.md5(data, usedforsecurity=False).hexdigest()

        return self._retrying(op, f"put {key}")

    def _put_if_absent(self, key: str, data: bytes) -> bool:
        def op() -> bool:
            resp = self._put_object(key, data, {"If-None-Match": "*"})
            if resp.status == 412:
                return False
            if resp.status != 201:
                _fail(resp, key)
            return True

        return self._retrying(op, f"create {key}")

    def _head(self, key: str) -> bool:
        resp = self._send("HEAD", self._path(key))
        if resp.status == 404:
            return False
        if resp.status // 100 != 2:
            _fail(resp, key)
        return True

    def _exists(self, keys: list[str]) -> set[str]:
        """Which keys exist: listing pages that skip the gaps between them, never
        more requests than a HEAD per key (see ``store.listing.probe``); a long
        list is probed in slices side by side on ``self.pool``."""
        return probe_side_by_side(
            keys, self.pool, lambda part: self._retrying(lambda: self._probe(part), "exists")
        )

    def _probe(self, keys: list[str]) -> set[str]:
        def page(list_prefix: str, marker: str) -> tuple[list[str], bool]:
            names = self._list_page(list_prefix, marker, LIST_PAGE)
            return names, len(names) < LIST_PAGE

        return probe(keys, self.prefix, page, self._head)

    def _list(self, prefix: str) -> list[str]:
        return sorted(self._list_versions(prefix))

    def _list_versions(self, prefix: str) -> dict[str, str]:
        def op() -> dict[str, str]:
            out: dict[str, str] = {}
            marker = ""
            while True:
                items = self._list_items(self.prefix + prefix, marker, LIST_ALL_PAGE)
                for name, etag in items:
                    out[name[len(self.prefix) :]] = etag
                if len(items) < LIST_ALL_PAGE:
                    return dict(sorted(out.items()))
                marker = items[-1][0]

        return self._retrying(op, f"list {prefix}")

    def _delete(self, key: str) -> None:
        def op() -> None:
            resp = self._send("DELETE", self._path(key))
            if resp.status not in (200, 204, 404):
                _fail(resp, key)

        self._retrying(op, f"delete {key}")

    # -- capabilities: signed URLs for agents -----------------------------------------

    def object_url(self, key: str) -> str:
        """The object's plain URL (it needs a token, or a TempURL query, to be used)."""
        return self.storage_url + self._path(key)

    def temp_url_keys(self) -> tuple[str | None, str | None]:
        """The account's TempURL keys (``X-Account-Meta-Temp-URL-Key`` and ``-Key-2``)."""

        def op() -> tuple[str | None, str | None]:
            resp = self._send("HEAD", "")
            if resp.status // 100 != 2:
                _fail(resp, "account")
            return (
                resp.headers.get("X-Account-Meta-Temp-URL-Key"),
                resp.headers.get("X-Account-Meta-Temp-URL-Key-2"),
            )

        keys = self._retrying(op, "temp_url_keys")
        self._tempurl_keys = keys
        return keys

    def set_temp_url_key(self, slot: Literal[1, 2], value: str | None) -> None:
        """Set (or with ``None`` remove) the account's TempURL key ``slot``.

        Rotation: set key 2 to the new secret (new URLs are signed with it, old
        ones still work), renew the URLs, then set key 1 to the new secret and
        remove key 2.
        """
        if slot not in (1, 2):
            raise InvalidArgument("TempURL key slot", slot, "must be 1 or 2")
        if value is not None and not value:
            raise InvalidArgument("TempURL key", value, "must not be empty (None removes it)")
        name = "Temp-URL-Key" if slot == 1 else "Temp-URL-Key-2"
        headers = (
            {f"X-Remove-Account-Meta-{name}": "x"}
            if value is None
            else {f"X-Account-Meta-{name}": value}
        )

        def op() -> None:
            resp = self._send("POST", "", headers=headers)
            if resp.status // 100 != 2:
                _fail(resp, "account")

        self._retrying(op, "set_temp_url_key")
        self._tempurl_keys = None

    def temp_url(self, method: str, key: str, expires_at: int, *, prefix: bool = False) -> str:
        """A TempURL (HMAC-SHA256) for ``method`` on ``key`` until ``expires_at`` (Unix time).

        Signed with the account's current key: key 2 when set (a rotation in
        progress), else key 1; the keys are read once and cached until
        ``set_temp_url_key`` or ``temp_url_keys`` is called on this object.

        With ``prefix=True``, ``key`` is a prefix (e.g. ``"blobs/"``) and the URL
        is a prefix TempURL: its query (``temp_url_sig``, ``temp_url_expires``,
        ``temp_url_prefix``) is valid on the URL of any object whose name starts
        with the store prefix plus ``key``; the URL returned names the prefix
        itself, so a client replaces the path and keeps the query.
        """
        method = method.upper()
        if method not in TEMPURL_METHODS:
            raise InvalidArgument("TempURL method", method, f"one of {', '.join(TEMPURL_METHODS)}")
        if expires_at <= time.time():
            raise InvalidArgument("TempURL expiry", expires_at, "must be in the future")
        keys = self._tempurl_keys or self.temp_url_keys()
        secret = keys[1] or keys[0]
        if not secret:
            raise PermanentError(f"the Swift account of {self.url} has no TempURL key")
        storage_url = self.storage_url
        account_path = urlsplit(storage_url).path
        object_name = self.prefix + key
        path = f"{account_path}/{self.container}/{object_name}"
        signed = f"prefix:{path}" if prefix else path
        body = f"{method}\n{int(expires_at)}\n{signed}"
        sig = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
        query = {"temp_url_sig": sig, "temp_url_expires": str(int(expires_at))}
        if prefix:
            query["temp_url_prefix"] = object_name
        return f"{storage_url}{self._path(key)}?{urlencode(query)}"
