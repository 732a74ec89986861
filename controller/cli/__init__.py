"""The ``setpoint`` command: the parser and dispatch in ``main``, each command
family in a module of its own with its parser next to it.

May import every room of the controller.
"""
