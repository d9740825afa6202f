#!/usr/bin/env bash
# Prove that containers cannot reach the cloud metadata address 169.254.169.254,
# without sending any traffic off this machine: a fake "metadata" HTTP listener
# is put in a private network namespace behind a veth pair, the host's route to
# 169.254.169.254 is pointed at it, the host confirms it can reach it, and a
# container must fail to. Everything is torn down on exit.
# Exit 0: blocked. Exit 1: the container reached the listener. Exit 2: setup error.
#
#   RGRID_CHECK_IMAGE  image with python3 (default rgrid/python:3.11)
set -euo pipefail

IMAGE=${RGRID_CHECK_IMAGE:-rgrid/python:3.11}
META_IP=169.254.169.254
HOST_IP=169.254.169.253   # host end of the veth; link-local, never leaves the box
NS=rgrid-meta-$$
VH=rgmeta$$h; VH=${VH:0:15}
VN=rgmeta$$n; VN=${VN:0:15}
WORKDIR=$(mktemp -d /tmp/rgrid-metacheck.XXXXXX)
LISTENER_PID=""

log() { echo "check-metadata-block: $*"; }
fail_setup() { echo "check-metadata-block: SETUP ERROR: $*" >&2; exit 2; }

cleanup() {
  set +e
  [ -n "$LISTENER_PID" ] && kill "$LISTENER_PID" 2>/dev/null && wait "$LISTENER_PID" 2>/dev/null
  ip link del "$VH" 2>/dev/null          # also removes the peer and the host route
  ip netns del "$NS" 2>/dev/null
  rm -rf "$WORKDIR"
}
trap cleanup EXIT
trap 'exit 2' INT TERM

[ "$(id -u)" -eq 0 ] || fail_setup "must run as root"
for c in ip iptables docker; do command -v "$c" >/dev/null 2>&1 || fail_setup "$c not found"; done
docker image inspect "$IMAGE" >/dev/null 2>&1 || fail_setup "image $IMAGE not present (run infra/build-runtimes.sh)"
if command -v python3 >/dev/null 2>&1; then RUNTIME=python3
elif command -v node >/dev/null 2>&1; then RUNTIME=node
else fail_setup "need python3 or node on the host for the fake listener"; fi

# --- fake metadata service in its own namespace ------------------------------
ip netns add "$NS"
ip link add "$VH" type veth peer name "$VN"
ip link set "$VN" netns "$NS"
ip addr add "$HOST_IP/32" dev "$VH"
ip link set "$VH" up
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" ip addr add "$META_IP/32" dev "$VN"
ip netns exec "$NS" ip link set "$VN" up
ip netns exec "$NS" ip route add "$HOST_IP/32" dev "$VN"
ip route add "$META_IP/32" dev "$VH" src "$HOST_IP"

# Safety: never send a packet unless 169.254.169.254 is routed into our veth.
route_is_local() { ip route get "$META_IP" 2>/dev/null | grep -q "dev $VH "; }
route_is_local || fail_setup "route to $META_IP does not go via $VH: $(ip route get $META_IP 2>&1 | head -1)"

LOG="$WORKDIR/listener.log"
if [ "$RUNTIME" = python3 ]; then
  ip netns exec "$NS" python3 -u -m http.server 80 --bind "$META_IP" --directory "$WORKDIR" >"$LOG" 2>&1 &
else
  ip netns exec "$NS" node -e "require('http').createServer((q,s)=>{console.log('GET '+q.url+' from '+q.socket.remoteAddress);s.end('metadata\n')}).listen(80,'$META_IP')" >"$LOG" 2>&1 &
fi
LISTENER_PID=$!

host_fetch() {
  route_is_local || fail_setup "route to $META_IP changed during the check"
  if command -v curl >/dev/null 2>&1; then
    curl -s -o /dev/null --max-time 2 "http://$META_IP/"
  else
    "$RUNTIME" -e "fetch('http://$META_IP/',{signal:AbortSignal.timeout(2000)}).then(()=>process.exit(0),()=>process.exit(1))" 2>/dev/null \
      || python3 -c "import urllib.request;urllib.request.urlopen('http://$META_IP/',timeout=2)" 2>/dev/null
  fi
}

# --- 1. the host reaches the fake service (proves the setup works) -----------
ok=0
for _ in $(seq 1 20); do
  if host_fetch; then ok=1; break; fi
  sleep 0.25
done
[ "$ok" -eq 1 ] || { cat "$LOG" >&2; fail_setup "host could not reach the fake metadata listener"; }
log "host reaches fake metadata listener at $META_IP (expected)"

# --- 2. a container must not --------------------------------------------------
hits_before=$(grep -c 'GET ' "$LOG" || true)
rule_pkts() {
  iptables -L DOCKER-USER -v -x -n 2>/dev/null | awk -v ip="$META_IP" '$3=="REJECT" && $9==ip {s+=$1} END {print s+0}'
}
pkts_before=$(rule_pkts)
route_is_local || fail_setup "route to $META_IP changed before the container check"
set +e
out=$(docker run --rm "$IMAGE" python3 -c "
import urllib.request, sys
try:
    urllib.request.urlopen('http://$META_IP/', timeout=3)
    print('REACHED'); sys.exit(0)
except Exception as e:
    print('blocked:', e); sys.exit(1)
" 2>&1)
rc=$?
set -e
hits_after=$(grep -c 'GET ' "$LOG" || true)
pkts_after=$(rule_pkts)

if [ "$rc" -eq 0 ] || [ "$hits_after" -gt "$hits_before" ]; then
  echo "check-metadata-block: FAIL: container reached $META_IP ($out)" >&2
  exit 1
fi
if [ "$rc" -ne 1 ]; then
  fail_setup "container check did not run properly (exit $rc): $out"
fi
log "container blocked: ${out#blocked: }"
log "DOCKER-USER REJECT rule matched $((pkts_after - pkts_before)) packet(s)"
log "PASS"
