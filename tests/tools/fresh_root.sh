#!/usr/bin/env bash
# `make test-fresh`: prove that the project's own commands install everything it needs.
# A Debian 12 (bookworm) --variant=minbase root gets only make, git and ca-certificates (the root is cached
# outside the repository and copied afresh for every run); a clean clone of the committed tree (HEAD, not
# the working tree) is put in it and `make test` runs there as root. Run as root on a Debian host with
# debootstrap (`fresh_root.sh base` only builds the cached root). Not part of CI: the apt/pip downloads and the whole suite take a long time.
set -euo pipefail

REPO=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
CACHE=${HUIJIAO_FRESH_CACHE:-/var/cache/huijiao-fresh}
SUITE=bookworm
MIRROR=${HUIJIAO_FRESH_MIRROR:-http://deb.debian.org/debian}
BASE=$CACHE/$SUITE-base
ROOT=$CACHE/$SUITE-run
LOG=$CACHE/last-run.log

[ "$(id -u)" = 0 ] || { echo "test-fresh must run as root (debootstrap, chroot, mount)"; exit 1; }
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; }
mkdir -p "$CACHE"

# What apt and pip inside need to reach the registries from this host: resolver, pip settings, extra CAs.
copy_host_network_config() {
  local root=$1
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  [ -f /etc/pip.conf ] && cp /etc/pip.conf "$root/etc/pip.conf"
  mkdir -p "$root/usr/local/share/ca-certificates"
  for crt in /usr/local/share/ca-certificates/*.crt; do
    [ -e "$crt" ] && cp "$crt" "$root/usr/local/share/ca-certificates/"
  done
  return 0
}

# --- the cached base root: debootstrap + make, git, ca-certificates (resumable: built aside, then moved)
if [ ! -f "$BASE/.huijiao-base-ok" ]; then
  rm -rf "$BASE.partial"
  echo "Building the Debian $SUITE minbase root in $BASE (once)"
  debootstrap --variant=minbase "$SUITE" "$BASE.partial" "$MIRROR"
  cat >"$BASE.partial/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
  # A chroot has no init: package scripts must not start daemons that would outlive the run.
  printf '#!/bin/sh\nexit 101\n' >"$BASE.partial/usr/sbin/policy-rc.d"
  chmod +x "$BASE.partial/usr/sbin/policy-rc.d"
  copy_host_network_config "$BASE.partial"
  chroot "$BASE.partial" /usr/bin/env DEBIAN_FRONTEND=noninteractive bash -c \
    "apt-get update -qq && apt-get install -y -qq --no-install-recommends make git ca-certificates \
     && update-ca-certificates >/dev/null && apt-get clean"
  touch "$BASE.partial/.huijiao-base-ok"
  rm -rf "$BASE"
  mv "$BASE.partial" "$BASE"
fi
[ "${1:-}" = base ] && exit 0

# --- a fresh copy for this run, with proc and /dev mounted (unmounted on any exit)
cleanup() {
  if [ -x "$ROOT/usr/bin/pg_ctlcluster" ]; then
    chroot "$ROOT" pg_ctlcluster 15 main stop >/dev/null 2>&1 || true
  fi
  umount -R -l "$ROOT/dev" 2>/dev/null || true
  umount -l "$ROOT/proc" 2>/dev/null || true
}
trap cleanup EXIT
cleanup
rm -rf "$ROOT"
cp -a "$BASE" "$ROOT"
copy_host_network_config "$ROOT"
chroot "$ROOT" update-ca-certificates >/dev/null
mount -t proc proc "$ROOT/proc"
mount --rbind /dev "$ROOT/dev"
mount --make-rslave "$ROOT/dev"

COMMIT=$(git -C "$REPO" rev-parse HEAD)
git clone -q --no-hardlinks "$REPO" "$ROOT/root/huijiao"
git -C "$ROOT/root/huijiao" checkout -q --detach "$COMMIT"

in_root() {
  chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

start=$(date +%s)
set +e
{
  echo "test-fresh: Debian $SUITE minbase + make git ca-certificates, commit $COMMIT"
  # The project's own set-up first, so the PostgreSQL port can be read from the cluster it created:
  # on a host that already runs PostgreSQL on 5432 the root's cluster gets the next free port.
  in_root bash -c "cd /root/huijiao && make venv" &&
    port=$(in_root pg_conftool -s 15 main show port 2>/dev/null || echo 5432) &&
    echo "test-fresh: root's PostgreSQL cluster on port $port" &&
    in_root bash -c "cd /root/huijiao && \
      HUIJIAO_TEST_PG=postgresql://huijiao:huijiao@127.0.0.1:$port/huijiao_test make test"
} 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
set -e
mins=$(( ($(date +%s) - start + 59) / 60 ))
summary=$(grep -E '^=+ .*(passed|failed|error).* =+$' "$LOG" | tail -1)
echo "test-fresh: exit $rc in ${mins} min (set-up + make test) — ${summary:-no pytest summary}; log: $LOG"
exit "$rc"
