"""The tests are packages, so every module has a name of its own for pytest and
mypy (``tests.agent.conftest``, ``tests.store.conftest``, ...). The helpers that
tests import by their bare name (``agenttest``, ``tooltest``, ``store_backends``,
``flaky``) are on pytest's ``pythonpath`` and mypy's ``mypy_path`` instead
(pyproject.toml).
"""
