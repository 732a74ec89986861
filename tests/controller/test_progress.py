"""``reconcile --wait`` progress: a redrawn bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import io
from pathlib import Path

from setpoint.controller.cli.progress import Progress, bar
from tests.controller.fleet import Fleet, component, inventory

SERVERS = [f"p{i}" for i in range(1, 7)]
STACK = """\
kind: Stack
deployments:
  app:
    component: app
    servers: {group: all}
    update_policy: {max_batch_size: 2}
    input_values: {version: "%s"}
"""


def test_bar() -> None:
    assert bar(3, 6, width=10) == "[#####.....] 3/6"
    assert bar(0, 0, width=4) == "[....] 0/0"


def run(tmp_path: Path, tty: bool) -> str:
    fleet = Fleet(
        tmp_path,
        {
            "inventory.yaml": inventory(SERVERS, {"all": SERVERS}),
            "components/app/component.yaml": component(),
            "stacks/s.yaml": STACK % "1",
        },
    )
    try:
        for _ in range(3):
            fleet.step()
        fleet.commit({"stacks/s.yaml": STACK % "2"})
        out = io.StringIO()
        shown = Progress(out, tty=tty)
        for _ in range(5):
            shown(fleet.run_pass())
            fleet.agents_cycle()
        shown.close()
        return out.getvalue()
    finally:
        fleet.close()


def test_terminal_gets_one_redrawn_line(tmp_path: Path) -> None:
    text = run(tmp_path, tty=True)
    assert text.count("\r\x1b[K") >= 3
    assert text.endswith("\n")
    assert text.count("\n") == 1
    assert "s/app batch 1/3" in text
    assert "[" + "#" * 30 + "] 6/6" in text


def test_a_log_gets_plain_lines(tmp_path: Path) -> None:
    lines = run(tmp_path, tty=False).splitlines()
    assert "\r" not in "".join(lines)
    assert any("s/app batch 2/3: 2 done, 2 in progress, 2 waiting" in line for line in lines)
    assert lines[-1].startswith("6/6 servers converged")
