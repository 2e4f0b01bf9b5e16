#!/usr/bin/env bash
# edgehook under a real systemd as PID 1 (SPEC §9, issue 6).
#
#   tests/systemd/run.sh target/debian/edgehook_*.deb
#
# Boots a minimal Debian bookworm with systemd-nspawn (systemd as PID 1 in the container,
# whatever runs PID 1 on the host), installs the .deb with dpkg and drives it with
# systemctl through nsenter (machinectl needs machined on the host; there is none here):
#
#   install      dpkg -i creates the user, enables the units, starts nothing
#   start        `systemctl start` returns once READY=1 came: the socket answers at once;
#                a config that never gets to READY=1 fails the start instead
#   deliver      an event sent to /run/edgehook/edgehook.sock reaches a receiver in the
#                container (plain HTTP on 127.0.0.1, allow_plain_http)
#   status       `systemctl show -P StatusText` is edgehook's one-line summary
#   journal      `journalctl -u edgehook -o json` has ENDPOINT, EVENT_ID, STATUS… fields
#   reload       `systemctl reload` after a config edit takes effect (same PID); an
#                invalid edit is refused and the old config keeps running
#   stop         `systemctl stop` with a delivery in flight: it gets shutdown_timeout,
#                then edgehook exits 0 (within TimeoutStopSec) and the delivery stays
#                queued, to be sent after the next start
#   activation   with edgehook.socket, the first connections start the service and none
#                of their events is lost; the socket file survives a stop
#   watchdog     a wedged store writer (EDGEHOOK_DEBUG_WEDGE_WRITER=1) stops WATCHDOG=1;
#                systemd kills and restarts edgehook (NRestarts)
#   upgrade      dpkg -i again restarts a running edgehook; purge removes it cleanly
#
# The rootfs is debootstrapped once from the mirror apt already uses and cached in
# $EDGEHOOK_CI_CACHE (default /var/cache/edgehook-ci); every boot gets a throw-away
# overlay (--volatile=overlay), so runs never change the cache. Needs root,
# systemd-container and debootstrap. Resource-control directives are not enforced in
# this container and are not tested.
set -euo pipefail

DEB=$(realpath "${1:?usage: $0 path/to/edgehook_VERSION_ARCH.deb}")
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${EDGEHOOK_CI_CACHE:-/var/cache/edgehook-ci}
# The .deb's architecture picks the rootfs: the host's own boots natively (cached in
# rootfs/); another one (arm64) is debootstrapped and booted through qemu-user and binfmt
# (packaging/cross.sh registers the handlers), in rootfs-ARCH/, with every wait_for
# limit multiplied by EDGEHOOK_CI_SLOW (default 5) for the emulation.
ARCH=$(dpkg-deb -f "$DEB" Architecture)
if [ "$ARCH" = "$(dpkg --print-architecture)" ]; then
    ROOTFS=$CACHE/rootfs
    SLOW=1
else
    ROOTFS=$CACHE/rootfs-$ARCH
    SLOW=${EDGEHOOK_CI_SLOW:-5}
fi
SUITE=bookworm
INCLUDE=systemd,systemd-sysv,dbus,procps,python3,curl,ca-certificates
# Bump to rebuild cached rootfs trees made by an older version of this script.
ROOTFS_STAMP="v2 $SUITE --variant=minbase --include=$INCLUDE"

T_START=$EPOCHREALTIME
PASSED=0
FAILED=0
LEADER=
NSPAWN=
CGROUPS=()
WORK=$(mktemp -d /tmp/edgehook-systemd.XXXXXX)

elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
log() { printf '[%6ss] %s\n' "$(elapsed "$T_START")" "$*"; }

# In the container: every namespace of its PID 1, as `machinectl shell` would.
ct() { nsenter -t "$LEADER" -m -u -i -n -p -C -r -w -- "$@"; }

dump() {
    [ -n "$LEADER" ] || return 0
    echo "---- systemctl status edgehook ----"
    ct systemctl status --no-pager --lines=0 edgehook.service edgehook.socket 2>&1 || true
    echo "---- journalctl -u edgehook (last 60) ----"
    ct journalctl --no-pager -n 60 -u edgehook.service -u edgehook.socket 2>&1 || true
}

fail() {
    FAILED=$((FAILED + 1))
    log "FAIL: $*"
    dump
    echo "$PASSED passed, $FAILED failed"
    exit 1
}

