"""S3 (and S3-compatible stores: Swift's s3api, MinIO, Ceph RGW) through boto3.

``s3://bucket/prefix``. Only the controller side opens one; the agent never
imports this module (``store.url`` imports backends lazily).

- Endpoint: the ``endpoint_url`` argument, else ``SETPOINT_S3_ENDPOINT``, else
  ``AWS_ENDPOINT_URL``, else AWS. Credentials and region the usual boto3 way
  (environment, shared config, instance role). Path-style addressing, SigV4.
- Blobs are created with ``PutObject`` + ``If-None-Match: *`` (412 means
  "already there"). A server that answers 501 (Swift's s3api before 2.36) is
  remembered in ``conditional_put`` and then served by HEAD-then-PUT, which is
  safe for content-addressed blobs: two racing writers write the same bytes.
- A pointer poll is ``GetObject`` + ``If-None-Match: <etag>``; 304 means unchanged.
- botocore's own retries are off: ``store.retry.Retry`` retries, so attempts
  are bounded once, and every HTTP request (retries included) is counted in
  ``stats.requests`` as ``http.<METHOD>`` (listings as ``http.LIST``).
- Errors are translated here; nothing above ``store/`` sees a botocore type.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urlencode

import boto3
import botocore.exceptions as bce
from botocore.config import Config

from setpoint.store.base import Store
from setpoint.store.errors import (
    ConditionalWriteUnsupported,
    ConditionFailed,
    InvalidArgument,
    NotFound,
    PermanentError,
    PermissionDenied,
    StoreError,
)
from setpoint.store.http_errors import error_for_status, unreachable
from setpoint.store.listing import norm_prefix, probe, probe_side_by_side
from setpoint.store.pool import default_workers
from setpoint.store.retry import Retry, Timeouts

T = TypeVar("T")

MAX_PRESIGN_SECONDS = 7 * 24 * 3600
"""SigV4 presigned URLs live at most 7 days."""
LIST_PAGE = 1000
"""Keys per listing page (S3's maximum)."""

_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidToken",
        "SignatureDoesNotMatch",
    }
)
_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NotFound"})
_TRANSIENT_CODES = frozenset(
    {
        "ConditionalRequestConflict",  # AWS: a concurrent conditional write; retry
        "InternalError",
        "OperationAborted",
        "RequestLimitExceeded",
        "RequestTimeout",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
    }
)
_THROTTLE_CODES = frozenset(
    {"RequestLimitExceeded", "SlowDown", "Throttling", "ThrottlingException"}
)


def _status_code(exc: bce.ClientError) -> tuple[int, str]:
    meta = exc.response.get("ResponseMetadata", {})
    status = int(meta.get("HTTPStatusCode", 0) or 0)
    code = str(exc.response.get("Error", {}).get("Code", "") or status)
    return status, code


def translate(exc: Exception, key: str, now: float | None = None) -> StoreError:
    """The store error for a botocore exception (the caller chains ``exc``).

    Statuses follow the one rule of ``store.http_errors``. S3 also names its
    error in the body, and that name says more than the status for some:
    ``ExpiredToken`` or ``SignatureDoesNotMatch`` come as 400 and mean no
    rights; ``RequestTimeout`` (400) and ``ConditionalRequestConflict`` (409)
    are worth another try; ``SlowDown`` (503) and the other throttling names
    ask for a slower pace, so the next try waits ``SLOW_DOWN_DELAY`` when no
    ``Retry-After`` says how long. ``now`` (Unix time) dates an HTTP-date
    ``Retry-After``.
    """
    if isinstance(exc, bce.ClientError):
        status, code = _status_code(exc)
        detail = f"{status} {code}: {exc}"
        if code in _DENIED_CODES:
            return PermissionDenied(key, detail)
        if code in _MISSING_CODES:
            return NotFound(key)
        headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return error_for_status(
            status,
            key,
            f"S3 {key}: {detail}",
            headers.items(),
            transient=code in _TRANSIENT_CODES,
            slow_down=code in _THROTTLE_CODES,
            now=now,
        )
    transient = (
        bce.ConnectionError,  # refused, unreachable, connect timeout
        bce.HTTPClientError,  # reset, closed, read timeout
        bce.ResponseStreamingError,
        bce.IncompleteReadError,
    )
    if isinstance(exc, transient):
        return unreachable(key, exc)
    if isinstance(exc, (bce.NoCredentialsError, bce.PartialCredentialsError)):
        return PermissionDenied(key, str(exc))
    return PermanentError(f"S3 {key}: {exc}")


