"""AWS Signature Version 4 for S3 requests, with the standard library only.

An agent enrolled with per-server keys (limited by policy to its own prefix)
signs its few requests itself: servers carry no boto3.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote, urlsplit


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def sign_s3(
    method: str,
    url: str,
    body: bytes,
    access_key: str,
    secret_key: str,
    region: str,
    now: float | None = None,
) -> dict[str, str]:
    """The headers that authenticate ``method url`` (a path-style S3 URL, no query)."""
    parts = urlsplit(url)
    if parts.query:
        raise ValueError("sign_s3 signs URLs without a query string")
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    day = amz_date[:8]
    payload = hashlib.sha256(body).hexdigest()
    path = quote(parts.path or "/", safe="/-_.~%")
    signed = "host;x-amz-content-sha256;x-amz-date"
    canonical = "\n".join(
        [
            method,
            path,
            "",
            f"host:{parts.netloc}\nx-amz-content-sha256:{payload}\nx-amz-date:{amz_date}\n",
            signed,
            payload,
        ]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(
        _hmac(_hmac(_hmac(f"AWS4{secret_key}".encode(), day), region), "s3"), "aws4_request"
    )
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}"
        ),
        "x-amz-content-sha256": payload,
        "x-amz-date": amz_date,
    }
