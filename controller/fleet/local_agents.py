"""``.setpoint/agents.sh``, which ``setpoint init`` writes: each server's agent
as a local process standing in for the server, managed as an operator manages
a service (``start``, ``stop``, ``status``, ``restart``; ``run`` in the
foreground). POSIX sh, so it runs wherever the agents do.

Each agent's pid goes to ``.setpoint/run/<server>.pid`` and its log to
``.setpoint/logs/<server>.log``. A pid file outlives a crash or a reboot, and
the pid in it may since belong to another process: an agent counts as running
only while ``ps`` shows that pid running ``setpoint-agent`` on its own state
directory, so ``stop`` never signals a stranger.
"""

from __future__ import annotations

import shlex
from pathlib import Path

SCRIPT = "agents.sh"
RUN = "run"  # pid files, under .setpoint/
LOGS = "logs"  # agents' logs, under .setpoint/
STOP_TIMEOUT = 30  # seconds 'stop' waits for the agents (a hook may be finishing)
START_TIMEOUT = 20  # seconds 'start' waits for each agent to say it started

# The body, after the lines that name the fleet's directory and servers.
BODY = r"""
RUN=$LOCAL/@RUN@
LOGS=$LOCAL/@LOGS@
STOP_TIMEOUT=${SETPOINT_STOP_TIMEOUT:-@STOP_TIMEOUT@}
START_TIMEOUT=@START_TIMEOUT@

usage() {
  echo "usage: sh $LOCAL/agents.sh start|stop|status|restart|run" >&2
  echo "  start    start each server's agent in the background (logs in $LOGS/)" >&2
  echo "  stop     send each agent SIGTERM, wait until it exits (${STOP_TIMEOUT}s at most)" >&2
  echo "  status   say which agents run (exit 3 when one does not)" >&2
  echo "  restart  stop, then start" >&2
  echo "  run      run them in the foreground, logs on the terminal; Ctrl-C stops them" >&2
  exit 64
}

agents() {  # "1 agent", "2 agents"
  if [ "$1" -eq 1 ]; then echo "1 agent"; else echo "$1 agents"; fi
}

agent() {  # become server $1's agent (exec: the pid the shell reports is the agent's)
  exec setpoint-agent --bootstrap "$LOCAL/agents/$1.json" --state-dir "$LOCAL/servers/$1" \
    --interval 1
}

running() {  # true when server $1's agent runs; its pid in $pid
  pid=
  [ -f "$RUN/$1.pid" ] || return 1
  pid=$(cat "$RUN/$1.pid" 2>/dev/null) || return 1
  case $pid in ''|*[!0-9]*) return 1 ;; esac
  # The pid file may be stale and its pid another process's now: check what runs.
  case " $(ps -p "$pid" -o args= 2>/dev/null) " in
    *setpoint-agent*" --state-dir $LOCAL/servers/$1 "*) return 0 ;;
  esac
  return 1
}

start() {
  mkdir -p "$RUN" "$LOGS"
  starting=
  for s in $SERVERS; do
    if running "$s"; then
      echo "$s: already running (pid $pid)"
      continue
    fi
    size=0
    [ -f "$LOGS/$s.log" ] && size=$(wc -c <"$LOGS/$s.log")
    # SIGHUP ignored (as nohup does): the agents outlive the terminal that started them.
    ( trap '' HUP; agent "$s" ) </dev/null >>"$LOGS/$s.log" 2>&1 &
    echo $! >"$RUN/$s.pid"
    starting="$starting $s:$((size + 0))"
  done
  # Up means it logged agent_started; one that cannot start (no setpoint-agent on
  # PATH, a bad bootstrap, its state directory in use) exits first.
  failed=0
  waited=0
  while [ -n "$starting" ]; do
    left=
    for entry in $starting; do
      s=${entry%%:*}
      if ! running "$s"; then
        rm -f "$RUN/$s.pid"
        echo "$s: exited at once; the end of $LOGS/$s.log:" >&2
        tail -n 5 "$LOGS/$s.log" | sed 's/^/  /' >&2
        failed=$((failed + 1))
      elif tail -c +$((${entry#*:} + 1)) "$LOGS/$s.log" | grep -q agent_started; then
        echo "$s: started (pid $pid, log $LOGS/$s.log)"
      elif [ "$waited" -ge "$START_TIMEOUT" ]; then
        echo "$s: started (pid $pid), not up after ${START_TIMEOUT}s: see $LOGS/$s.log"
      else
        left="$left $entry"
      fi
    done
    starting=$left
    [ -z "$starting" ] || sleep 1
    waited=$((waited + 1))
  done
  if [ "$failed" -gt 0 ]; then
    echo "$(agents "$failed") did not start" >&2
    return 1
  fi
}

stop() {
  stopping=
  for s in $SERVERS; do
    if running "$s"; then
      kill -TERM "$pid" 2>/dev/null && stopping="$stopping $s"
      echo "$s: stopping (pid $pid)"
    else
      rm -f "$RUN/$s.pid"
      echo "$s: not running"
    fi
  done
  waited=0
  while :; do
    left=
    for s in $stopping; do
      if running "$s"; then left="$left $s"; else rm -f "$RUN/$s.pid"; fi
    done
    stopping=$left
    [ -z "$left" ] && return 0
    if [ "$waited" -ge "$STOP_TIMEOUT" ]; then
      echo "still running after ${STOP_TIMEOUT}s:$left (a hook may be finishing:" \
        "stop again later, or kill -KILL the pid in $RUN/<server>.pid)" >&2
      return 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
}

status() {
  down=0
  for s in $SERVERS; do
    if running "$s"; then
      echo "$s: running (pid $pid)"
    else
      echo "$s: not running"
      down=$((down + 1))
    fi
  done
  [ "$down" -eq 0 ] || return 3
}

run() {
  mkdir -p "$RUN"
  for s in $SERVERS; do
    if running "$s"; then
      echo "$s: already running (pid $pid): sh $LOCAL/agents.sh stop first" >&2
      return 1
    fi
  done
  pids=
  # Ctrl-C, or a SIGTERM to this script, stops every agent, then waits for them.
  trap 'trap "" INT TERM; kill -TERM $pids 2>/dev/null' INT TERM
  for s in $SERVERS; do
    agent "$s" &
    pids="$pids $!"
    echo $! >"$RUN/$s.pid"
  done
  wait  # until a signal's trap ran, or every agent exited
  wait  # then until they all exited
  for s in $SERVERS; do rm -f "$RUN/$s.pid"; done
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  restart) stop && start ;;
  run) run ;;
  *) usage ;;
esac
"""


def agents_script(root: Path, local: str, servers: tuple[str, ...]) -> str:
    """The script for the fleet at ``root`` (its local directory ``local``)."""
    head = [
        "#!/bin/sh",
        "# The agents of this fleet, as local processes standing in for its servers:",
        f"#   sh {local}/{SCRIPT} start|stop|status|restart|run",
        "# On a real server: setpoint-agent --bootstrap <its bootstrap> --state-dir <a directory>",
        f"cd {shlex.quote(str(root))} || exit 1",
        f"LOCAL={shlex.quote(local)}",
        f"SERVERS={shlex.quote(' '.join(servers))}",
    ]
    body = (
        BODY.replace("@RUN@", RUN)
        .replace("@LOGS@", LOGS)
        .replace("@STOP_TIMEOUT@", str(STOP_TIMEOUT))
        .replace("@START_TIMEOUT@", str(START_TIMEOUT))
    )
    return "\n".join(head) + "\n" + body
