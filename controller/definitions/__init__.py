"""Reading a commit: the repository's tree, YAML with source positions, inventory,
components, stacks, environments, typed values and ordering, checked into a
``Model`` with every problem named by file, line and field.

``heat/`` reads Heat templates and evaluates Heat's intrinsic functions.

May import: ``setpoint.controller.errors`` and ``setpoint.store``; no other room.
"""
