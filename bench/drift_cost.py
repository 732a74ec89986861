"""What one drift check costs an agent, per tool: CPU and memory.

``python -m bench.drift_cost [--cycles N] [--json FILE]`` measures, for each
tool installed here (script with a CHECK config, puppet, ansible, salt), an
agent that applied one config managing one file and then runs ``cycles`` drift
checks: wall time and CPU per check (the agent and the tool's processes), the
agent's peak resident memory and the tool's (the largest child process).
Each tool runs in a fresh Python process, so one tool's peak is not another's.
A tool that is not installed is left out, with a note.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from setpoint.agentshim.agent import Agent
from setpoint.store import Manifest, ManifestEntry, Pointer
from setpoint.store.memory import MemoryStore

SERVER = "bench-1"
TOOLS: dict[str, tuple[str | None, str]] = {
    # tool -> (command that must be on PATH, config managing {target})
    "script": (
        None,
        "#!/bin/sh\nprintf 'managed\\n' > \"$target\"\n",
    ),
    "puppet": ("puppet", "file { $facts['target']: content => \"managed\\n\" }\n"),
    "ansible": (
        "ansible-playbook",
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.copy: {dest: '{{ target }}', content: \"managed\\n\"}\n",
    ),
    "salt": (
        "salt-call",
        "managed:\n  file.managed:\n    - name: {{ pillar['target'] }}\n    - contents: managed\n",
    ),
}
SCRIPT_CHECK = '#!/bin/sh\n[ "$(cat "$target")" = managed ] || echo "$target differs"\n'


def derived(tool: str, config: str, target: Path) -> dict[str, Any]:
    configs = [{"actions": ["CREATE", "UPDATE"], "tool": tool, "config": config}]
    if tool == "script":
        configs.append({"actions": ["CHECK"], "tool": "script", "config": SCRIPT_CHECK})
    return {
        "name": "bench",
        "group": "component",
        "config": {"configs": configs},
        "inputs": [{"name": "target", "type": "String", "value": str(target)}],
        "outputs": [],
        "options": {},
    }


def measure_one(tool: str, cycles: int) -> dict[str, Any]:
    """In this process: apply, then ``cycles`` drift checks of one tool's config."""
    with tempfile.TemporaryDirectory(prefix="setpoint-bench-drift-") as tmp:
        target = Path(tmp) / "managed.txt"
        store = MemoryStore("bench")
        digest = store.put_json_blob(derived(tool, TOOLS[tool][1], target))
        entry = ManifestEntry("bench/managed", digest, ("CREATE", "UPDATE"), 600.0)
        manifest = store.put_json_blob(Manifest((entry,)).to_dict())
        store.write_pointer(Pointer(SERVER, 1, manifest, "bench", "2026-01-01T00:00:00Z"), None)
        now = [1_700_000_000.0]
        agent = Agent(store, SERVER, Path(tmp) / "state", clock=lambda: now[0], drift_interval=60.0)
        agent.run_once()  # applies, and runs the first drift check
        report = store.read_report(SERVER)
        assert report is not None
        if report.deployments["bench/managed"].status != "COMPLETE":
            raise RuntimeError(f"{tool}: {report.deployments['bench/managed'].reason}")
        self0 = resource.getrusage(resource.RUSAGE_SELF)
        kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall0 = time.monotonic()
        for _ in range(cycles):
            now[0] += 120  # past the jittered interval: a check is due every cycle
            agent.run_once()
        wall = time.monotonic() - wall0
        self1 = resource.getrusage(resource.RUSAGE_SELF)
        kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        report = store.read_report(SERVER)
        assert report is not None
        status = report.drift["bench/managed"].status

    def cpu(a: resource.struct_rusage, b: resource.struct_rusage) -> float:
        return (b.ru_utime - a.ru_utime) + (b.ru_stime - a.ru_stime)

    return {
        "tool": tool,
        "cycles": cycles,
        "drift_status": status,
        "wall_s_per_check": round(wall / cycles, 3),
        "agent_cpu_s_per_check": round(cpu(self0, self1) / cycles, 4),
        "tool_cpu_s_per_check": round(cpu(kids0, kids1) / cycles, 3),
        "agent_peak_rss_mb": round(self1.ru_maxrss / 1024, 1),
        "tool_peak_rss_mb": round(kids1.ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drift_cost", description=__doc__)
    parser.add_argument("--cycles", type=int, default=5, help="drift checks per tool (5)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--tool", choices=tuple(TOOLS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tool:  # the child process of one tool
        print(json.dumps(measure_one(args.tool, args.cycles)))
        return 0
    results = []
    bindir = str(Path(sys.executable).parent)
    for tool, (command, _config) in TOOLS.items():
        if command and not (shutil.which(command) or shutil.which(command, path=bindir)):
            print(f"{tool}: skipped ({command} is not installed)", flush=True)
            continue
        child = [sys.executable, "-m", "bench.drift_cost", "--tool", tool]
        done = subprocess.run(
            [*child, "--cycles", str(args.cycles)], capture_output=True, text=True, check=True
        )
        result = json.loads(done.stdout.splitlines()[-1])
        print(json.dumps(result, sort_keys=True), flush=True)
        results.append(result)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
