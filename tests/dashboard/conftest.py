"""The dashboard's fleet on disk (``dashfleet``), shared by a module's tests;
``serve`` and ``browser`` come from tests/browser_fixtures.py."""

from __future__ import annotations

import pytest

from tests.dashboard.dashfleet import FleetOnDisk, build_fleet


@pytest.fixture(scope="module")
def fleet_on_disk(tmp_path_factory: pytest.TempPathFactory) -> FleetOnDisk:
    """The fleet of ``dashfleet``, shared by a module's tests, which only read it."""
    return build_fleet(tmp_path_factory.mktemp("fleet"))
