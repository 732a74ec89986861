"""``python -m setpoint.agentshim`` is ``setpoint-agent``."""

from setpoint.agentshim.cli import main

raise SystemExit(main())
