"""Watching the controller from outside: Prometheus metrics and notifications.

``snapshot`` counts the fleet (from one pass, or from the store), ``metrics``
exposes it with the passes and store requests; ``events`` derives what is
worth telling from the ledger and a pass, ``notifier`` records and queues it,
``sender`` and ``delivery`` send it.
"""
