"""Preflight entries in manifests and check results in reports: parsed, checked,
and left out when empty so that older documents keep their bytes."""

from __future__ import annotations

import pytest

from setpoint.store import CheckReport, InvalidDocument, Manifest, ManifestEntry, Report
from setpoint.store.digest import digest_json

CONFIG = "blake3:" + "ab" * 32
OTHER = "blake3:" + "cd" * 32


def entry(name: str, config: str = CONFIG) -> ManifestEntry:
    return ManifestEntry(name, config, ("CREATE", "UPDATE"), 60.0)


def test_a_manifest_without_preflight_entries_keeps_its_digest() -> None:
    plain = Manifest((entry("s/a"),))
    assert "preflight" not in plain.to_dict()
    before = {"kind": "Manifest", "deployments": [entry("s/a").to_dict()], "bundles": {}}
    assert digest_json(plain.to_dict()) == digest_json(before)


def test_preflight_entries_round_trip_and_are_fetched_after_the_deployments() -> None:
    manifest = Manifest((entry("s/a"),), preflight=(entry("s/a", OTHER), entry("s/b", OTHER)))
    again = Manifest.from_dict(manifest.to_dict())
    assert again == manifest
    assert [e.config for e in again.fetched] == [CONFIG, OTHER, OTHER]


def test_a_deployment_listed_twice_in_preflight_is_refused() -> None:
    doc = Manifest((), preflight=(entry("s/a"),)).to_dict()
    doc["preflight"].append(entry("s/a").to_dict())
    with pytest.raises(InvalidDocument, match="listed twice in 'preflight'"):
        Manifest.from_dict(doc)


def report(
    preflight: dict[str, CheckReport] | None = None, drift: dict[str, CheckReport] | None = None
) -> Report:
    when = "2026-01-01T00:00:00.000Z"
    return Report("web1", 1, None, when, preflight=preflight or {}, drift=drift or {})


def test_check_results_round_trip_and_are_left_out_when_empty() -> None:
    assert {"preflight", "drift"}.isdisjoint(report().to_dict())
    full = report(
        preflight={"s/a": CheckReport(OTHER, "FAILED", reason="puppet not found")},
        drift={"s/a": CheckReport(CONFIG, "drifted", "content differs", count=2)},
    )
    assert Report.from_dict(full.to_dict()) == full


@pytest.mark.parametrize(("kind", "status"), [("preflight", "drifted"), ("drift", "PASSED")])
def test_a_check_status_of_the_other_kind_is_refused(kind: str, status: str) -> None:
    doc = report().to_dict()
    doc[kind] = {"s/a": {"config": CONFIG, "status": status}}
    with pytest.raises(InvalidDocument, match=f"unknown status {status!r}"):
        Report.from_dict(doc)
