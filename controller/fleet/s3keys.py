"""Per-server S3 keys, for operators who prefer keys to presigned URLs.

``grant`` creates an IAM user for the server whose only policy lets it read
its own pointer and the shared blobs and write its own report, gives it an
access key, and returns the capabilities its bootstrap carries. The agent
signs its requests itself (SigV4, standard library); the key never expires,
so nothing needs renewing, and revoking the user cuts the server off.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any, cast

from setpoint.controller.errors import SetpointError
from setpoint.store.base import BLOBS, Store, pointer_key, report_key
from setpoint.store.capabilities import Capabilities

# Keys do not expire: the latest second a Capabilities document can name.
NEVER = 253402300799
USER_PREFIX = "setpoint-agent-"


class ScopedKeyError(SetpointError):
    def __init__(self, server: str, reason: str) -> None:
        super().__init__(f"cannot create S3 keys for {server!r}: {reason}")
        self.server = server
        self.reason = reason


def policy_document(bucket: str, prefix: str, server: str) -> dict[str, Any]:
    base = f"arn:aws:s3:::{bucket}/{prefix}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadOwnPointerAndBlobs",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": [base + pointer_key(server), f"{base}{BLOBS}*"],
            },
            {
                "Sid": "WriteOwnReport",
                "Effect": "Allow",
                "Action": "s3:PutObject",
                "Resource": base + report_key(server),
            },
        ],
    }


def grant(store: Store, server: str, iam_client: Any | None = None) -> Capabilities:
    """Create (or re-key) the server's IAM user and return its ``s3-keys`` capabilities."""
    if store.capability_kind != "s3":
        raise ScopedKeyError(server, f"{store.url} is not an S3 store")
    s3 = cast(Any, store)
    endpoint = s3.client.meta.endpoint_url.rstrip("/")
    region = s3.client.meta.region_name or "us-east-1"
    if iam_client is None:
        import boto3

        # A fresh session reads the credentials in force now, as the S3 store did.
        iam_client = boto3.session.Session().client(
            "iam", endpoint_url=os.environ.get("SETPOINT_IAM_ENDPOINT"), region_name=region
        )
    user = f"{USER_PREFIX}{server}"[:64]
    policy = json.dumps(policy_document(s3.bucket, s3.prefix, server))
    try:
        with contextlib.suppress(iam_client.exceptions.EntityAlreadyExistsException):
            iam_client.create_user(
                UserName=user, Tags=[{"Key": "setpoint-server", "Value": server}]
            )
        iam_client.put_user_policy(
            UserName=user, PolicyName="setpoint-agent", PolicyDocument=policy
        )
        # One live key per server: enrolling again re-keys, cutting off the old bootstrap.
        for old in iam_client.list_access_keys(UserName=user)["AccessKeyMetadata"]:
            iam_client.delete_access_key(UserName=user, AccessKeyId=old["AccessKeyId"])
        key = iam_client.create_access_key(UserName=user)["AccessKey"]
    except Exception as exc:  # botocore's errors, translated at this boundary
        raise ScopedKeyError(server, str(exc)) from exc
    root = f"{endpoint}/{s3.bucket}/{s3.prefix}"
    return Capabilities(
        kind="s3-keys",
        pointer=root + pointer_key(server),
        report=root + report_key(server),
        expires_at=NEVER,
        blob_prefix=root,
        blob_query="",
        credentials={
            "access_key_id": key["AccessKeyId"],
            "secret_access_key": key["SecretAccessKey"],
            "region": region,
        },
    )