@contextlib.contextmanager
def _translated(key: str) -> Iterator[None]:
    try:
        yield
    except (bce.ClientError, bce.BotoCoreError) as exc:
        raise translate(exc, key) from exc


def default_endpoint() -> str | None:
    """``SETPOINT_S3_ENDPOINT``, else ``AWS_ENDPOINT_URL``, else None (AWS itself)."""
    return os.environ.get("SETPOINT_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL") or None


def _boto_session() -> Any:
    """A new session per client: it resolves the credentials in force now (a cached
    one would keep the first ones it saw for the life of the process)."""
    return boto3.session.Session()


def make_client(
    endpoint_url: str | None = None,
    region_name: str | None = None,
    *,
    timeouts: Timeouts | None = None,
    max_pool_connections: int | None = None,
    **client_kwargs: str,
) -> Any:
    """An S3 client the way the store wants it: path style, SigV4, timeouts, no
    botocore retries (``store.retry`` does them). ``client_kwargs`` go to
    ``Session.client`` (``aws_access_key_id``, ``aws_secret_access_key``...).

    Each client comes from a new boto3 session, so it uses the credentials in
    force when it is made; that costs about a tenth of a second per store
    opened, which a controller does once.

    ``max_pool_connections`` is the store's worker count (default
    ``store.pool.default_workers()``): with fewer connections than requests in
    flight, urllib3 opens extra ones and discards them after each request, so
    every request of a pass would pay a new TCP (and TLS) handshake.
    """
    timeouts = timeouts or Timeouts()
    config = Config(
        max_pool_connections=max_pool_connections or default_workers(),
        s3={"addressing_style": "path"},
        signature_version="s3v4",
        connect_timeout=timeouts.connect,
        read_timeout=timeouts.read,
        retries={"mode": "standard", "total_max_attempts": 1},
    )
    return _boto_session().client(
        "s3", endpoint_url=endpoint_url, region_name=region_name, config=config, **client_kwargs
    )


