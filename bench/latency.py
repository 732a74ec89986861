"""A store with a round trip per request: any store, slowed down as S3 or Swift are.

``LatencyStore(inner, delay)`` moves the bytes through ``inner`` (a local
directory, memory) and waits ``delay()`` seconds per request first, counting
each as the HTTP request it would be (``http.GET``, ``http.PUT``,
``http.HEAD``, ``http.LIST``, ``http.DELETE``). It has its own ``pool``, so
what a pass does side by side on a remote store it does side by side here.

What a request is, as on the object stores:

- a get, a poll, a put, a create-if-absent, a delete: one request each;
- a listing: one request per ``page`` keys (1,000 on S3; pages follow one
  another, so a listing never runs side by side with itself);
- an existence probe: one HEAD per key, in slices side by side
  (``store.listing.probe_side_by_side``): the worst case of the listing
  probe, and the real cost of a fresh publish into a large store.

``fixed(0.02)`` is the benchmarks' 20 ms; ``jitter(seed, most)`` a seeded
random delay per request, for tests that reorder requests on purpose.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

from setpoint.store.base import Store
from setpoint.store.listing import probe_side_by_side

Delay = Callable[[], float]
"""Seconds the next request waits (called once per request, from any thread)."""

LIST_PAGE = 1000


def fixed(seconds: float) -> Delay:
    return lambda: seconds


def jitter(seed: int, most: float) -> Delay:
    """Uniform delays in [0, most), the same sequence for the same seed."""
    rng = random.Random(seed)
    lock = threading.Lock()

    def delay() -> float:
        with lock:
            return rng.uniform(0.0, most)

    return delay


class LatencyStore(Store):
    """``inner``'s objects, each request ``delay()`` seconds late."""

    def __init__(
        self,
        inner: Store,
        delay: Delay,
        *,
        workers: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        page: int = LIST_PAGE,
    ) -> None:
        super().__init__(workers=workers)
        self.inner = inner
        self.delay = delay
        self.sleep = sleep
        self.page = page

    @property
    def url(self) -> str:
        return self.inner.url

    def _request(self, method: str) -> None:
        self.stats.count(f"http.{method}")
        seconds = self.delay()
        if seconds > 0:  # sleep(0) still gives the interpreter lock away
            self.sleep(seconds)

    def _get(self, key: str) -> bytes:
        self._request("GET")
        return self.inner._get(key)

    def _get_if_changed(self, key: str, etag: str | None) -> tuple[bytes, str] | None:
        self._request("GET")
        return self.inner._get_if_changed(key, etag)

    def _put(self, key: str, data: bytes) -> str | None:
        self._request("PUT")
        return self.inner._put(key, data)

    def _put_if_absent(self, key: str, data: bytes) -> bool:
        self._request("PUT")
        return self.inner._put_if_absent(key, data)

    def _exists(self, keys: list[str]) -> set[str]:
        def head_each(part: list[str]) -> set[str]:
            found = set()
            for key in part:
                self._request("HEAD")
                found |= self.inner._exists([key])
            return found

        return probe_side_by_side(keys, self.pool, head_each)

    def _list(self, prefix: str) -> list[str]:
        return sorted(self._list_versions(prefix))

    def _list_versions(self, prefix: str) -> dict[str, str]:
        listed = self.inner._list_versions(prefix)
        for _ in range(max(1, -(-len(listed) // self.page))):
            self._request("LIST")
        return listed

    def _delete(self, key: str) -> None:
        self._request("DELETE")
        self.inner._delete(key)
