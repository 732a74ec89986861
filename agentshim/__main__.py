"""``python -m agentshim`` is ``setpoint-agent``."""

from agentshim.cli import main

raise SystemExit(main())
