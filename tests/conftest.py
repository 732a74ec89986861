"""Shared test setup, kept minimal.

The repository root goes first on ``sys.path`` so ``store``, ``controller``
and ``agentshim`` import from the checkout as regular packages, whatever the
state of the editable install and even though ``tests/store/`` shares a name
with the ``store`` package.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if sys.path[:1] != [str(ROOT)]:
    sys.path.insert(0, str(ROOT))

# Real Swift servers for the store tests: session fixtures ``swift_server`` and
# ``swift_new_server`` (see tests/swift_fixtures.py for the environment knobs).
pytest_plugins = ["swift_fixtures"]
