"""Shared test setup, kept minimal.

``tests`` is a package, so pytest puts the repository root on ``sys.path``:
``tests.…`` modules and ``bench`` import from the checkout; ``setpoint.…``
comes from the (editable) install.
"""

from __future__ import annotations

# Real Swift servers for the store tests: session fixtures ``swift_server`` and
# ``swift_new_server`` (see tests/swift_fixtures.py for the environment knobs);
# ``setpoint serve`` and chromium for the dashboard's (tests/browser_fixtures.py).
pytest_plugins = ["tests.swift_fixtures", "tests.browser_fixtures"]