check() { # description command…: the command must succeed
    local what=$1
    shift
    if "$@"; then
        PASSED=$((PASSED + 1))
        log "ok: $what"
    else
        fail "$what"
    fi
}

wait_for() { # seconds description command…: poll until the command succeeds
    local limit=$(($1 * SLOW)) what=$2 t0=$EPOCHREALTIME
    shift 2
    until "$@"; do
        if awk -v a="$t0" -v b="$EPOCHREALTIME" -v l="$limit" 'BEGIN { exit !(b - a > l) }'; then
            fail "timed out after ${limit}s: $what"
        fi
        sleep 0.1
    done
}

cleanup() {
    local rc=$?
    if [ -n "$NSPAWN" ] && kill -0 "$NSPAWN" 2>/dev/null; then
        # nspawn turns SIGTERM into a clean poweroff of the container.
        kill -TERM "$NSPAWN" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.1; done
    fi
    # Whatever is left in the run's cgroups (a container that did not power off).
    for cg in "${CGROUPS[@]}"; do
        [ -d "$cg" ] || continue
        find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    done
    [ -n "$NSPAWN" ] && wait "$NSPAWN" 2>/dev/null || true
    for cg in "${CGROUPS[@]}"; do
        [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT

# The Debian mirror apt uses for $SUITE (deb822 .sources first, then sources.list).
apt_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v suite="$SUITE" '
            /^$/ { if (uris != "" && ok) { print uris; exit } uris = ""; ok = 0 }
            /^URIs:/ { split($0, a, " "); uris = a[2] }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) ok = 1 }
            END { if (uris != "" && ok) print uris }' "$f" | head -n1
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk -v suite="$SUITE" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i == suite) { u = ($2 ~ /^\[/) ? $3 : $2; print u; exit } }' "$f"
    done
}

# ---------------------------------------------------------------------------------------
log "== rootfs"
mkdir -p "$CACHE"
exec 9>"$CACHE/lock"
flock 9
if [ "$(cat "$ROOTFS/.edgehook-ci-stamp" 2>/dev/null)" != "$ROOTFS_STAMP" ]; then
    MIRROR=$(apt_mirror | head -n1)
    [ -n "$MIRROR" ] || fail "no apt source for $SUITE in /etc/apt"
    log "debootstrap $SUITE $ARCH from $MIRROR (once; cached in $ROOTFS)"
    rm -rf "$ROOTFS.new"
    debootstrap --arch="$ARCH" --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOTFS.new" "$MIRROR" \
        >"$CACHE/debootstrap.log" 2>&1 || { tail -n 30 "$CACHE/debootstrap.log"; fail "debootstrap"; }
    echo "$ROOTFS_STAMP" >"$ROOTFS.new/.edgehook-ci-stamp"
    rm -rf "$ROOTFS"
    mv "$ROOTFS.new" "$ROOTFS"
fi
flock -u 9
log "rootfs ready: $ROOTFS"

cp "$DEB" "$WORK/edgehook.deb"
cp "$HERE/receiver.py" "$WORK/"

# ---------------------------------------------------------------------------------------
log "== boot"
# A cgroup of our own per run, in every hierarchy systemd uses (cgroup v2, or v1's
# name=systemd plus the hybrid "unified" tree): nspawn puts the container below the cgroup
# it starts in (--keep-unit), and cleanup can kill whatever is left. With systemd as the
# host's PID 1 a transient scope would do the same; this host has none.
CG=edgehook-ci-$$
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    CGROUPS=(/sys/fs/cgroup/$CG)
else
    for root in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do
        [ -d "$root" ] && CGROUPS+=("$root/$CG")
    done
fi
for cg in "${CGROUPS[@]}"; do mkdir "$cg"; done
(
    for cg in "${CGROUPS[@]}"; do echo "$BASHPID" >"$cg/cgroup.procs"; done
    exec systemd-nspawn -D "$ROOTFS" -b --register=no --keep-unit --console=passive \
        --volatile=overlay --private-network --bind-ro="$WORK:/mnt/ci" -M edgehook-ci
) >"$WORK/nspawn.log" 2>&1 &
NSPAWN=$!
find_leader() {
    kill -0 "$NSPAWN" 2>/dev/null || { cat "$WORK/nspawn.log"; fail "systemd-nspawn exited"; }
    LEADER=$(pgrep -P "$NSPAWN" -x systemd | head -n1 || true)
    [ -n "$LEADER" ] && [ -S "/proc/$LEADER/root/run/systemd/private" ]
}
wait_for 60 "the container's systemd to listen on /run/systemd/private" find_leader
state=$(ct systemctl is-system-running --wait || true)
log "booted: PID 1 in the container is host pid $LEADER, system state '$state'"
case "$state" in
running | degraded) ;;
*) fail "container system state $state" ;;
esac

