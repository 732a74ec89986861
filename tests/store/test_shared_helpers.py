"""The helpers controller and agent share through the store layer: timestamps,
durable file replacement, secret masking."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from setpoint.store.atomic_files import write_atomic
from setpoint.store.masking import MASK, mask_secret_inputs
from setpoint.store.timestamps import format_timestamp, parse_timestamp

T = 1_767_225_600.25  # 2026-01-01T00:00:00.25Z


def test_timestamps_round_trip_with_microseconds() -> None:
    assert format_timestamp(T) == "2026-01-01T00:00:00.250000Z"
    assert parse_timestamp(format_timestamp(T)) == T


def test_timestamps_in_the_precision_each_writer_uses() -> None:
    assert format_timestamp(T, digits=3) == "2026-01-01T00:00:00.250Z"  # the agent
    assert format_timestamp(1_767_225_600, digits=0) == "2026-01-01T00:00:00Z"  # commits
    with pytest.raises(ValueError, match="0 to 6"):
        format_timestamp(T, digits=7)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T00:00:00.250Z", T),  # the agent writes milliseconds
        ("2026-01-01T00:00:00Z", T - 0.25),
        ("2026-01-01T01:00:00.25+01:00", T),
        ("yesterday", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_timestamp_reads_any_iso_precision(text: str | None, expected: float | None) -> None:
    assert parse_timestamp(text) == expected


def test_write_atomic_replaces_with_mode_and_names_the_version(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "file"
    first = write_atomic(path, b"one", 0o644)
    second = write_atomic(path, b"two")
    assert path.read_bytes() == b"two"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (second.st_ino, second.st_size) == (os.stat(path).st_ino, 3)
    assert first.st_ino != second.st_ino
    assert os.listdir(path.parent) == ["file"]  # no temporary file left


def test_mask_secret_inputs_masks_only_the_secrets() -> None:
    body: dict[str, Any] = {
        "id": "blake3:x",
        "inputs": [{"name": "password", "value": "hunter2"}, {"name": "port", "value": 80}],
    }
    masked = mask_secret_inputs(body, {"password"})
    assert masked["inputs"] == [
        {"name": "password", "value": f"{MASK} (secret)"},
        {"name": "port", "value": 80},
    ]
    assert body["inputs"][0]["value"] == "hunter2"  # the original is untouched
    assert mask_secret_inputs(body, set()) is body
