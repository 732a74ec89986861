"""One pass against the store, and the loop around it: read reports and
pointers, compute desired state, publish blobs then manifests then pointers,
wait for convergence; and ``status``, what the store says about the fleet.

``capabilities`` issues agents their URLs; ``heat_agent`` publishes the same
desired state to servers that run Heat's own agent.

May import: ``rollout``, ``render``, ``definitions``, ``errors``, ``logs`` and ``setpoint.store``.
"""