# ---------------------------------------------------------------------------------------
log "== install"
t0=$EPOCHREALTIME
ct dpkg -i /mnt/ci/edgehook.deb >"$WORK/dpkg.log" 2>&1 || { cat "$WORK/dpkg.log"; fail "dpkg -i"; }
log "dpkg -i took $(elapsed "$t0")s"
check "user edgehook exists (systemd-sysusers)" ct sh -c 'getent passwd edgehook >/dev/null'
check "units are enabled" ct systemctl is-enabled --quiet edgehook.service edgehook.socket edgehook-admin.socket
check "nothing started on first install (no endpoint configured yet)" \
    test "$(ct systemctl is-active edgehook.service edgehook.socket | sort -u)" = inactive
check "config is a conffile, root:edgehook 0640" \
    test "$(ct stat -c '%U:%G %a' /etc/edgehook/edgehook.toml)" = "root:edgehook 640"
check "man page and completions installed" ct test -f /usr/share/man/man8/edgehook.8.gz \
    -a -f /usr/share/bash-completion/completions/edgehook
exposure=$(ct systemd-analyze security edgehook.service 2>/dev/null | awk '/Overall exposure level/ { print $(NF-2) }')
check "systemd-analyze security in the container: exposure $exposure <= 2.0" \
    awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 2.0) }'

# ---------------------------------------------------------------------------------------
log "== receiver"
ct systemd-run --quiet --unit=receiver python3 /mnt/ci/receiver.py 8080 /run/receiver.log
wait_for 20 "the receiver on 127.0.0.1:8080" ct curl -fs -o /dev/null http://127.0.0.1:8080/

write_config() { # TOML on stdin → /etc/edgehook/edgehook.toml, keeping root:edgehook 0640
    ct sh -c 'cat >/etc/edgehook/edgehook.toml.new && chown root:edgehook /etc/edgehook/edgehook.toml.new &&
        chmod 0640 /etc/edgehook/edgehook.toml.new && mv /etc/edgehook/edgehook.toml.new /etc/edgehook/edgehook.toml'
}
ENDPOINT_RECEIVER='
[[endpoint]]
name = "receiver"
url = "http://127.0.0.1:8080/hook"
allow_plain_http = true
events = ["Test.*"]
'
ENDPOINT_FLAKY='
[[endpoint]]
name = "flaky"
url = "http://127.0.0.1:8080/flaky"
allow_plain_http = true
events = ["Test.flaky"]
[endpoint.retry]
initial = "300ms"
'
ENDPOINT_SLOW='
[[endpoint]]
name = "slow"
url = "http://127.0.0.1:8080/slow"
allow_plain_http = true
events = ["Test.slow"]
timeout = "2m"
'
printf '[daemon]\nshutdown_timeout = "5s"\n%s' "$ENDPOINT_RECEIVER" | write_config
# Debug level for the delivery worker, so "Delivered." (with STATUS) reaches the journal.
ct mkdir -p /etc/systemd/system/edgehook.service.d
printf '[Service]\nEnvironment=EDGEHOOK_LOG=info,edgehook::deliver=debug\n' |
    ct sh -c 'cat >/etc/systemd/system/edgehook.service.d/test-log.conf'
if [ "$SLOW" -gt 1 ]; then
    # Under qemu-user, systemd cannot set up what needs the emulator's cooperation: an IPC
    # namespace ("Failed to set up IPC namespacing: Input/output error") and seccomp
    # filters (qemu refuses them). The shipped hardening is checked on the native run.
    printf '[Service]\nPrivateIPC=no\nSystemCallFilter=\nSystemCallArchitectures=\nMemoryDenyWriteExecute=no\nRestrictNamespaces=no\nRestrictAddressFamilies=\nRestrictRealtime=no\nRestrictSUIDSGID=no\nLockPersonality=no\n' |
        ct sh -c 'cat >/etc/systemd/system/edgehook.service.d/qemu-user.conf'
fi
ct systemctl daemon-reload

