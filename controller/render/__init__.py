"""Rendering: one deployment on one server into a derived config (the document
heat-config hooks read), named by the BLAKE3 digest of its canonical JSON.

A pure function of the model and the resolved input values.

May import: ``definitions``, ``setpoint.controller.errors`` and ``setpoint.store``.
"""
