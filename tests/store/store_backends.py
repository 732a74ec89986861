"""The backends every store contract test runs against (used by ``conftest.py``).

Adding a backend is one entry in ``BACKENDS``: a context manager that, given a
scratch directory, yields a ``Harness`` (the store, plus a way to write raw
bytes behind its back, for corruption and malformed-document tests).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from store.base import Store
from store.local import LocalStore
from store.memory import MemoryStore


@dataclass
class Harness:
    store: Store
    raw_put: Callable[[str, bytes], None]
    """Overwrite the object at a key without going through the store's checks."""


@contextlib.contextmanager
def memory_backend(tmp_path: Path) -> Iterator[Harness]:
    store = MemoryStore(f"contract-{tmp_path.name}")
    yield Harness(store, store.corrupt)


@contextlib.contextmanager
def local_backend(tmp_path: Path) -> Iterator[Harness]:
    root = tmp_path / "store"
    store = LocalStore(root)

    def raw_put(key: str, data: bytes) -> None:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    yield Harness(store, raw_put)


BACKENDS: dict[str, Callable[[Path], contextlib.AbstractContextManager[Harness]]] = {
    "memory": memory_backend,
    "local": local_backend,
}
