"""Heat templates under ``stacks/`` read as they are, and Heat's intrinsic
functions and config bodies computed the way Heat computes them.

May import: the rest of ``definitions``, ``setpoint.controller.errors`` and ``setpoint.store``.
"""
