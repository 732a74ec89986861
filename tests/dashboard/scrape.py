"""Scrape a served ``/metrics`` and parse it with prometheus_client's own parser."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

# (sample name, its labels sorted) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, token: str | None = None) -> tuple[str, str, Samples]:
    """The content type, the body, and every sample in it."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        content_type = response.headers["Content-Type"]
        body = response.read().decode("utf-8")
    samples: Samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return content_type, body, samples


def servers(samples: Samples, deployment: str, state: str) -> float:
    """``setpoint_servers{deployment, state}``."""
    return samples[("setpoint_servers", (("deployment", deployment), ("state", state)))]
