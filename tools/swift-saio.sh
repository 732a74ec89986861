#!/usr/bin/env bash
# swift-saio.sh - a throw-away, single-node OpenStack Swift ("SAIO") on loopback,
# built from Debian 12's packages (swift 2.30.x), for test suites and CI.
# (setpoint's copy of the shared script; see tests/swift_fixtures.py and
# .ci/install-swift.sh. Changed here: rings built in one python process.)
#
#   swift-saio.sh install                      apt-get install swift python3-swift memcached (root)
#   swift-saio.sh start   [DIR] [[IP:]PORT]    set up (idempotent) + start, print endpoint
#   swift-saio.sh stop    [DIR]                stop the processes recorded in DIR/run/*.pid
#   swift-saio.sh restart [DIR] [[IP:]PORT]
#   swift-saio.sh status  [DIR]                exit 0 when every server is up
#   swift-saio.sh env     [DIR]                print the endpoint as KEY=VALUE lines
#   swift-saio.sh purge   [DIR]                stop, then delete DIR (only a DIR made by this script)
#
# Defaults: DIR=$SWIFT_SAIO_DIR or /tmp/swift-saio, listen 127.0.0.1:8080.
# Back-end ports default to PORT+10 (object), +11 (container), +12 (account),
# +13 (memcached); override with SWIFT_SAIO_{OBJECT,CONTAINER,ACCOUNT,MEMCACHE}_PORT.
# `start` writes progress to stderr and only KEY=VALUE lines to stdout, so
#   eval "$(swift-saio.sh start /tmp/s 8080)"   (or: set -a; eval ...; set +a)
# works. Everything (configs, rings, data, logs, pids) lives under DIR; nothing is
# written to /etc/swift. Servers run as the invoking user, in the foreground of
# their own process (workers = 0), one process each, PIDs in DIR/run/.
#
# Accounts (tempauth):  test:tester / testing   (.admin of AUTH_test)
#                       test:tester3 / testing3 (non-admin user of AUTH_test)
#                       test2:tester2 / testing2 (.admin of AUTH_test2)
#                       admin:admin / admin     (.reseller_admin)
# S3 (s3api, path-style): access key "test:tester", secret "testing", region us-east-1.
set -euo pipefail

# Debian's python: the one that has the swift package. SWIFT_SAIO_PYTHON may name
# another interpreter with swift importable (e.g. a venv with `pip install swift`,
# 2.36+ accepts S3 PUT If-None-Match: *); then only memcached comes from apt. The
# rings are built by that same interpreter (swift.common.ring), not by the CLI.
PY=${SWIFT_SAIO_PYTHON:-/usr/bin/python3}
if [ "$PY" = /usr/bin/python3 ]; then
    # swift = swift-ring-builder & tools, python3-swift = the code. The server packages
    # (swift-proxy/-object/-container/-account) only add uwsgi, init scripts and unit
    # files that this script does not use; SWIFT_SAIO_APT_PKGS can name them anyway.
    PKGS=${SWIFT_SAIO_APT_PKGS:-"swift python3-swift memcached"}
else
    PKGS="memcached"
fi
SERVERS="account-server container-server object-server proxy-server"

