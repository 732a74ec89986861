"""Fixtures for the store tests: ``harness`` and ``store`` run once per backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import moto  # noqa: F401  (first: boto3 sessions made after this import can be mocked)
import pytest
from store_backends import BACKENDS, Harness

from setpoint.store.base import Store

OFFLINE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}
"""boto3 never looks for credentials anywhere but here (no instance metadata
service on 169.254.169.254, no ~/.aws): the tests only talk to 127.0.0.1."""


@pytest.fixture(autouse=True)
def offline_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in OFFLINE_AWS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(params=sorted(BACKENDS))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    with BACKENDS[request.param](tmp_path, request) as h:
        yield h


@pytest.fixture
def store(harness: Harness) -> Store:
    return harness.store


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's S3 as a real HTTP server on 127.0.0.1 (for presigned URLs and faults)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
