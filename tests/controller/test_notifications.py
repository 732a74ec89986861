"""Notifications: events derived from the ledger, received by a real HTTP server,
each exactly once across controller restarts, signed, retried, never in a pass's way."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from bench.simulate import SimAgent
from setpoint.controller.cli.main import main
from setpoint.controller.converge.reconcile import PassOutcome, Reconciler
from setpoint.controller.gitops.commitgate import CommitGate
from setpoint.controller.gitops.source import LocalSource
from setpoint.controller.gitops.watch import Watcher
from setpoint.controller.observe.notifier import Notifier, command_line_targets
from setpoint.controller.observe.sender import Sender
from setpoint.controller.rollout.ledger import read_ledger
from setpoint.store.lease import Lease
from setpoint.store.local import LocalStore
from setpoint.store.retry import Retry
from tests.controller.fleet import Fleet, component, inventory, version_outputs
from tests.controller.receiver import Receiver, receiver

SERVERS = ["app-1", "app-2", "app-3", "app-4"]
SECRET = "correct horse battery staple"


def stack(version: str) -> str:
    return textwrap.dedent(
        f"""\
        kind: Stack
        deployments:
          app:
            component: app
            servers: {{group: apps}}
            input_values:
              version: "{version}"
            update_policy: {{max_batch_size: 2}}
            on_failure: rollback
        """
    )


def notifications(url: str, extra: str = "", secret: bool = True) -> str:
    signed = "    secret_env: SETPOINT_TEST_HOOK_KEY\n" if secret else ""
    return (
        f"kind: Notifications\ntargets:\n  - name: ops\n    type: webhook\n    url: {url}\n"
        f"{signed}{extra}"
    )


def fast_sender() -> Sender:
    """Retries 10 ms apart: the loop as in production, without the waiting."""
    return Sender(retry=Retry(attempts=4, base_delay=0.01, max_delay=0.05, deadline=5.0))


class Controller:
    """A fleet on a local store whose controller restarts before every pass: a new
    ``Reconciler`` and ``Notifier`` each time, knowing only what the store says."""

    def __init__(self, tmp_path: Path, hook: Receiver) -> None:
        self.fleet = Fleet(
            tmp_path,
            {
                "inventory.yaml": inventory(SERVERS, {"apps": SERVERS}),
                "components/app/component.yaml": component(),
                "stacks/s.yaml": stack("1"),
                "notifications.yaml": notifications(hook.url),
            },
            LocalStore(tmp_path / "store"),
        )
        self.store = self.fleet.store
        self.senders: list[Sender] = []
        self.burst = 5

    def agent(self, server: str) -> SimAgent:
        return self.fleet.agent(server)

    def run_pass(self) -> PassOutcome:
        fleet = self.fleet
        reconciler = Reconciler(fleet.repo, self.store, clock=fleet.clock)
        outcome = reconciler.run_pass()
        sender = fast_sender()
        notifier = Notifier(sender=sender, clock=fleet.clock, burst=self.burst)
        notifier.after_pass(reconciler, outcome)
        assert sender.drain(10)
        self.senders.append(sender)
        return outcome

    def step(self) -> PassOutcome:
        outcome = self.run_pass()
        self.fleet.agents_cycle()
        self.fleet.now += 1
        return outcome


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as got:
        yield got


@pytest.fixture
def controller(
    tmp_path: Path, hook: Receiver, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Controller]:
    monkeypatch.setenv("SETPOINT_TEST_HOOK_KEY", SECRET)
    made = Controller(tmp_path, hook)
    yield made
    made.fleet.close()


def test_each_event_reaches_the_webhook_once_across_restarts(
    controller: Controller, hook: Receiver
) -> None:
    fleet = controller.fleet
    first = fleet.repo.resolve("HEAD")
    for _ in range(4):
        controller.step()
    # Creating the deployment everywhere is a rollout too (one batch).
    assert hook.events() == [f"rollout_started/s/app/{first}", f"converged/{first}"]
    controller.agent("app-3").fail_versions = {"2"}
    controller.agent("app-4").fail_versions = {"2"}
    second = fleet.commit({"stacks/s.yaml": stack("2")})
    for _ in range(12):  # the rollout, its failure, its rollback, and quiet passes after
        controller.step()
    keys = hook.events()
    assert Counter(keys).most_common(1)[0][1] == 1, keys  # nothing twice
    assert keys == [
        f"rollout_started/s/app/{first}",
        f"converged/{first}",
        f"rollout_started/s/app/{second}",
        f"batch_failed/s/app/{second}/2",
        f"rollback/s/app/{second}",
    ]
    failed = hook.delivered()[3].json
    assert failed["event"] == "batch_failed"
    assert sorted(failed["details"]["failed"]) == ["app-3", "app-4"]
    assert failed["details"]["outcome"] == "rolled_back"
    # Every server given the new digest goes back: the batch that passed, and the one that failed.
    assert hook.delivered()[4].json["details"]["servers"] == SERVERS
    # What was sent is in the signed ledger a restarted controller reads.
    assert set(read_ledger(controller.store).notified) >= set(keys[2:])


def test_the_signature_is_the_hmac_of_the_body(controller: Controller, hook: Receiver) -> None:
    for _ in range(3):
        controller.step()
    delivered = hook.delivered()
    assert [r.headers["x-setpoint-event"] for r in delivered] == ["rollout_started", "converged"]
    for got in delivered:
        header = got.headers["x-setpoint-signature"]
        expected = hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest()
        assert header == f"sha256={expected}"
        assert got.headers["x-setpoint-delivery"] == got.json["key"]
        assert got.headers["content-type"] == "application/json"
    forged = hmac.new(b"another key", delivered[0].body, hashlib.sha256).hexdigest()
    assert delivered[0].headers["x-setpoint-signature"] != f"sha256={forged}"


def test_a_failing_webhook_is_retried_then_delivered(
    controller: Controller, hook: Receiver
) -> None:
    hook.fail = 2  # two 500s, then 200
    for _ in range(3):
        controller.step()
    statuses = [r.headers["x-test-status"] for r in hook.requests]
    assert statuses == ["500", "500", "200", "200"]  # the rollout started, then converged
    assert len({r.body for r in hook.requests[:3]}) == 1  # the same notification each time
    assert sum(len(s.sent) for s in controller.senders) == 2


def test_a_webhook_that_never_answers_well_is_given_up(
    controller: Controller, hook: Receiver
) -> None:
    hook.fail = 100
    for _ in range(3):
        controller.step()
    assert len(hook.requests) == 8  # each notification's 4 attempts, then no more
    head = controller.fleet.repo.resolve("HEAD")
    assert [f for s in controller.senders for f in s.failed] == [
        ("ops", f"rollout_started/s/app/{head}"),
        ("ops", f"converged/{head}"),
    ]
    # Given up, but recorded: the next passes do not send them again.
    controller.step()
    assert len(hook.requests) == 8


def test_a_hanging_webhook_never_holds_up_a_pass(controller: Controller, hook: Receiver) -> None:
    fleet = controller.fleet
    reconciler = Reconciler(fleet.repo, controller.store, clock=fleet.clock)
    sender = fast_sender()
    notifier = Notifier(sender=sender, clock=fleet.clock)
    hook.hold.clear()  # the receiver keeps every request open
    for _ in range(3):
        notifier.after_pass(reconciler, reconciler.run_pass())
        fleet.agents_cycle()
    # Every pass returned while the first notification is still being sent.
    assert hook.arrived.wait(10)
    assert hook.requests == []
    assert not sender.drain(0.05)
    hook.hold.set()
    assert sender.drain(10)
    assert [r.json["event"] for r in hook.delivered()] == ["rollout_started", "converged"]


def test_an_unreachable_agent_is_told_once(controller: Controller, hook: Receiver) -> None:
    fleet = controller.fleet
    for server in SERVERS:
        controller.agent(server).heartbeat = 10.0
    for _ in range(3):
        controller.step()
    controller.agent("app-2").silent = True
    fleet.now += 60  # six beats without a report from app-2; the others keep beating
    fleet.agents_cycle()
    for _ in range(4):
        controller.step()
    unreachable = [k for k in hook.events() if k.startswith("agent_unreachable/")]
    assert len(unreachable) == 1
    assert unreachable[0].startswith("agent_unreachable/app-2/")
    got = next(r.json for r in hook.delivered() if r.json["event"] == "agent_unreachable")
    assert got["server"] == "app-2"


def test_many_agents_going_silent_at_once_are_told_in_one_notification(
    controller: Controller, hook: Receiver
) -> None:
    fleet = controller.fleet
    controller.burst = 2
    for server in SERVERS:
        controller.agent(server).heartbeat = 10.0
    for _ in range(3):
        controller.step()
    for server in SERVERS[1:]:
        controller.agent(server).silent = True
    fleet.now += 60
    fleet.agents_cycle()  # app-1 still beats
    for _ in range(3):
        controller.step()
    silent = [r.json for r in hook.delivered() if r.json["event"] == "agent_unreachable"]
    assert len(silent) == 1
    assert silent[0]["summary"] == "3 agents unreachable: app-2, app-3 and 1 more"
    assert sorted(silent[0]["details"]["servers"]) == SERVERS[1:]
    # Each server is on record: the group is not sent again, nor its members one by one.
    notified = read_ledger(controller.store).notified
    assert (
        sorted(k.split("/")[1] for k in notified if k.startswith("agent_unreachable/"))
        == (SERVERS[1:])
    )


def test_a_slack_target_gets_text(tmp_path: Path, hook: Receiver) -> None:
    extra = f"  - name: chat\n    type: slack\n    url: {hook.url}/slack\n    events: [converged]\n"
    fleet = Fleet(
        tmp_path,
        {
            "inventory.yaml": inventory(["s1"], {}),
            "components/app/component.yaml": component(),
            "stacks/s.yaml": "kind: Stack\ndeployments:\n  app:\n    component: app\n"
            "    servers: [s1]\n    input_values: {version: '1'}\n",
            "notifications.yaml": notifications(hook.url, extra, secret=False),
        },
    )
    try:
        sender = fast_sender()
        notifier = Notifier(sender=sender, clock=fleet.clock)
        for _ in range(3):
            notifier.after_pass(fleet.reconciler, fleet.reconciler.run_pass())
            fleet.agents_cycle()
        assert sender.drain(10)
    finally:
        fleet.close()
    slack = [r for r in hook.delivered() if r.path == "/hook/slack"]
    assert len(slack) == 1
    assert slack[0].json == {
        "text": f"setpoint: commit {fleet.repo.resolve('HEAD')[:12]} converged on 1 server"
    }
    assert "x-setpoint-signature" not in slack[0].headers


def test_without_targets_the_ledger_is_left_alone(tmp_path: Path) -> None:
    fleet = Fleet(
        tmp_path,
        {
            "inventory.yaml": inventory(["s1"], {}),
            "components/app/component.yaml": component(),
            "stacks/s.yaml": "kind: Stack\ndeployments:\n  app:\n    component: app\n"
            "    servers: [s1]\n    input_values: {version: '1'}\n",
        },
    )
    try:
        notifier = Notifier(sender=fast_sender(), clock=fleet.clock)
        for _ in range(3):
            assert notifier.after_pass(fleet.reconciler, fleet.reconciler.run_pass()) == []
            fleet.agents_cycle()
        assert read_ledger(fleet.store).notified == []
    finally:
        fleet.close()


def answer_all(store: LocalStore, servers: list[str]) -> None:
    for server in servers:
        SimAgent.resume(store, server, outputs_for=version_outputs).cycle()


def test_reconcile_run_twice_notifies_once(
    tmp_path: Path, hook: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """``setpoint reconcile --notify URL``, one process after another: each run
    delivers before it exits, and none repeats what an earlier run sent."""
    fleet = Fleet(
        tmp_path,
        {
            "inventory.yaml": inventory(SERVERS, {"apps": SERVERS}),
            "components/app/component.yaml": component(),
            "stacks/s.yaml": stack("1"),
        },
    )
    fleet.close()
    store = tmp_path / "store"
    argv = ["reconcile", "--repo", str(fleet.repo_path), "--store", str(store)]
    argv += ["--notify", hook.url, "--json"]
    for _ in range(4):
        assert main(argv) == 0
        answer_all(LocalStore(store), SERVERS)
    capsys.readouterr()
    head = fleet.repo.resolve("HEAD")
    assert hook.events() == [f"rollout_started/s/app/{head}", f"converged/{head}"]
    assert json.loads(hook.delivered()[0].body)["commit"] == head
    assert "x-setpoint-signature" not in hook.delivered()[0].headers


def test_command_line_targets_sign_with_the_named_variable() -> None:
    (webhook, slack) = command_line_targets(["http://a/"], ["http://b/"], "KEY")
    assert (webhook.type, webhook.secret_env) == ("webhook", "KEY")
    assert (slack.type, slack.secret_env) == ("slack", None)


@pytest.mark.parametrize(
    ("target", "where"),
    [
        ("    type: pager\n    url: http://x/\n", "notifications.yaml:4: targets[0].type:"),
        ("    type: webhook\n    url: ftp://x/\n", "notifications.yaml:5: targets[0].url:"),
        (
            "    type: webhook\n    url: http://x/\n    events: [converged, oops]\n",
            "notifications.yaml:6: targets[0].events[1]: unknown event 'oops'",
        ),
        (
            "    type: webhook\n    url: http://x/\n    secret_env: A\n    secret_file: /k\n",
            "notifications.yaml:7: targets[0].secret_file: give secret_env or secret_file",
        ),
        ("    type: webhook\n    urll: http://x/\n", "notifications.yaml:5: targets[0].urll:"),
    ],
)
def test_validate_names_file_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, where: str
) -> None:
    fleet = Fleet(
        tmp_path,
        {
            "inventory.yaml": inventory(["s1"], {}),
            "notifications.yaml": "kind: Notifications\ntargets:\n  - name: ops\n" + target,
        },
    )
    fleet.close()
    assert main(["validate", "--repo", str(fleet.repo_path)]) == 3
    assert where in capsys.readouterr().err


def test_a_restarted_watch_sends_nothing_again(controller: Controller, hook: Receiver) -> None:
    fleet = controller.fleet
    path = str(fleet.repo_path)

    def watch(passes: int) -> None:
        """A new ``Watcher`` (a daemon started afresh) running ``passes`` passes."""
        sender = fast_sender()
        watcher = Watcher(
            LocalSource(path, "HEAD"),
            controller.store,
            CommitGate(path),
            clock=fleet.clock,
            notifier=Notifier(sender=sender, clock=fleet.clock),
        )
        for _ in range(passes):
            watcher.step()
            fleet.agents_cycle()
            fleet.now += 1
        assert sender.drain(10)

    watch(3)
    head = fleet.repo.resolve("HEAD")
    assert hook.events() == [f"rollout_started/s/app/{head}", f"converged/{head}"]
    watch(3)
    assert hook.events() == [f"rollout_started/s/app/{head}", f"converged/{head}"]


# The watch daemon's log line saying where its metrics are served.
METRICS_URL = re.compile(r"metrics_serving .*url=http://127\.0\.0\.1:(\d+)/metrics")


def metrics_port(log: Path, until: Callable[[Callable[[], bool]], None]) -> int:
    """The port a daemon started with ``--metrics-port 0`` logged to ``log``."""
    until(lambda: METRICS_URL.search(log.read_text()) is not None)
    found = METRICS_URL.search(log.read_text())
    assert found is not None
    return int(found[1])


def scrape(port: int) -> dict[str, float]:
    """``/metrics`` as name{labels} -> value, parsed by prometheus_client; {} until it answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    return {
        f"{s.name}{json.dumps(s.labels, sort_keys=True)}": s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def passes(port: int) -> float:
    return scrape(port).get('setpoint_passes_total{"result": "ok"}', 0.0)


def passed(port: int, n: int) -> Callable[[], bool]:
    """Whether the daemon ran ``n`` passes in all."""
    return lambda: passes(port) >= n


def more_passes(port: int, n: int) -> Callable[[], bool]:
    """Whether the daemon ran ``n`` passes more than it had when this was called."""
    start = passes(port)
    return lambda: passes(port) >= start + n


def test_the_watch_daemon_serves_metrics_and_notifies_once_across_a_restart(
    tmp_path: Path, hook: Receiver
) -> None:
    """``setpoint watch --metrics-port --notify`` as a real process, stopped and started again."""
    fleet = Fleet(
        tmp_path,
        {
            "inventory.yaml": inventory(SERVERS, {"apps": SERVERS}),
            "components/app/component.yaml": component(),
            "stacks/s.yaml": stack("1"),
        },
    )
    fleet.close()
    store = tmp_path / "store"
    argv = [sys.executable, "-m", "setpoint.controller.cli", "watch"]
    argv += ["--repo", str(fleet.repo_path), "--store", str(store), "--interval", "0.2"]
    # Port 0: the daemon binds a free port and logs it (a port picked here and
    # bound by the daemon later could be taken in between).
    argv += ["--metrics-port", "0", "--notify", hook.url]

    def until(what: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 60
        while not what():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.1)

    for run in range(2):
        # Its log goes to a file: a pipe read only at the end could fill and stall it.
        log = tmp_path / f"watch-{run}.log"
        with log.open("wb") as err:
            daemon = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        try:
            port = metrics_port(log, until)
            until(passed(port, 2))
            answer_all(LocalStore(store), SERVERS)
            until(lambda: len(hook.delivered()) >= 2)
            # A few passes more: nothing new to tell.
            until(more_passes(port, 3))
            metrics = scrape(port)
        finally:
            daemon.send_signal(signal.SIGINT)
            daemon.wait(timeout=30)
        assert daemon.returncode == 0, log.read_text()
        head = fleet.repo.resolve("HEAD")
        assert hook.events() == [f"rollout_started/s/app/{head}", f"converged/{head}"], run
        complete = 'setpoint_servers{"deployment": "s/app", "state": "complete"}'
        assert metrics[complete] == len(SERVERS)


def test_a_deposed_leader_sends_nothing(controller: Controller, hook: Receiver) -> None:
    """The keys are written fenced by the lease: a leader that lost it between its
    pass and the write tells no one; the replica that took over will."""
    fleet = controller.fleet
    leader = Lease(controller.store, "ctl-a", ttl=30, clock=fleet.clock)
    assert leader.try_acquire()
    reconciler = Reconciler(fleet.repo, controller.store, clock=fleet.clock, lease=leader)
    outcome = reconciler.run_pass()  # the rollout starts
    fleet.now += 31  # ctl-a stalls past its ttl; ctl-b takes over
    successor = Lease(controller.store, "ctl-b", ttl=30, clock=fleet.clock)
    assert successor.try_acquire()
    sender = fast_sender()
    with capture_logs() as logs:
        assert Notifier(sender=sender, clock=fleet.clock).after_pass(reconciler, outcome) == []
    assert sender.drain(5)
    assert hook.requests == []
    assert "notifications_held" in [e["event"] for e in logs if e["log_level"] == "warning"]
    assert read_ledger(controller.store).notified == []
    # The new leader's pass finds the rollout's event unsent, and sends it.
    taken_over = Reconciler(fleet.repo, controller.store, clock=fleet.clock, lease=successor)
    sender = fast_sender()
    Notifier(sender=sender, clock=fleet.clock).after_pass(taken_over, taken_over.run_pass())
    assert sender.drain(10)
    assert [k.split("/")[0] for k in hook.events()] == ["rollout_started"]


def test_watch_refuses_a_busy_metrics_port_and_an_unset_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = Fleet(tmp_path, {"inventory.yaml": inventory(["s1"], {})})
    fleet.close()
    argv = ["watch", "--repo", str(fleet.repo_path), "--store", str(tmp_path / "store"), "--once"]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main([*argv, "--metrics-port", str(port)]) == 1
    assert f"--metrics-port: cannot serve on 127.0.0.1:{port}" in capsys.readouterr().err
    monkeypatch.delenv("SETPOINT_TEST_UNSET", raising=False)
    assert main([*argv, "--notify", "http://127.0.0.1:9/", "--notify-secret-env",
                 "SETPOINT_TEST_UNSET"]) == 1  # fmt: skip
    assert "$SETPOINT_TEST_UNSET is not set" in capsys.readouterr().err
