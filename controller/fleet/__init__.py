"""Operations on the fleet itself: enrolling a server, rotating Swift's TempURL
key, per-server S3 keys, moving a fleet to another store, and keeping a store
sound (``fsck``) and small (``gc``).

May import: ``converge`` and every room below it; not ``gitops`` or ``cli``.
"""