class S3Store(Store):
    """A store in an S3 bucket under a key prefix.

    ``client``: a ready boto3 S3 client (``make_client`` makes one the way this
    store wants it); without one, one is made from ``endpoint_url`` (else the
    environment, see ``default_endpoint``), ``region_name`` and ``timeouts``,
    with a connection per worker of ``self.pool`` (``workers`` at once).
    The store counts the client's requests into its own ``stats``, so give each
    store its own client. ``retry`` bounds the retries of each operation;
    ``create_bucket`` creates a missing bucket on the first write.
    """

    capability_kind = "s3"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        client: Any = None,
        *,
        region_name: str | None = None,
        timeouts: Timeouts | None = None,
        retry: Retry | None = None,
        create_bucket: bool = True,
        workers: int | None = None,
    ) -> None:
        super().__init__(retry or Retry(), workers)
        if not bucket or "/" in bucket:
            raise InvalidArgument("bucket", bucket, "must be a non-empty name without '/'")
        self.bucket = bucket
        self.prefix = norm_prefix(prefix)
        self._explicit = {
            k: v for k, v in (("endpoint", endpoint_url), ("region", region_name)) if v
        }
        self.create_bucket = create_bucket
        if client is None:
            client = make_client(
                endpoint_url or default_endpoint(),
                region_name,
                timeouts=timeouts,
                max_pool_connections=self.pool.size,
            )
        self.client = client
        self.conditional_put: bool | None = None
        """Whether the server honours ``PutObject`` + ``If-None-Match: *``: None until
        the first blob write tells, False after a 501 (then HEAD-then-PUT)."""
        # More specific than moto's catch-all "before-send" handler, so this one
        # still sees every request under mock_aws.
        client.meta.events.register_first("before-send.s3", self._count)

    @property
    def url(self) -> str:
        query = f"?{urlencode(self._explicit)}" if self._explicit else ""
        return f"s3://{self.bucket}/{self.prefix}{query}"

    def _count(self, request: Any = None, event_name: str = "", **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        method = "LIST" if operation.startswith("List") else str(request.method).upper()
        self.stats.count(f"http.{method}")

    def _api(self, operation: str, **params: Any) -> Any:
        """One client call. A request that meets a keep-alive connection the server
        has closed without saying so (Swift 2.30 does, after refusing a request
        whose body it did not read) is sent once more at once, as HTTP clients do
        (botocore's own retries, which would, are off); counted in "retries"."""
        call = getattr(self.client, operation)
        try:
            return call(**params)
        except bce.ConnectionClosedError:
            self.stats.count("retries")
            return call(**params)

    def _call(self, key: str, fn: Callable[[], T]) -> T:
        with _translated(key):
            return fn()

    # -- plumbing -----------------------------------------------------------------------

    def _ensure_bucket(self) -> None:
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        region = self.client.meta.region_name
        if region and region not in ("us-east-1", "aws-global"):
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self._api("create_bucket", **kwargs)
        except bce.ClientError as exc:
            if _status_code(exc)[1] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise translate(exc, self.bucket) from exc
        except bce.BotoCoreError as exc:
            raise translate(exc, self.bucket) from exc

    def _put_object(self, key: str, data: bytes, **extra: str) -> str | None:
        """PutObject, creating the bucket on NoSuchBucket; the new ETag. Raises
        botocore errors."""
        kwargs = {
            "Bucket": self.bucket,
            "Key": self.prefix + key,
            "Body": data,
            "ContentType": "application/octet-stream",
            **extra,
        }
        try:
            resp = self._api("put_object", **kwargs)
        except bce.ClientError as exc:
            if not (self.create_bucket and _status_code(exc)[1] == "NoSuchBucket"):
                raise
            self._ensure_bucket()
            resp = self._api("put_object", **kwargs)
        etag = resp.get("ETag") if isinstance(resp, dict) else None
        return str(etag) if etag else None

    def _head(self, key: str) -> bool:
        try:
            self._api("head_object", Bucket=self.bucket, Key=self.prefix + key)
        except bce.ClientError as exc:
            if _status_code(exc)[0] == 404:
                return False
            raise translate(exc, key) from exc
        except bce.BotoCoreError as exc:
            raise translate(exc, key) from exc
        return True

    def _list_page(self, prefix: str, start_after: str = "", token: str = "") -> dict[str, Any]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": LIST_PAGE}
        if token:
            kwargs["ContinuationToken"] = token
        elif start_after:
            kwargs["StartAfter"] = start_after
        try:
            page: dict[str, Any] = self._api("list_objects_v2", **kwargs)
        except bce.ClientError as exc:
            if _status_code(exc)[1] == "NoSuchBucket":
                return {"Contents": [], "IsTruncated": False}
            raise translate(exc, prefix) from exc
        except bce.BotoCoreError as exc:
            raise translate(exc, prefix) from exc
        return page

    # -- the backend interface ----------------------------------------------------------

    def _get(self, key: str) -> bytes:
        def op() -> bytes:
            resp = self._api("get_object", Bucket=self.bucket, Key=self.prefix + key)
            return bytes(resp["Body"].read())

        return self._retrying(lambda: self._call(key, op), f"get {key}")

    def _get_if_changed(self, key: str, etag: str | None) -> tuple[bytes, str] | None:
        def op() -> tuple[bytes, str] | None:
            kwargs = {"Bucket": self.bucket, "Key": self.prefix + key}
            if etag:
                kwargs["IfNoneMatch"] = etag
            try:
                resp = self._api("get_object", **kwargs)
                return bytes(resp["Body"].read()), str(resp["ETag"])
            except bce.ClientError as exc:
                if _status_code(exc)[0] == 304:
                    return None
                raise

        return self._retrying(lambda: self._call(key, op), f"poll {key}")

    def _put(self, key: str, data: bytes) -> str | None:
        return self._retrying(
            lambda: self._call(key, lambda: self._put_object(key, data)), f"put {key}"
        )

    def _put_if_absent(self, key: str, data: bytes) -> bool:
        return self._retrying(lambda: self._call(key, lambda: self._create(key, data)), key)

    def _create(self, key: str, data: bytes) -> bool:
        if self.conditional_put is not False:
            try:
                self._put_object(key, data, IfNoneMatch="*")
            except bce.ClientError as exc:
                status, code = _status_code(exc)
                if status == 412 or code == "PreconditionFailed":
                    self.conditional_put = True
                    return False
                if status != 501 and code != "NotImplemented":
                    raise
                # Swift s3api < 2.36 refuses any conditional PUT before doing
                # anything: remember it, and create by HEAD-then-PUT from now on.
                self.conditional_put = False
            else:
                self.conditional_put = True
                return True
        if self._head(key):
            return False
        self._put_object(key, data)
        return True

    def _put_if_match(self, key: str, data: bytes, version: str | None) -> str:
        """``PutObject`` with ``If-Match: <etag>`` (``If-None-Match: *`` to create):
        412, or 404 for an object deleted since, is a lost race."""

        def op() -> str:
            condition = {"IfNoneMatch": "*"} if version is None else {"IfMatch": version}
            try:
                etag = self._put_object(key, data, **condition)
            except bce.ClientError as exc:
                status, code = _status_code(exc)
                if status == 412 or code == "PreconditionFailed":
                    raise ConditionFailed(key, version) from exc
                if version is not None and (status == 404 or code == "NoSuchKey"):
                    raise ConditionFailed(key, version) from exc
                if status == 501 or code == "NotImplemented":
                    # Swift's s3api before 2.36 refuses every conditional PUT.
                    raise ConditionalWriteUnsupported(
                        self.url, f"the server answered {status} {code} to a conditional PUT"
                    ) from exc
                raise
            if etag is None:
                raise ConditionalWriteUnsupported(self.url, "PutObject returned no ETag")
            return etag

        return self._retrying(lambda: self._call(key, op), f"put-if-match {key}")

    def _exists(self, keys: list[str]) -> set[str]:
        """Which keys exist: listing pages that skip the gaps between them, never
        more requests than a HEAD per key (see ``store.listing.probe``); a long
        list is probed in slices side by side on ``self.pool``."""
        return probe_side_by_side(
            keys, self.pool, lambda part: self._retrying(lambda: self._probe(part), "exists")
        )

    def _probe(self, keys: list[str]) -> set[str]:
        def page(list_prefix: str, start_after: str) -> tuple[list[str], bool]:
            listing = self._list_page(list_prefix, start_after)
            names = [str(item["Key"]) for item in listing.get("Contents", [])]
            return names, not listing.get("IsTruncated")

        return probe(keys, self.prefix, page, self._head)

    def _list(self, prefix: str) -> list[str]:
        return sorted(self._list_versions(prefix))

    def _list_versions(self, prefix: str) -> dict[str, str]:
        # The listing's ETag is the one GetObject returns (quoted, as S3 sends it).
        def op() -> dict[str, str]:
            out: dict[str, str] = {}
            token = ""
            while True:
                page = self._list_page(self.prefix + prefix, token=token)
                for item in page.get("Contents", []):
                    out[str(item["Key"])[len(self.prefix) :]] = str(item.get("ETag", ""))
                token = str(page.get("NextContinuationToken") or "")
                if not page.get("IsTruncated") or not token:
                    return dict(sorted(out.items()))

        return self._retrying(op, f"list {prefix}")

    def _delete(self, key: str) -> None:
        def op() -> None:
            try:
                self._api("delete_object", Bucket=self.bucket, Key=self.prefix + key)
            except bce.ClientError as exc:
                if _status_code(exc)[0] != 404:
                    raise

        self._retrying(lambda: self._call(key, op), f"delete {key}")

    # -- capabilities: signed URLs for agents -------------------------------------------

    def object_url(self, key: str) -> str:
        """The object's plain path-style URL (unsigned)."""
        endpoint = str(self.client.meta.endpoint_url).rstrip("/")
        return f"{endpoint}/{quote(self.bucket, safe='')}/{quote(self.prefix + key, safe='/')}"

    def presign(self, method: Literal["GET", "PUT"], key: str, expires_in: int) -> str:
        """A SigV4 presigned URL for GET or PUT on ``key``, valid ``expires_in``
        seconds, clamped to 7 days (SigV4's limit); 0 or less is refused."""
        if method not in ("GET", "PUT"):
            raise InvalidArgument("presign method", method, "must be GET or PUT")
        if expires_in <= 0:
            raise InvalidArgument("presign expiry", expires_in, "must be a positive number")
        operation = "get_object" if method == "GET" else "put_object"
        return self._call(
            key,
            lambda: str(
                self.client.generate_presigned_url(
                    operation,
                    Params={"Bucket": self.bucket, "Key": self.prefix + key},
                    ExpiresIn=min(int(expires_in), MAX_PRESIGN_SECONDS),
                    HttpMethod=method,
                )
            ),
        )
