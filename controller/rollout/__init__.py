"""Desired state and how it rolls out: which servers get which entry now.

``desired`` renders every (deployment, server) pair given what agents
reported (``inputs`` resolves their input values from those reports);
``gate`` decides batches, halts and rollbacks; ``contextualize`` counts the
rounds of declared cycles; ``ledger`` is the controller's record of rollouts
in flight; ``plan`` and ``plan_format`` compare two commits offline.

May import: ``render``, ``definitions``, ``setpoint.controller.errors`` and ``setpoint.store``.
"""
