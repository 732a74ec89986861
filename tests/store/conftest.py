"""Fixtures for the store tests: ``harness`` and ``store`` run once per backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from store_backends import BACKENDS, Harness

from store.base import Store


@pytest.fixture(params=sorted(BACKENDS))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    with BACKENDS[request.param](tmp_path) as h:
        yield h


@pytest.fixture
def store(harness: Harness) -> Store:
    return harness.store
