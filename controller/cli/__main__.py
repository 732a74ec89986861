"""``python -m setpoint.controller.cli`` is ``setpoint``."""

from setpoint.controller.cli.main import main

raise SystemExit(main())