send() { # id [type]: POST one event through the ingest socket, print the HTTP status
    ct curl -sS -o /dev/null -w '%{http_code}' --unix-socket /run/edgehook/edgehook.sock \
        -H 'Content-Type: application/json' \
        -d "{\"type\":\"${2:-Test.systemd}\",\"id\":\"$1\",\"data\":{\"via\":\"systemd test\"}}" \
        http://localhost/v1/events
}
received() { # id [path]: the receiver got a 200-answered POST with this webhook-id
    ct grep -F "\"webhook-id\": \"$1\"" /run/receiver.log 2>/dev/null | grep -F "\"path\": \"${2:-/hook}\"" |
        grep -qF '"status": 200'
}
prop() { ct systemctl show -P "$1" "${2:-edgehook.service}"; }

# ---------------------------------------------------------------------------------------
log "== start: active only after READY=1"
t0=$EPOCHREALTIME
ct systemctl start edgehook.service || fail "systemctl start edgehook"
log "systemctl start returned after $(elapsed "$t0")s"
check "active (running)" test "$(prop ActiveState)/$(prop SubState)" = active/running
check "the socket answers as soon as start returned (READY=1 came after listen)" \
    test "$(ct curl -sS -o /dev/null -w '%{http_code}' --unix-socket /run/edgehook/edgehook.sock http://localhost/v1/health)" = 200
check "runs as edgehook, not root" test "$(ct ps -o user= -p "$(prop MainPID)")" = edgehook
check "Type=notify, watchdog armed" test "$(prop Type) $(prop WatchdogUSec)" = "notify 3min"

# ---------------------------------------------------------------------------------------
log "== deliver"
check "event accepted through /run/edgehook/edgehook.sock (202)" test "$(send sd-1)" = 202
wait_for 20 "event sd-1 at the receiver" received sd-1
check "event sd-1 reached the receiver inside the container" received sd-1

# ---------------------------------------------------------------------------------------
log "== status"
status=$(prop StatusText)
log "StatusText: $status"
check "StatusText is the summary" test "$status" = "Accepting events on /run/edgehook/edgehook.sock; 1 endpoint(s)"

# ---------------------------------------------------------------------------------------
log "== reload"
pid=$(prop MainPID)
printf '[daemon]\nshutdown_timeout = "5s"\n%s%s' "$ENDPOINT_RECEIVER" "$ENDPOINT_FLAKY" | write_config
t0=$EPOCHREALTIME
ct systemctl reload edgehook.service || fail "systemctl reload edgehook"
# `systemctl reload` returns once SIGHUP is sent (systemd 252 has no notify-reload); the
# new config is live when STATUS= says so (edgehook sends RELOADING=1 … READY=1).
wait_for 20 "StatusText with 2 endpoints" sh -c "[ \"\$(nsenter -t $LEADER -m -u -i -n -p -C -r -w -- systemctl show -P StatusText edgehook)\" = 'Accepting events on /run/edgehook/edgehook.sock; 2 endpoint(s)' ]"
log "reload applied after $(elapsed "$t0")s"
check "reload kept the process (PID $pid)" test "$(prop MainPID)" = "$pid"
check "event for the new endpoint accepted" test "$(send sd-flaky Test.flaky)" = 202
wait_for 30 "event sd-flaky delivered to /flaky after one 503" received sd-flaky /flaky
check "new endpoint delivers (after a retry)" received sd-flaky /flaky
printf '[daemon]\nshutdown_timeout = "5s"\n[[endpoint]]\nname = "broken"\n' | write_config
ct systemctl reload edgehook.service
wait_for 20 "the refused reload in the journal" sh -c "nsenter -t $LEADER -m -u -i -n -p -C -r -w -- journalctl -u edgehook --no-pager -o cat | grep -q 'Reload refused'"
check "an invalid config is refused; the old one keeps running" \
    test "$(prop ActiveState) $(prop MainPID) $(prop StatusText)" = "active $pid Accepting events on /run/edgehook/edgehook.sock; 2 endpoint(s)"
printf '[daemon]\nshutdown_timeout = "5s"\n%s%s%s' "$ENDPOINT_RECEIVER" "$ENDPOINT_FLAKY" "$ENDPOINT_SLOW" | write_config
ct systemctl reload edgehook.service || fail "systemctl reload edgehook"
wait_for 20 "StatusText with 3 endpoints" sh -c "[ \"\$(nsenter -t $LEADER -m -u -i -n -p -C -r -w -- systemctl show -P StatusText edgehook)\" = 'Accepting events on /run/edgehook/edgehook.sock; 3 endpoint(s)' ]"

