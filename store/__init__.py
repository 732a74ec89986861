"""setpoint's object store: content-addressed blobs, per-server pointers and reports.

Backends (memory, local directory; S3 and Swift to come) only move bytes; the
``Store`` base class hashes on put, verifies on get and guards generations.
"""

from setpoint.store.base import Store, StoreStats, blob_key, pointer_key, report_key
from setpoint.store.digest import canonical_json, digest_bytes, digest_json, is_digest, short
from setpoint.store.documents import (
    LIFECYCLE_ACTIONS,
    CheckReport,
    DeploymentReport,
    Manifest,
    ManifestEntry,
    Pointer,
    Report,
    config_for_action,
)
from setpoint.store.errors import (
    BundleError,
    DigestMismatch,
    GenerationRegression,
    InvalidArgument,
    InvalidDigest,
    InvalidDocument,
    NotFound,
    PermanentError,
    PermissionDenied,
    StoreError,
    TransientError,
    UnknownScheme,
)
from setpoint.store.url import open_store

__all__ = [
    "LIFECYCLE_ACTIONS",
    "BundleError",
    "CheckReport",
    "DeploymentReport",
    "DigestMismatch",
    "GenerationRegression",
    "InvalidArgument",
    "InvalidDigest",
    "InvalidDocument",
    "Manifest",
    "ManifestEntry",
    "NotFound",
    "PermanentError",
    "PermissionDenied",
    "Pointer",
    "Report",
    "Store",
    "StoreError",
    "StoreStats",
    "TransientError",
    "UnknownScheme",
    "blob_key",
    "canonical_json",
    "config_for_action",
    "digest_bytes",
    "digest_json",
    "is_digest",
    "open_store",
    "pointer_key",
    "report_key",
    "short",
]
