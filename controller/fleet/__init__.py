"""Operations on the fleet itself: enrolling a server, rotating Swift's TempURL
key, per-server S3 keys, and moving a fleet to another store.

May import: ``converge`` and every room below it; not ``gitops`` or ``cli``.
"""