# ---------------------------------------------------------------------------------------
log "== journal"
ct journalctl -u edgehook.service -o json --no-pager >"$WORK/journal.json"
check "structured journal fields (EVENT_ID, ENDPOINT, STATUS, ATTEMPT, ERROR)" python3 - "$WORK/journal.json" <<'EOF'
import json, sys
entries = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
def find(**want):
    for e in entries:
        if all(e.get(k) == v for k, v in want.items()):
            return e
    sys.exit(f"no journal entry with {want}")
retry = find(EVENT_ID="sd-flaky", ENDPOINT="flaky", MESSAGE="Delivery failed, will retry.")
assert retry["PRIORITY"] == "4" and retry["ATTEMPT"] == "1" and "503" in retry["ERROR"], retry
done = find(EVENT_ID="sd-1", ENDPOINT="receiver", MESSAGE="Delivered.")
assert done["STATUS"] == "200", done
ready = find(SYSLOG_IDENTIFIER="edgehook", ENDPOINTS="1")
assert ready["MESSAGE"].endswith("ready."), ready
print(f"  e.g. EVENT_ID={retry['EVENT_ID']} ENDPOINT={retry['ENDPOINT']} ATTEMPT={retry['ATTEMPT']} ERROR={retry['ERROR']!r}")
EOF

# ---------------------------------------------------------------------------------------
log "== stop"
# One delivery in flight that the receiver holds for a minute: the stop gives it
# daemon.shutdown_timeout (5s here), then cuts it off; it stays queued.
check "event for the slow endpoint accepted" test "$(send slow-1 Test.slow)" = 202
held() { ct grep -F '"webhook-id": "slow-1"' /run/receiver.log 2>/dev/null | grep -qF '"status": "held"'; }
wait_for 20 "the slow delivery in flight" held
t0=$EPOCHREALTIME
ct systemctl stop edgehook.service || fail "systemctl stop edgehook"
took=$(elapsed "$t0")
log "systemctl stop took ${took}s with a delivery in flight (shutdown_timeout 5s, TimeoutStopSec=$(prop TimeoutStopUSec))"
check "stopped cleanly: exit status 0, result success" \
    test "$(prop ExecMainCode) $(prop ExecMainStatus) $(prop Result)" = "1 0 success"
check "the in-flight delivery got shutdown_timeout, and the stop no more (4.5s..10s)" \
    awk -v t="$took" 'BEGIN { exit !(t >= 4.5 && t < 10) }'
check "journal says Stopped cleanly" sh -c "nsenter -t $LEADER -m -u -i -n -p -C -r -w -- journalctl -u edgehook --no-pager -o cat | grep -q 'Stopped cleanly.'"

# A config that never reaches READY=1: systemd must not call the start a success.
printf '[daemon]\nstate_dir = "/proc/forbidden"\n' | write_config
check "a start that never sends READY=1 fails, never active" sh -c "! nsenter -t $LEADER -m -u -i -n -p -C -r -w -- systemctl start edgehook.service 2>/dev/null"
check "… and the unit is not active (failed, or waiting to retry)" test "$(prop ActiveState)" != active
ct systemctl stop edgehook.service
ct systemctl reset-failed edgehook.service
printf '[daemon]\nshutdown_timeout = "5s"\n%s%s%s' "$ENDPOINT_RECEIVER" "$ENDPOINT_FLAKY" "$ENDPOINT_SLOW" | write_config

# ---------------------------------------------------------------------------------------
log "== socket activation"
ct systemctl start edgehook.socket edgehook-admin.socket || fail "systemctl start edgehook.socket"
check "sockets listening, service not running" \
    test "$(prop ActiveState edgehook.socket) $(prop ActiveState)" = "active inactive"
