"""Reading a commit: the repository's tree, YAML with source positions, inventory,
components, stacks, environments, typed values and ordering, checked into a
``Model`` with every problem named by file, line and field.

``loader.load_model`` reads a commit with the readers named for what they
read (``inventory``, ``components``, ``stacks``, ``deployments``,
``environments``, ``references``, ``ordering`` and ``cycles``); they and
``heat/``, which reads Heat templates and evaluates Heat's intrinsic
functions, share the checking toolkit in ``checks`` (problems, typed field
readers, source positions) and the commit's files in ``files``.

May import: ``setpoint.controller.errors`` and ``setpoint.store``; no other room.
"""
