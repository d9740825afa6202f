#!/usr/bin/env bash
# Install and start a Docker engine on a Debian box without systemd (CI, dev
# containers), then block containers from reaching the cloud metadata service.
# Idempotent: a running engine is left alone; the firewall rule is added once.
set -euo pipefail

METADATA_IP=169.254.169.254
DOCKERD_LOG=${DOCKERD_LOG:-/tmp/dockerd.log}
WAIT_SECONDS=${DOCKER_WAIT_SECONDS:-60}

log() { echo "install-docker: $*"; }
die() { echo "install-docker: ERROR: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (apt-get, dockerd and iptables need it)"

docker_up() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

install_packages() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script supports Debian/Ubuntu only"
  log "installing docker.io iptables iproute2 debootstrap via apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed (is http://deb.debian.org reachable?)"
  apt-get install -y -qq --no-install-recommends \
    docker.io iptables iproute2 debootstrap ca-certificates >/dev/null \
    || die "apt-get install docker.io iptables iproute2 debootstrap failed"
}

start_dockerd() {
  command -v dockerd >/dev/null 2>&1 || die "dockerd not found after install"
  if pgrep -x dockerd >/dev/null 2>&1; then
    log "dockerd process exists but 'docker info' fails; waiting for it"
  else
    log "starting dockerd in the background (log: $DOCKERD_LOG)"
    nohup dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
  fi
  local i
  for ((i = 0; i < WAIT_SECONDS; i++)); do
    docker_up && { log "docker engine is up after ${i}s"; return 0; }
    sleep 1
  done
  echo "---- last lines of $DOCKERD_LOG ----" >&2
  tail -n 30 "$DOCKERD_LOG" >&2 2>/dev/null || true
  die "docker engine did not answer 'docker info' within ${WAIT_SECONDS}s"
}

block_metadata() {
  command -v iptables >/dev/null 2>&1 || die "iptables not found; cannot block $METADATA_IP"
  # dockerd creates DOCKER-USER at startup; create it ourselves if it is missing
  # (e.g. dockerd running with --iptables=false) so the rule still lands.
  if ! iptables -n -L DOCKER-USER >/dev/null 2>&1; then
    iptables -N DOCKER-USER || die "cannot create iptables chain DOCKER-USER"
    iptables -C FORWARD -j DOCKER-USER 2>/dev/null || iptables -I FORWARD 1 -j DOCKER-USER
  fi
  # DOCKER-USER sits in FORWARD, so this only affects routed (container) traffic;
  # the host's own access to the metadata service is untouched.
  local rule=(-d "$METADATA_IP/32" -j REJECT --reject-with icmp-port-unreachable)
  if iptables -C DOCKER-USER "${rule[@]}" 2>/dev/null; then
    log "DOCKER-USER already rejects container traffic to $METADATA_IP"
  else
    iptables -I DOCKER-USER 1 "${rule[@]}" || die "failed to insert DOCKER-USER rule for $METADATA_IP"
    log "added DOCKER-USER rule rejecting container traffic to $METADATA_IP"
  fi
}

if docker_up; then
  log "docker engine already running ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo unknown))"
else
  if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1 \
     || ! command -v iptables >/dev/null 2>&1 || ! command -v ip >/dev/null 2>&1; then
    install_packages
  fi
  start_dockerd
fi
# build-runtimes.sh needs debootstrap even when docker was already present.
command -v debootstrap >/dev/null 2>&1 || install_packages
block_metadata
