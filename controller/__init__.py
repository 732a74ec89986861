"""setpoint's controller: from a git commit to signed pointers in the store.

The rooms follow the data flow, and each imports only the rooms below it
(checked by import-linter in CI)::

    cli                      the ``setpoint`` command: one module per command family
    gitops | fleet           following a branch, notes, history | enrolling, keys, moving
    converge                 one pass against the store: read, decide, publish; status
    rollout                  desired state, the gate (batches, failures), ledger, plan
    render                   a deployment on a server -> derived config and its digest
    definitions              reading a commit: YAML, inventory, components, stacks, Heat

``errors`` and ``logs`` sit beside the rooms and may be used by any of them.
The controller uses ``setpoint.store`` and never ``setpoint.agentshim``.
"""