log() { echo "swift-saio: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

cmd=${1:-start}
[ $# -gt 0 ] && shift
DIR=${1:-${SWIFT_SAIO_DIR:-/tmp/swift-saio}}
[ $# -gt 0 ] && shift
ADDR=${1:-${SWIFT_SAIO_PORT:-}}
case "$DIR" in /*) ;; *) DIR="$(pwd)/$DIR" ;; esac
DIR=${DIR%/}
ETC=$DIR/etc
RUN=$DIR/run
LOGD=$DIR/log
NODE=$DIR/srv/node
MARK=$DIR/.swift-saio

load_params() {
    # precedence: command-line [IP:]PORT > saved params in DIR > env > defaults
    local saved_port=""
    if [ -f "$DIR/saio.env" ]; then
        saved_port=$(sed -n 's/^PROXY_PORT=//p' "$DIR/saio.env")
    fi
    if [ -n "$ADDR" ]; then
        case "$ADDR" in
            *:*) BIND_IP=${ADDR%:*}; PROXY_PORT=${ADDR##*:} ;;
            *)   BIND_IP=${SWIFT_SAIO_IP:-127.0.0.1}; PROXY_PORT=$ADDR ;;
        esac
        OBJ_PORT=${SWIFT_SAIO_OBJECT_PORT:-$((PROXY_PORT + 10))}
        CONT_PORT=${SWIFT_SAIO_CONTAINER_PORT:-$((PROXY_PORT + 11))}
        ACCT_PORT=${SWIFT_SAIO_ACCOUNT_PORT:-$((PROXY_PORT + 12))}
        MC_PORT=${SWIFT_SAIO_MEMCACHE_PORT:-$((PROXY_PORT + 13))}
    elif [ -n "$saved_port" ]; then
        # shellcheck disable=SC1091
        . "$DIR/saio.env"
    else
        BIND_IP=${SWIFT_SAIO_IP:-127.0.0.1}
        PROXY_PORT=8080
        OBJ_PORT=${SWIFT_SAIO_OBJECT_PORT:-$((PROXY_PORT + 10))}
        CONT_PORT=${SWIFT_SAIO_CONTAINER_PORT:-$((PROXY_PORT + 11))}
        ACCT_PORT=${SWIFT_SAIO_ACCOUNT_PORT:-$((PROXY_PORT + 12))}
        MC_PORT=${SWIFT_SAIO_MEMCACHE_PORT:-$((PROXY_PORT + 13))}
    fi
    PART_POWER=${PART_POWER:-10}
    RUN_USER=${RUN_USER:-$(id -un)}
}

params_text() {
    cat <<EOF
BIND_IP=$BIND_IP
PROXY_PORT=$PROXY_PORT
OBJ_PORT=$OBJ_PORT
CONT_PORT=$CONT_PORT
ACCT_PORT=$ACCT_PORT
MC_PORT=$MC_PORT
PART_POWER=$PART_POWER
RUN_USER=$RUN_USER
EOF
}

print_env() {
    local base="http://$BIND_IP:$PROXY_PORT"
    cat <<EOF
SWIFT_SAIO_DIR=$DIR
SWIFT_AUTH_URL=$base/auth/v1.0
SWIFT_USER=test:tester
SWIFT_KEY=testing
SWIFT_STORAGE_URL=$base/v1/AUTH_test
SWIFT_ENDPOINT=$base
S3_ENDPOINT_URL=$base
AWS_ACCESS_KEY_ID=test:tester
AWS_SECRET_ACCESS_KEY=testing
AWS_DEFAULT_REGION=us-east-1
EOF
}

# ---------------------------------------------------------------- install
pkgs_missing() {
    local p
    for p in $PKGS; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

do_install() {
    local missing
    missing=$(pkgs_missing | xargs)
    if [ -z "$missing" ]; then log "packages already installed"; return 0; fi
    [ "$(id -u)" = 0 ] || die "missing packages ($missing); run as root: apt-get install --no-install-recommends $PKGS"
    # Keep the packages' init scripts from starting the stock (0.0.0.0:8080, uwsgi)
    # services during install on machines that have no policy-rc.d (no systemd here).
    local made_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    local t0=$SECONDS rc=0
    log "apt-get install $missing"
    if ! apt-get install -y -q --no-install-recommends $PKGS >&2; then
        log "install failed; running apt-get update and retrying"
        apt-get update -q >&2 && apt-get install -y -q --no-install-recommends $PKGS >&2 || rc=$?
    fi
    [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
    [ $rc = 0 ] || die "apt-get install failed"
    log "packages installed in $((SECONDS - t0))s"
}

# ---------------------------------------------------------------- config
write_file() {   # write_file PATH  (content on stdin); only rewrites when changed
    local tmp
    tmp=$(mktemp "$1.XXXXXX")
    cat > "$tmp"
    if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv -f "$tmp" "$1"; fi
}

write_configs() {
    mkdir -p "$ETC" "$RUN" "$LOGD" "$NODE/d1" "$DIR/bin" "$DIR/cache"
    [ -f "$MARK" ] || echo "created by swift-saio.sh" > "$MARK"
    params_text | write_file "$DIR/saio.env"

    write_file "$ETC/swift.conf" <<EOF
[swift-hash]
swift_hash_path_suffix = saio-suffix
swift_hash_path_prefix = saio-prefix

[storage-policy:0]
name = Policy-0
default = yes

[swift-constraints]
EOF

    local common="user = $RUN_USER
swift_dir = $ETC
devices = $NODE
mount_check = false
workers = 0
log_level = INFO"

    local t port
    for t in account container object; do
        case $t in account) port=$ACCT_PORT ;; container) port=$CONT_PORT ;; object) port=$OBJ_PORT ;; esac
        write_file "$ETC/$t-server.conf" <<EOF
[DEFAULT]
bind_ip = $BIND_IP
bind_port = $port
log_name = $t-server
$common

[pipeline:main]
pipeline = healthcheck $t-server

[app:$t-server]
use = egg:swift#$t

[filter:healthcheck]
use = egg:swift#healthcheck

[$t-replicator]
[$t-auditor]
EOF
    done

    write_file "$ETC/proxy-server.conf" <<EOF
[DEFAULT]
bind_ip = $BIND_IP
bind_port = $PROXY_PORT
log_name = proxy-server
user = $RUN_USER
swift_dir = $ETC
workers = 0
log_level = INFO

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk tempurl formpost s3api tempauth copy container-quotas account-quotas slo dlo versioned_writes symlink proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$MC_PORT

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:bulk]
use = egg:swift#bulk

[filter:tempurl]
use = egg:swift#tempurl
methods = GET HEAD PUT POST DELETE
allowed_digests = sha1 sha256 sha512

[filter:formpost]
use = egg:swift#formpost

[filter:s3api]
use = egg:swift#s3api
location = us-east-1

[filter:tempauth]
use = egg:swift#tempauth
user_admin_admin = admin .admin .reseller_admin
user_test_tester = testing .admin
user_test_tester3 = testing3
user_test2_tester2 = testing2 .admin

[filter:copy]
use = egg:swift#copy

[filter:container-quotas]
use = egg:swift#container_quotas

[filter:account-quotas]
use = egg:swift#account_quotas

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo

[filter:versioned_writes]
use = egg:swift#versioned_writes
allow_versioned_writes = true
allow_object_versioning = true

[filter:symlink]
use = egg:swift#symlink
EOF

    # Launcher: swift reads swift.conf from the hard-coded /etc/swift/swift.conf
    # (swift.common.utils.SWIFT_CONF_FILE); point it at DIR/etc instead, and send
    # logs only to stderr (-v) instead of syslog/UDP 514.
    write_file "$DIR/bin/saio-server.py" <<'EOF'
"""Run one Swift WSGI server with swift.conf taken from a custom directory.
usage: python3 -s saio-server.py SWIFT_DIR SERVER-NAME CONF_FILE -v"""
import logging
import os
import sys

swift_dir = sys.argv.pop(1)
server = sys.argv.pop(1)

import swift.common.utils as utils  # noqa: E402  (imports no policy/constraints)
# (importing utils already read /etc/swift/swift.conf if one exists: forget it)
utils.SWIFT_CONF_FILE = os.path.join(swift_dir, 'swift.conf')
utils.HASH_PATH_PREFIX = utils.HASH_PATH_SUFFIX = b''
utils.validate_hash_conf()


class _NoSyslog(logging.NullHandler):
    def __init__(self, *args, **kwargs):
        logging.NullHandler.__init__(self)


utils.ThreadSafeSysLogHandler = _NoSyslog          # swift <= 2.3x: utils.py
try:                                               # newer: swift/common/utils/logs.py
    import swift.common.utils.logs as _logs
    _logs.ThreadSafeSysLogHandler = _NoSyslog
except ImportError:
    pass

from swift.common.wsgi import run_wsgi  # noqa: E402

kwargs = {}
if server == 'object-server':
    from swift.obj import server as obj_server
    kwargs['global_conf_callback'] = obj_server.global_conf_callback
conf_file, options = utils.parse_options()
options.update(kwargs)
sys.exit(run_wsgi(conf_file, server, **options))
EOF
}

build_rings() {
    local stamp want t port
    want="$BIND_IP $OBJ_PORT $CONT_PORT $ACCT_PORT $PART_POWER"
    stamp=$(cat "$ETC/rings.stamp" 2>/dev/null || true)
    if [ "$stamp" = "$want" ] && [ -f "$ETC/account.ring.gz" ] && [ -f "$ETC/container.ring.gz" ] \
        && [ -f "$ETC/object.ring.gz" ]; then
        return 0
    fi
    log "building rings (part power $PART_POWER, 1 replica, 1 device)"
    rm -f "$ETC"/*.builder "$ETC"/*.ring.gz
    # One interpreter builds all three through swift's RingBuilder API (what
    # swift-ring-builder create/add/rebalance do): ~1 s instead of the ~6 s of
    # nine CLI runs, each of which spends half a second importing swift.
    env -u PYTHONPATH -u PYTHONHOME "$PY" -s - "$ETC" "$PART_POWER" "$BIND_IP" \
        "account:$ACCT_PORT" "container:$CONT_PORT" "object:$OBJ_PORT" <<'EOF' \
        || die "building the rings failed"
import os, sys
from swift.common.ring import RingBuilder
etc, part_power, ip = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for spec in sys.argv[4:]:
    name, port = spec.split(':')
    builder = RingBuilder(part_power, 1, 1)
    builder.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': ip, 'port': int(port),
                     'device': 'd1', 'weight': 100, 'meta': ''})
    builder.rebalance()
    builder.get_ring().save(os.path.join(etc, name + '.ring.gz'))
    builder.save(os.path.join(etc, name + '.builder'))
EOF
    for t in account container object; do
        [ -f "$ETC/$t.ring.gz" ] || die "no $t.ring.gz after rebalance"
    done
    echo "$want" > "$ETC/rings.stamp"
}

# ---------------------------------------------------------------- processes
pid_of() {   # pid_of NAME -> prints pid if the recorded process is alive and ours
    local f="$RUN/$1.pid" pid
    [ -f "$f" ] || return 1
    pid=$(cat "$f")
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    if [ "$1" = memcached ]; then
        tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "memcached .*-p $MC_PORT" || return 1
    else
        tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF "$DIR/bin/saio-server.py" || return 1
    fi
    echo "$pid"
}

port_busy() {
    "$PY" - "$1" "$2" <<'EOF'
import socket, sys
s = socket.socket()
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
except OSError:
    sys.exit(1)
EOF
}

addr_of() { if [ "$1" = memcached ]; then echo 127.0.0.1; else echo "$BIND_IP"; fi; }

port_of() {
    case $1 in
        proxy-server) echo "$PROXY_PORT" ;; object-server) echo "$OBJ_PORT" ;;
        container-server) echo "$CONT_PORT" ;; account-server) echo "$ACCT_PORT" ;;
        memcached) echo "$MC_PORT" ;;
    esac
}

start_one() {
    local name=$1 port pid
    port=$(port_of "$name")
    if pid=$(pid_of "$name"); then log "$name already running (pid $pid)"; return 0; fi
    if port_busy "$(addr_of "$name")" "$port"; then
        die "port $port (for $name) is already in use by another process"
    fi
    if [ "$name" = memcached ]; then
        local u=""
        [ "$(id -u)" = 0 ] && u="-u root"
        # shellcheck disable=SC2086
        nohup /usr/bin/memcached -l 127.0.0.1 -p "$MC_PORT" -U 0 -m 64 -t 1 $u \
            >> "$LOGD/memcached.log" 2>&1 < /dev/null &
    else
        nohup env -u PYTHONPATH -u PYTHONHOME -u PYTHONSTARTUP "$PY" -s \
            "$DIR/bin/saio-server.py" "$ETC" "$name" "$ETC/$name.conf" -v \
            >> "$LOGD/$name.log" 2>&1 < /dev/null &
    fi
    echo $! > "$RUN/$name.pid"
    log "started $name (pid $!, port $port)"
}

wait_ready() {
    local timeout=${SWIFT_SAIO_TIMEOUT:-60}
    "$PY" - "$BIND_IP" "$PROXY_PORT" "$OBJ_PORT" "$CONT_PORT" "$ACCT_PORT" "$timeout" <<'EOF' || return 1
import sys, time, urllib.request, urllib.error
ip, proxy, obj, cont, acct, timeout = sys.argv[1:7]
deadline = time.time() + float(timeout)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # ignore http_proxy
def get(url, headers=None, method='GET'):
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    with opener.open(req, timeout=5) as r:
        return r.status, r.headers
last = None
for port in (acct, cont, obj, proxy):
    while True:
        try:
            if get('http://%s:%s/healthcheck' % (ip, port))[0] == 200:
                break
        except Exception as e:
            last = e
        if time.time() > deadline:
            sys.exit('server on port %s not healthy: %s' % (port, last))
        time.sleep(0.1)
base = 'http://%s:%s' % (ip, proxy)
while True:
    try:
        st, h = get(base + '/auth/v1.0',
                    {'X-Auth-User': 'test:tester', 'X-Auth-Key': 'testing'})
        st2, _ = get(h['X-Storage-Url'], {'X-Auth-Token': h['X-Auth-Token']},
                     method='HEAD')
        if st2 // 100 == 2:
            break
    except Exception as e:
        last = e
    if time.time() > deadline:
        sys.exit('proxy/auth not ready: %s' % last)
    time.sleep(0.1)
EOF
}

do_start() {
    load_params
    if [ -z "$(pkgs_missing)" ]; then :; else
        if [ "$(id -u)" = 0 ]; then do_install; else die "Debian packages missing: $(pkgs_missing | xargs)"; fi
    fi
    # parameters changed while running -> restart with the new ones
    if [ -f "$DIR/saio.env" ] && [ "$(params_text)" != "$(cat "$DIR/saio.env")" ]; then
        ( ADDR=""; load_params; do_stop_procs ) || true
    fi
    local t0=$SECONDS
    write_configs
    build_rings
    local s busy=""
    for s in memcached $SERVERS; do   # refuse before starting anything
        if ! pid_of "$s" >/dev/null && port_busy "$(addr_of "$s")" "$(port_of "$s")"; then
            busy="$busy $(port_of "$s")($s)"
        fi
    done
    [ -z "$busy" ] || die "port(s) already in use by other processes:$busy; pick another PORT"
    start_one memcached
    for s in $SERVERS; do start_one "$s"; done
    if ! wait_ready; then
        log "not ready; last log lines:"
        for s in memcached $SERVERS; do tail -n 15 "$LOGD/$s.log" >&2 2>/dev/null || true; done
        do_stop_procs
        die "swift did not come up (logs in $LOGD)"
    fi
    log "ready in $((SECONDS - t0))s at http://$BIND_IP:$PROXY_PORT (dir $DIR)"
    print_env
}

is_alive() {   # a zombie (exited, not yet reaped by whoever adopted it) counts as dead
    kill -0 "$1" 2>/dev/null || return 1
    ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

do_stop_procs() {
    local s pid pids=""
    for s in proxy-server object-server container-server account-server memcached; do
        if pid=$(pid_of "$s"); then
            kill -TERM "$pid" 2>/dev/null || true
            pids="$pids $pid"
            log "stopping $s (pid $pid)"
        fi
    done
    local _
    for _ in $(seq 1 100); do
        local alive=""
        for pid in $pids; do is_alive "$pid" && alive="$alive $pid"; done
        pids=$alive
        [ -z "$pids" ] && break
        sleep 0.1
    done
    for pid in $pids; do log "pid $pid ignored SIGTERM; SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; done
    rm -f "$RUN"/*.pid 2>/dev/null || true
}

do_stop() {
    [ -d "$DIR" ] || { log "nothing at $DIR"; return 0; }
    load_params
    do_stop_procs
    log "stopped"
}

do_status() {
    load_params
    local s pid rc=0
    for s in memcached $SERVERS; do
        if pid=$(pid_of "$s"); then
            echo "$s: running (pid $pid, port $(port_of "$s"), rss $(awk '/VmRSS/{print $2" "$3}' /proc/"$pid"/status))"
        else
            echo "$s: stopped"; rc=1
        fi
    done
    return $rc
}

case "$cmd" in
    install) do_install ;;
    start)   do_start ;;
    stop)    do_stop ;;
    restart) do_stop; do_start ;;
    status)  do_status ;;
    env)     load_params; print_env ;;
    purge)
        do_stop
        if [ -f "$MARK" ]; then rm -rf "$DIR"; log "removed $DIR"
        elif [ -d "$DIR" ]; then die "$DIR was not made by swift-saio.sh; not removing"; fi ;;
    -h|--help|help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown command '$cmd' (install|start|stop|restart|status|env|purge)" ;;
esac
