"""A working in-memory store: the fake for fast tests, with real semantics."""

from __future__ import annotations

import threading

from setpoint.store.base import Store
from setpoint.store.digest import digest_bytes
from setpoint.store.errors import ConditionFailed, NotFound


class MemoryStore(Store):
    def __init__(self, name: str = "default", workers: int | None = None) -> None:
        super().__init__(workers=workers)
        self._name = name
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"memory://{self._name}"

    def _get(self, key: str) -> bytes:
        with self._lock:
            try:
                return self._objects[key]
            except KeyError:
                raise NotFound(key) from None

    def _get_if_changed(self, key: str, etag: str | None) -> tuple[bytes, str] | None:
        data = self._get(key)
        current = digest_bytes(data)
        if etag == current:
            return None
        return data, current

    def _put(self, key: str, data: bytes) -> str:
        with self._lock:
            self._objects[key] = bytes(data)
        return digest_bytes(data)

    def _put_if_absent(self, key: str, data: bytes) -> bool:
        with self._lock:
            if key in self._objects:
                return False
            self._objects[key] = bytes(data)
            return True

    def _put_if_match(self, key: str, data: bytes, version: str | None) -> str:
        with self._lock:
            held = self._objects.get(key)
            current = None if held is None else digest_bytes(held)
            if current != version:
                raise ConditionFailed(key, version)
            self._objects[key] = bytes(data)
        return digest_bytes(data)

    def _exists(self, keys: list[str]) -> set[str]:
        with self._lock:
            return {k for k in keys if k in self._objects}

    def _list(self, prefix: str) -> list[str]:
        with self._lock:
            return sorted(k for k in self._objects if k.startswith(prefix))

    def _list_versions(self, prefix: str) -> dict[str, str]:
        with self._lock:
            found = {k: v for k, v in self._objects.items() if k.startswith(prefix)}
        return {k: digest_bytes(v) for k, v in sorted(found.items())}

    def _delete(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)

    def corrupt(self, key: str, data: bytes) -> None:
        """Overwrite an object behind the store's back (tests of verification)."""
        with self._lock:
            self._objects[key] = data
