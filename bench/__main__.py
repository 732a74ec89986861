"""``python -m bench``: run the benchmarks and print their figures.

``python -m bench requests [--servers N] [--json FILE]`` counts store requests
per reconcile pass on a synthetic fleet, on a local store directory, plus
Swift and S3 when ``SETPOINT_BENCH_SWIFT`` / ``SETPOINT_BENCH_S3`` name a store
URL (for example ``swift://bench`` with the ``ST_*`` variables set).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

from bench.store_requests import measure, table
from bench.synth import FleetShape
from controller import logs
from store.url import open_store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("scenario", choices=["requests"], nargs="?", default="requests")
    parser.add_argument("--servers", type=int, default=100)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    logs.configure("warning")
    shape = FleetShape(servers=args.servers)
    results: dict[str, Any] = {"cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="setpoint-bench-store-") as tmp:
        urls = {"local": tmp}
        for name, env in (("swift", "SETPOINT_BENCH_SWIFT"), ("s3", "SETPOINT_BENCH_S3")):
            if os.environ.get(env):
                urls[name] = os.environ[env]
        for name, url in urls.items():
            results[name] = measure(partial(open_store, url), shape)
            print(table(name, results[name]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
