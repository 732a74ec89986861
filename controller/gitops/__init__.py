"""Following a branch: where the repository is (local or remote), the ``watch``
daemon, which heads may be deployed (commit gate), the record of each
deployed commit in git notes, history, and per-environment reconcilers.

May import: ``converge`` and every room below it; not ``fleet`` or ``cli``.
"""
