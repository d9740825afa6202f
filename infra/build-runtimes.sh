#!/usr/bin/env bash
# Build the rgrid runtime images locally from Debian bookworm packages, for
# machines that cannot reach a container registry. A minbase rootfs is
# debootstrapped once and cached; each image is a copy of it plus apt packages,
# imported with `docker import`. Idempotent: existing tags are skipped unless
# --force is given. On machines with a registry use infra/runtimes/*.Dockerfile.
#
# Usage: build-runtimes.sh [--force] [--rebuild-rootfs]
#   RGRID_ROOTFS_CACHE  cache dir (default /var/cache/rgrid-rootfs)
#   RGRID_DEBIAN_MIRROR override the mirror (default: from host apt sources)
set -euo pipefail

FORCE=0
REBUILD_ROOTFS=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --rebuild-rootfs) REBUILD_ROOTFS=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "build-runtimes: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

SUITE=bookworm
CACHE=${RGRID_ROOTFS_CACHE:-/var/cache/rgrid-rootfs}
BASE="$CACHE/$SUITE-minbase"
APT_ARCHIVES="$CACHE/apt-archives"   # shared .deb cache, bind-mounted into builds
WORK="$CACHE/work"

log() { echo "build-runtimes: $*"; }
die() { echo "build-runtimes: ERROR: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap and chroot need it)"
command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 \
  || die "docker engine not reachable; run infra/install-docker.sh first"
command -v debootstrap >/dev/null 2>&1 \
  || die "debootstrap not installed; run infra/install-docker.sh (it installs it)"

# --- mirror: first Debian (non-security) URI in the host's apt sources --------
detect_mirror() {
  local m=""
  m=$(grep -hsE '^[[:space:]]*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '{for (i = 2; i <= NF; i++) print $i}' | grep -E '/debian/?$' | head -n1 || true)
  if [ -z "$m" ]; then
    m=$(grep -hsE '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
          | sed -E 's/\[[^]]*\]//' | awk '{print $2}' | grep -E '/debian/?$' | head -n1 || true)
  fi
  echo "${m:-http://deb.debian.org/debian}"
}
MIRROR=${RGRID_DEBIAN_MIRROR:-$(detect_mirror)}
MIRROR=${MIRROR%/}
SECURITY_MIRROR=${RGRID_DEBIAN_SECURITY_MIRROR:-${MIRROR%/debian}/debian-security}

# --- chroot helpers ------------------------------------------------------------
MOUNTED=()
mount_chroot() {
  local root=$1
  mount -t proc proc "$root/proc"; MOUNTED+=("$root/proc")
  mount --bind /dev "$root/dev"; MOUNTED+=("$root/dev")
  mkdir -p "$APT_ARCHIVES/partial" "$root/var/cache/apt/archives"
  mount --bind "$APT_ARCHIVES" "$root/var/cache/apt/archives"; MOUNTED+=("$root/var/cache/apt/archives")
  cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
}
umount_chroot() {
  local i
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
    umount -l "${MOUNTED[$i]}" 2>/dev/null || true
  done
  MOUNTED=()
}
cleanup() { umount_chroot; }
trap cleanup EXIT
trap 'exit 130' INT TERM

in_chroot() {
  local root=$1; shift
  chroot "$root" /usr/bin/env -i DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

# --- base rootfs (built once, cached) -----------------------------------------
build_base() {
  if [ -f "$BASE/.rgrid-complete" ] && [ "$REBUILD_ROOTFS" -eq 0 ]; then
    log "reusing cached base rootfs $BASE"
    return
  fi
  local t0=$SECONDS tmp="$BASE.tmp"
  log "debootstrapping $SUITE minbase from $MIRROR into $BASE (one-time)"
  rm -rf "$tmp"
  mkdir -p "$CACHE" "$APT_ARCHIVES/partial"
  debootstrap --variant=minbase --cache-dir="$APT_ARCHIVES" "$SUITE" "$tmp" "$MIRROR" \
    >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -n 30 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (see $CACHE/debootstrap.log)"; }
  cat >"$tmp/etc/apt/sources.list" <<SRC
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
SRC
  # Keep images small: no docs/man/info, no recommends.
  cat >"$tmp/etc/dpkg/dpkg.cfg.d/01-rgrid-nodoc" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
CFG
  cat >"$tmp/etc/apt/apt.conf.d/01-rgrid" <<'CFG'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
CFG
  # Never start services inside the build chroot.
  printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"; chmod +x "$tmp/usr/sbin/policy-rc.d"
  groupadd -R "$tmp" -g 1000 rgrid
  useradd -R "$tmp" -u 1000 -g 1000 -m -d /home/rgrid -s /bin/bash rgrid
  install -d -o 1000 -g 1000 -m 0755 "$tmp/work"
  rm -rf "$BASE"
  touch "$tmp/.rgrid-complete"
  mv "$tmp" "$BASE"
  log "base rootfs ready in $((SECONDS - t0))s"
}

# --- one image ---------------------------------------------------------------
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

build_image() {
  local tag=$1; shift
  local pkgs=("$@")
  if image_exists "$tag" && [ "$FORCE" -eq 0 ]; then
    echo "SKIP  $tag (already present; --force to rebuild)"
    return
  fi
  local t0=$SECONDS
  local root old_id
  old_id=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
  root="$WORK/$(echo "$tag" | tr '/:' '__')"
  rm -rf "$root"; mkdir -p "$WORK"
  cp -a "$BASE" "$root"
  rm -f "$root/.rgrid-complete"
  mount_chroot "$root"
  local blog="$WORK/$(basename "$root").log"
  {
    in_chroot "$root" apt-get update -q &&
    in_chroot "$root" apt-get -y -q upgrade &&
    in_chroot "$root" apt-get install -y -q "${pkgs[@]}"
  } >"$blog" 2>&1 || { tail -n 30 "$blog" >&2; die "apt-get in chroot failed for $tag (see $blog)"; }
  [ -e "$root/usr/bin/python" ] || ln -s python3 "$root/usr/bin/python"
  umount_chroot
  # Strip caches and build-only bits.
  rm -f "$root/usr/sbin/policy-rc.d"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/* \
         "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old "$root"/var/log/* \
         "$root"/tmp/* "$root"/var/tmp/* "$root"/root/.cache
  mkdir -p "$root/var/cache/apt/archives/partial"
  find "$root/usr" -depth -name __pycache__ -type d -exec rm -rf {} + 2>/dev/null || true
  : >"$root/etc/resolv.conf"
  : >"$root/etc/hostname"
  install -d -o 1000 -g 1000 -m 0755 "$root/work"
  chmod 1777 "$root/tmp"
  tar --numeric-owner -C "$root" -c . | docker import \
    --change 'WORKDIR /work' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV PYTHONUNBUFFERED=1' \
    --change 'ENV PIP_BREAK_SYSTEM_PACKAGES=1' \
    --change 'ENV HOME=/tmp' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --message "rgrid runtime built from Debian $SUITE packages by infra/build-runtimes.sh" \
    - "$tag" >/dev/null || die "docker import failed for $tag"
  rm -rf "$root" "$blog"
  # --force: drop the image the tag used to point at, unless a container uses it.
  if [ -n "$old_id" ] && [ "$old_id" != "$(docker image inspect --format '{{.Id}}' "$tag")" ]; then
    docker rmi "$old_id" >/dev/null 2>&1 || true
  fi
  local size
  size=$(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0fMB", $1/1000/1000}')
  echo "BUILT $tag size=$size time=$((SECONDS - t0))s"
}

# --- main ----------------------------------------------------------------------
TAGS=(rgrid/python:3.11 rgrid/python:3.11-datascience rgrid/ffmpeg)
need_build=0
for t in "${TAGS[@]}"; do image_exists "$t" && [ "$FORCE" -eq 0 ] || need_build=1; done
[ "$need_build" -eq 1 ] && build_base

PY=(python3 python3-pip python3-venv ca-certificates python-is-python3)
build_image rgrid/python:3.11 "${PY[@]}"
build_image rgrid/python:3.11-datascience "${PY[@]}" python3-numpy python3-pandas python3-sklearn
build_image rgrid/ffmpeg ffmpeg python3 ca-certificates python-is-python3

echo "SKIP  rgrid/python:3.10 rgrid/node:20 rgrid/python:3.11-llm: not buildable from Debian $SUITE packages (need a registry: infra/runtimes/*.Dockerfile)"
