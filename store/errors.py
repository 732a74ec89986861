"""The store's errors: one root, data in fields, foreign exceptions chained.

Every backend translates its own failures (OSError, HTTP statuses, botocore
errors) into these at the boundary, so nothing above ``store/`` needs to know
which backend it talks to.
"""

from __future__ import annotations


class StoreError(Exception):
    """Root of every error raised by the store package."""


class NotFound(StoreError):
    """The object at ``key`` does not exist."""

    def __init__(self, key: str) -> None:
        super().__init__(f"not found in the store: {key}")
        self.key = key


class DigestMismatch(StoreError):
    """What was read does not hash to the digest it was asked for."""

    def __init__(self, expected: str, got: str) -> None:
        super().__init__(f"digest mismatch: expected {expected}, got {got}")
        self.expected = expected
        self.got = got


class InvalidDigest(StoreError):
    """A string that should be a ``blake3:<64 hex>`` digest is not one."""

    def __init__(self, value: str) -> None:
        super().__init__(f"not a blake3 digest: {value!r}")
        self.value = value


class InvalidDocument(StoreError):
    """A pointer, manifest or report that does not have the expected shape."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"invalid {what}: {reason}")
        self.what = what
        self.reason = reason


class GenerationRegression(StoreError):
    """A pointer write that would not raise the server's generation."""

    def __init__(self, server: str, current: int, proposed: int) -> None:
        super().__init__(
            f"pointer generation for {server} must grow: current {current}, proposed {proposed}"
        )
        self.server = server
        self.current = current
        self.proposed = proposed


class UnknownScheme(StoreError):
    """A store URL whose scheme no backend handles."""

    def __init__(self, url: str, scheme: str, known: tuple[str, ...]) -> None:
        super().__init__(
            f"unknown store URL scheme {scheme!r} in {url!r} (known: {', '.join(known)})"
        )
        self.url = url
        self.scheme = scheme


class PermissionDenied(StoreError):
    """The store refused the request for lack of rights."""

    def __init__(self, key: str, detail: str = "") -> None:
        super().__init__(f"permission denied for {key}" + (f": {detail}" if detail else ""))
        self.key = key


class TransientError(StoreError):
    """A failure worth retrying after ``delay`` seconds (throttling, 5xx, a timeout)."""

    def __init__(self, message: str, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(StoreError):
    """A failure that retrying will not fix."""


class BundleError(StoreError):
    """A directory bundle that cannot be built or extracted safely."""

    def __init__(self, reason: str, path: str | None = None) -> None:
        super().__init__(f"bad bundle: {reason}" + (f" ({path!r})" if path is not None else ""))
        self.reason = reason
        self.path = path


class InvalidArgument(StoreError, ValueError):
    """A caller asked for something the store cannot do as asked: a malformed store
    URL, an expiry out of range, an unknown HTTP method for a signed URL..."""

    def __init__(self, name: str, value: object, reason: str) -> None:
        super().__init__(f"invalid {name} {value!r}: {reason}")
        self.name = name
        self.value = value
        self.reason = reason


class ConditionFailed(StoreError):
    """A conditional write lost: the object at ``key`` is no longer the version the
    writer read (``expected``; None: the writer expected it absent)."""

    def __init__(self, key: str, expected: str | None) -> None:
        want = "absent" if expected is None else f"at version {expected}"
        super().__init__(f"conditional write lost: {key} is no longer {want}")
        self.key = key
        self.expected = expected


class ConditionalWriteUnsupported(StoreError):
    """The backend cannot replace an object only if it is still the version read
    (``reason`` says why), so it cannot hold a lease for several controllers."""

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(f"{store} cannot do conditional writes: {reason}")
        self.store = store
        self.reason = reason
