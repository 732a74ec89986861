"""The agent's standard-library SigV4 signer agrees with botocore's."""

from __future__ import annotations

import calendar
import hashlib
import time

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from setpoint.store.sigv4 import sign_s3


@pytest.mark.parametrize(
    ("method", "body"), [("GET", b""), ("PUT", b'{"kind":"Report"}'), ("HEAD", b"")]
)
def test_signature_matches_botocore(method: str, body: bytes) -> None:
    url = "http://127.0.0.1:9000/fleet/pre/agents/web-1.example/report"
    request = AWSRequest(
        method=method,
        url=url,
        data=body,
        headers={"x-amz-content-sha256": hashlib.sha256(body).hexdigest()},
    )
    S3SigV4Auth(Credentials("AKIDEXAMPLE", "s3cr3t/key"), "s3", "eu-west-1").add_auth(request)
    when = calendar.timegm(time.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
    ours = sign_s3(method, url, body, "AKIDEXAMPLE", "s3cr3t/key", "eu-west-1", when)
    assert ours["Authorization"] == request.headers["Authorization"]
    assert ours["x-amz-date"] == request.headers["X-Amz-Date"]


def test_a_url_with_a_query_is_refused() -> None:
    with pytest.raises(ValueError, match="without a query"):
        sign_s3("GET", "http://h/b/k?x=1", b"", "a", "s", "us-east-1")
