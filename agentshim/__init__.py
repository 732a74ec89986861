"""setpoint's agent: poll the server's pointer, run each derived config through its
hook, report back.

It runs on every server, so it stays light: it uses ``store`` (blobs, pointer,
report) and the standard library, never the controller, git or cloud SDKs.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