t0=$EPOCHREALTIME
# 20 clients connect at once while nothing runs: the first starts edgehook, all wait in
# the backlog, none may be lost.
codes=$(ct sh -c 'for i in $(seq 1 20); do
    curl -sS -o /dev/null -w "%{http_code}\n" --unix-socket /run/edgehook/edgehook.sock \
        -H "Content-Type: application/json" -d "{\"type\":\"Test.act\",\"id\":\"act-$i\",\"data\":{}}" \
        http://localhost/v1/events &
    done; wait' | sort | uniq -c | tr -s ' ')
log "20 concurrent first events answered in $(elapsed "$t0")s: $codes"
check "all 20 answered 202" test "$codes" = " 20 202"
# edgehook serves the passed socket as soon as its queue is open, a moment before it sends
# READY=1, so the unit may still be "activating" when the last 202 arrives.
wait_for 10 "the socket-started service to report READY=1" sh -c "[ \"\$(nsenter -t $LEADER -m -u -i -n -p -C -r -w -- systemctl show -P ActiveState edgehook.service)\" = active ]"
check "the service was started by the socket" test "$(prop ActiveState)" = active
check "edgehook used the passed socket" sh -c "nsenter -t $LEADER -m -u -i -n -p -C -r -w -- journalctl -u edgehook --no-pager -o cat | grep -q 'Using the socket passed by systemd'"
all_received() { for i in $(seq 1 20); do received "act-$i" || return 1; done; }
wait_for 30 "all 20 activation events at the receiver" all_received
check "no event lost across activation" all_received
wait_for 20 "slow-1, cut off by the stop, delivered after the restart" received slow-1 /slow
check "the delivery cut off by the stop stayed queued and was sent again" received slow-1 /slow
ct systemctl stop edgehook.service 2>/dev/null # "… can still be activated by edgehook.socket"
check "the socket file survives a service stop" ct test -S /run/edgehook/edgehook.sock
check "a later connection activates it again (202)" test "$(send act-again)" = 202
wait_for 20 "act-again at the receiver" received act-again

# ---------------------------------------------------------------------------------------
log "== watchdog"
n0=$(prop NRestarts)
printf '[Service]\nEnvironment=EDGEHOOK_DEBUG_WEDGE_WRITER=1\nWatchdogSec=2s\n' |
    ct sh -c 'cat >/etc/systemd/system/edgehook.service.d/test-wedge.conf'
ct systemctl daemon-reload
t0=$EPOCHREALTIME
ct systemctl restart edgehook.service
restarted() { [ "$(prop NRestarts)" -gt "$n0" ]; }
wait_for 30 "systemd to restart the wedged edgehook" restarted
log "watchdog kill and restart after $(elapsed "$t0")s (WatchdogSec=2s for the test)"
check "systemd logged a watchdog timeout" sh -c "nsenter -t $LEADER -m -u -i -n -p -C -r -w -- journalctl -u edgehook --no-pager -o cat | grep -q 'Watchdog timeout'"
check "NRestarts went up ($n0 → $(prop NRestarts))" restarted
# A graceful stop would wait for the wedged writer until TimeoutStopSec: kill it.
ct systemctl kill --signal=SIGKILL edgehook.service
ct rm /etc/systemd/system/edgehook.service.d/test-wedge.conf
ct systemctl daemon-reload
ct systemctl reset-failed edgehook.service
ct systemctl restart edgehook.service || fail "systemctl restart edgehook (after the wedge)"
check "healthy again after the wedge hook is gone" test "$(send after-wedge)" = 202
wait_for 20 "after-wedge at the receiver" received after-wedge

# ---------------------------------------------------------------------------------------
log "== upgrade and purge"
pid=$(prop MainPID)
ct dpkg -i /mnt/ci/edgehook.deb >"$WORK/dpkg.log" 2>&1 || { cat "$WORK/dpkg.log"; fail "dpkg -i (upgrade)"; }
check "reinstall restarted the running service" \
    test "$(prop ActiveState)" = active -a "$(prop MainPID)" != "$pid"
check "the edited config survived (conffile)" ct grep -q 'name = "flaky"' /etc/edgehook/edgehook.toml
ct dpkg --purge edgehook >"$WORK/dpkg.log" 2>&1 || { cat "$WORK/dpkg.log"; fail "dpkg --purge"; }
check "purge stopped and removed everything" sh -c "
    [ \"\$(nsenter -t $LEADER -m -u -i -n -p -C -r -w -- systemctl show -P LoadState edgehook.service)\" = not-found ] &&
    ! nsenter -t $LEADER -m -u -i -n -p -C -r -w -- test -e /var/lib/edgehook &&
    ! nsenter -t $LEADER -m -u -i -n -p -C -r -w -- test -e /etc/edgehook/edgehook.toml &&
    ! nsenter -t $LEADER -m -u -i -n -p -C -r -w -- pgrep -x edgehook >/dev/null"

log "done in $(elapsed "$T_START")s"
echo "$PASSED passed, $FAILED failed"
