#!/usr/bin/env bash
# `make test-compat`: run the whole test suite inside Debian roots with newer QGIS releases.
#   trixie: Debian 13, QGIS 3.40 LTR, Python 3.13      sid: Debian unstable, QGIS 3.44, Python 3.14
# The roots are built once with debootstrap and cached OUTSIDE the checkout in $COMPAT_CACHE (so later CI
# runs on the same machine reuse them). Every build step leaves a marker file when it has finished; an
# interrupted build resumes at the first unfinished step (a half-done debootstrap is started afresh).
# Usage: tests/compat/run_roots.sh [build|test|all|bench] [ROOT...]   (default: all trixie sid)
#   bench: `python -m benchmarks $BENCH_ARGS` on the host, then in each root, one table side by side
# Each root's run prints one line "QGIS <version>: <pytest summary>"; numbers for the cross-root check
# (tests/compat/test_cross_root.py) are written to $COMPAT_OUT/<root>.json.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
COMPAT_CACHE=${COMPAT_CACHE:-/var/cache/huijiao-compat}
COMPAT_OUT=${COMPAT_OUT:-$REPO/build/compat}
ACTION=${1:-all}
shift || true
ROOTS=("$@")
[ ${#ROOTS[@]} -gt 0 ] || ROOTS=(trixie sid)

# The Debian mirror this machine already uses (first http(s) URI of the apt sources).
MIRROR=${COMPAT_MIRROR:-$(grep -rhoE '^(URIs:[[:space:]]*|deb[[:space:]]+)https?://[^[:space:]]*/debian/?' \
  /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | grep -oE 'https?://[^[:space:]]*' | head -n1 || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

# Debian packages inside the roots: the Makefile's APT_PACKAGES (read from it, one list for the project),
# less the names that change between releases (the Qt 5 tools and Debian 12's PostGIS package are resolved
# per root below), plus npm (the Makefile installs it on demand for tus-js-client) and what a minbase lacks.
makefile_apt_packages() {
  sed -n '/^APT_PACKAGES[[:space:]]*:\?=/,/[^\\]$/p' "$REPO/Makefile" | sed 's/^APT_PACKAGES[[:space:]]*:\?=//; s/\\$//' |
    tr -s ' \t\n' ' '
}
ROOT_PACKAGES=""
for p in $(makefile_apt_packages); do
  case $p in qttools5-dev-tools | pyqt5-dev-tools | postgresql-[0-9]*-postgis-*) ;; *) ROOT_PACKAGES+=" $p" ;; esac
done
[[ $ROOT_PACKAGES == *" qgis "* ]] || { echo "no APT_PACKAGES read from $REPO/Makefile" >&2 && exit 2; }
ROOT_PACKAGES+=" npm ca-certificates git make locales"
# tus-js-client for tests/interop, the version the Makefile installs (kept in the root, linked into the copy)
TUS_JS_SPEC=$(grep -oE 'tus-js-client@[0-9][0-9.]*' "$REPO/Makefile" | head -n1)

log() { echo "[compat $(date -u +%H:%M:%S)] $*" >&2; }

need_host_tools() {
  command -v debootstrap >/dev/null || {
    log "installing debootstrap"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
  }
}

# --- mounts (always undone, also on failure) ---------------------------------------------------------
MOUNTED=()
mount_root() {
  local root=$1 m
  for m in proc dev dev/pts dev/shm; do
    mkdir -p "$root/$m"
    mountpoint -q "$root/$m" && continue
    case $m in
      proc) mount -t proc proc "$root/proc" ;;
      *) mount --bind "/$m" "$root/$m" ;;
    esac
    MOUNTED+=("$root/$m")
  done
}
umount_all() {
  local i
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
    umount -l "${MOUNTED[$i]}" 2>/dev/null || true
  done
  MOUNTED=()
}
trap umount_all EXIT
trap 'exit 130' INT TERM # (the EXIT trap then unmounts)

in_root() { # run a bash script in the root
  local root=$1
  shift
  chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive /bin/bash -euo pipefail -c "$*"
}

# A marker holds the hash of the step's inputs (package list, pins): a step is redone when they change.
# A step not done (or done for other inputs) loses its marker before it runs again: a step that then fails
# halfway (a venv removed, its pip install failed) is redone next time, never taken as done.
step_done() {
  local marker=$COMPAT_CACHE/$1.steps/$2
  [ -f "$marker" ] && [ "$(cat "$marker")" = "${3:-}" ] && return 0
  rm -f "$marker"
  return 1
}
mark_done() { mkdir -p "$COMPAT_CACHE/$1.steps" && printf '%s' "${3:-}" >"$COMPAT_CACHE/$1.steps/$2"; }
inputs_hash() { printf '%s\n' "$@" | sha256sum | cut -d' ' -f1; }

copy_host_network_config() {
  local root=$1
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  [ -f /etc/pip.conf ] && cp /etc/pip.conf "$root/etc/pip.conf"
  mkdir -p "$root/usr/local/share/ca-certificates"
  local crt
  for crt in /usr/local/share/ca-certificates/*.crt; do
    [ -e "$crt" ] && cp "$crt" "$root/usr/local/share/ca-certificates/"
  done
  return 0
}

# Per-root pins that differ from pyproject's dev list: pins without wheels for the root's Python, and
# shapely, which Debian ships as 2.x there (python3-shapely, the library the desktop uses). Format:
# "name==version" replaces the pin of that name; "-name" drops it (Debian's package is used instead).
# Checked against the dev pins of 2026-12 (pip download --only-binary): hypothesis, dask[distributed],
# schemathesis, tuspy and uvloop 0.23.0 have wheels for Python 3.13 and 3.14 and need no override.
overrides_for() {
  case $1 in
    trixie) echo "-shapely" ;;
    # no Python 3.14 wheels of psycopg-binary 3.2.6 nor httptools 0.6.4 (optional for uvicorn): Debian's
    # psycopg; SQLAlchemy 2.0.40 has only its pure-Python wheel for 3.14: Debian's compiled build
    # the benchmark peers (GeoPandas 0.14 needs fiona, which has no 3.14 wheel) only where wheels exist:
    # `make bench-compat` runs in trixie
    sid) echo "-shapely -httptools -psycopg -sqlalchemy -geopandas -pandas -pyogrio -duckdb -duckdb-extension-spatial" ;;
  esac
}
extra_debs_for() {
  case $1 in
    trixie) echo "python3-shapely" ;;
    sid) echo "python3-shapely python3-psycopg python3-sqlalchemy" ;;
  esac
}

pip_requirements() { # pyproject's pins (dev, or the list named $2) with the root's overrides applied
  local name=$1 group=${2:-dev}
  python3 - "$REPO/pyproject.toml" "$(overrides_for "$name")" "$group" <<'PY'
import re, sys, tomllib
pins = tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"][sys.argv[3]]
key = lambda s: re.split(r"[\[=<>!~ ]", s.lstrip("-"), maxsplit=1)[0].lower()
over = {key(o): o for o in sys.argv[2].split()}
out = [over.get(key(p), p) for p in pins]
out += [o for k, o in over.items() if k not in {key(p) for p in pins} and sys.argv[3] == "dev"]
print(" ".join(p for p in out if not p.startswith("-")))
PY
}

build_root() {
  local name=$1 root=$COMPAT_CACHE/$1
  local h_packages h_venv h_qt6
  h_packages=$(inputs_hash $ROOT_PACKAGES)
  h_venv=$(inputs_hash "$(extra_debs_for "$name")" "$(pip_requirements "$name")")
  h_qt6=$(inputs_hash "$(pip_requirements "$name" qt6-check)")
  mkdir -p "$COMPAT_CACHE"
  if ! step_done "$name" debootstrap; then
    log "$name: debootstrap from $MIRROR"
    rm -rf "$root" "$COMPAT_CACHE/$name.steps"
    debootstrap --variant=minbase "$name" "$root" "$MIRROR" >"$COMPAT_CACHE/$name.debootstrap.log" 2>&1 || {
      tail -n 20 "$COMPAT_CACHE/$name.debootstrap.log" >&2
      return 1
    }
    mark_done "$name" debootstrap
  fi
  copy_host_network_config "$root"
  # No service starts during apt-get install (the suite starts PostgreSQL itself).
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d" && chmod +x "$root/usr/sbin/policy-rc.d"
  mount_root "$root"
  if ! step_done "$name" certs; then
    log "$name: CA certificates"
    # sid's Release files can be past their Valid-Until on a snapshot mirror
    in_root "$root" "apt-get -o Acquire::Check-Valid-Until=false update -qq &&
      apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null && update-ca-certificates >/dev/null"
    mark_done "$name" certs
  fi
  if ! step_done "$name" packages "$h_packages"; then
    log "$name: apt packages (QGIS and test tools)"
    in_root "$root" "apt-get -o Acquire::Check-Valid-Until=false update -qq
      apt-get install -y -qq --no-install-recommends $ROOT_PACKAGES >/dev/null
      # lrelease: Qt 5 tools where they still exist, else Qt 6's
      apt-get install -y -qq --no-install-recommends qttools5-dev-tools pyqt5-dev-tools >/dev/null 2>&1 ||
        apt-get install -y -qq --no-install-recommends qt6-l10n-tools >/dev/null
      pgver=\$(ls /usr/lib/postgresql | sort -n | tail -n1)
      apt-get install -y -qq --no-install-recommends postgresql-\$pgver-postgis-3 >/dev/null
      apt-get clean" >"$COMPAT_CACHE/$name.apt.log" 2>&1 || {
      tail -n 30 "$COMPAT_CACHE/$name.apt.log" >&2
      return 1
    }
    mark_done "$name" packages "$h_packages"
  fi
  if ! step_done "$name" venv "$h_venv"; then
    log "$name: venv with the pinned dev dependencies"
    in_root "$root" "apt-get install -y -qq --no-install-recommends $(extra_debs_for "$name") >/dev/null &&
      rm -rf /opt/venv && python3 -m venv --system-site-packages /opt/venv &&
      /opt/venv/bin/pip install -q --disable-pip-version-check $(pip_requirements "$name")" \
      >"$COMPAT_CACHE/$name.pip.log" 2>&1 || {
      tail -n 30 "$COMPAT_CACHE/$name.pip.log" >&2
      return 1
    }
    mark_done "$name" venv "$h_venv"
  fi
  if ! step_done "$name" venv-qt6 "$h_qt6"; then
    log "$name: PyQt6 venv for the Qt 6 name check"
    in_root "$root" "rm -rf /opt/venv-qt6 && python3 -m venv /opt/venv-qt6 &&
      /opt/venv-qt6/bin/pip install -q --disable-pip-version-check $(pip_requirements "$name" qt6-check)" \
      >"$COMPAT_CACHE/$name.pip-qt6.log" 2>&1 || {
      tail -n 30 "$COMPAT_CACHE/$name.pip-qt6.log" >&2
      return 1
    }
    mark_done "$name" venv-qt6 "$h_qt6"
  fi
  if ! step_done "$name" tus-js "$TUS_JS_SPEC"; then
    log "$name: $TUS_JS_SPEC for the interoperability tests"
    in_root "$root" "rm -rf /opt/interop && mkdir -p /opt/interop &&
      npm install --prefix /opt/interop --no-save --no-audit --no-fund $TUS_JS_SPEC" \
      >"$COMPAT_CACHE/$name.npm.log" 2>&1 || {
      tail -n 30 "$COMPAT_CACHE/$name.npm.log" >&2
      return 1
    }
    mark_done "$name" tus-js "$TUS_JS_SPEC"
  fi
  umount_all
  log "$name: root ready"
}

# --- running the suite -------------------------------------------------------------------------------
copy_checkout() { # the checkout's tracked and new (not ignored) files, no build products
  local dest=$1
  rm -rf "$dest" && mkdir -p "$dest"
  (cd "$REPO" && git ls-files -z --cached --others --exclude-standard -- . ':!.venv' ':!.venv-qt6' |
    xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' | tar --null -T - -cf -) | tar -C "$dest" -xf -
}

test_root() {
  local name=$1 root=$COMPAT_CACHE/$1 t0 rc=0
  build_root "$name" || return 1 # nothing to do when every step's marker is current
  copy_host_network_config "$root"
  mount_root "$root"
  copy_checkout "$root/work/huijiao"
  mkdir -p "$COMPAT_OUT"
  t0=$(date +%s)
  in_root "$root" "cd /work/huijiao
    pgver=\$(ls /usr/lib/postgresql | sort -n | tail -n1)
    PGVER=\$pgver bash tests/pg_setup.sh >/dev/null
    # the root's own cluster: the host's PostgreSQL may hold 5432 (a chroot shares the network), and then
    # pg_createcluster gave this one the next free port
    pgport=\$(pg_lsclusters -h | awk -v v=\$pgver '\$1 == v && \$2 == \"main\" {print \$3}')
    for _ in \$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p \$pgport && break; sleep 1; done
    ln -sfn /opt/venv .venv && ln -sfn /opt/venv-qt6 .venv-qt6 && ln -sfn /opt/interop/node_modules tests/interop/
    lrelease=\$(command -v lrelease || ls /usr/lib/qt6/bin/lrelease /usr/lib/x86_64-linux-gnu/qt6/bin/lrelease 2>/dev/null | head -n1)
    mkdir -p huijiao_plugin/i18n && \$lrelease -silent i18n/huijiao_zh_CN.ts -qm huijiao_plugin/i18n/huijiao_zh_CN.qm
    # Debian's pyproj looks for its data beside sys.prefix (the venv) or the proj tool (not installed)
    export PROJ_DATA=/usr/share/proj
    export QT_QPA_PLATFORM=offscreen HUIJIAO_TEST_PG=postgresql://huijiao:huijiao@127.0.0.1:\$pgport/huijiao_test
    /opt/venv/bin/python -m pytest -q -p no:cacheprovider ${PYTEST_ARGS:-}" >"$COMPAT_OUT/$name.log" 2>&1 || rc=$?
  # areas and preset outputs on the host's county, for the comparison with the host's own
  mkdir -p "$root/work/compat-in" && cp "$COMPAT_OUT/county.gpkg" "$root/work/compat-in/"
  in_root "$root" "cd /work/huijiao && QT_QPA_PLATFORM=offscreen /opt/venv/bin/python -m tests.compat.numbers write \
    /work/compat-in/county.gpkg /work/compat-in/$name.json" >>"$COMPAT_OUT/$name.log" 2>&1 || rc=1
  cp "$root/work/compat-in/$name.json" "$COMPAT_OUT/" 2>/dev/null || true
  in_root "$root" "pgver=\$(ls /usr/lib/postgresql | sort -n | tail -n1); pg_ctlcluster \$pgver main stop" \
    >/dev/null 2>&1 || true
  umount_all
  local qv summary
  qv=$(in_root "$root" "/usr/bin/python3 -c 'from qgis.core import Qgis; print(Qgis.version().split(\"-\")[0])'" \
    2>/dev/null || echo "?")
  summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed|error|skipped)|(passed|failed|error|skipped).* in [0-9.]+s' "$COMPAT_OUT/$name.log" |
    tail -n1 | sed 's/=//g; s/^ *//; s/ *$//')
  echo "QGIS $qv ($name): ${summary:-no pytest summary, see $COMPAT_OUT/$name.log} [$(($(date +%s) - t0)) s]"
  # PostgreSQL and shapely 2 are in every root: the README's optional components are there, so any skip is
  # a failure here (e.g. a test that parsed a version string)
  [ -n "$summary" ] || rc=1
  if [[ $summary == *skipped* ]]; then
    grep -E '^SKIPPED' "$COMPAT_OUT/$name.log" >&2 || true
    rc=1
  fi
  return $rc
}

# `make bench-compat`: the benchmarks inside a root, written as JSON beside the host's run (benchmarks.versions)
bench_root() {
  local name=$1 root=$COMPAT_CACHE/$1 rc=0
  build_root "$name" || return 1
  copy_host_network_config "$root"
  mount_root "$root"
  copy_checkout "$root/work/huijiao"
  mkdir -p "$COMPAT_OUT"
  log "$name: benchmarks ${BENCH_ARGS:-}"
  in_root "$root" "cd /work/huijiao && ln -sfn /opt/venv .venv
    export PROJ_DATA=/usr/share/proj QT_QPA_PLATFORM=offscreen
    /opt/venv/bin/python -m benchmarks ${BENCH_ARGS:-} --json /work/bench-$name.json" \
    >"$COMPAT_OUT/bench-$name.log" 2>&1 || rc=$?
  cp "$root/work/bench-$name.json" "$COMPAT_OUT/" 2>/dev/null || rc=1
  umount_all
  [ $rc -eq 0 ] || tail -n 20 "$COMPAT_OUT/bench-$name.log" >&2
  return $rc
}
bench_host() {
  mkdir -p "$COMPAT_OUT"
  log "host: benchmarks ${BENCH_ARGS:-}"
  # shellcheck disable=SC2086 # BENCH_ARGS is a list of options
  (cd "$REPO" && QT_QPA_PLATFORM=offscreen .venv/bin/python -m benchmarks ${BENCH_ARGS:-} \
    --json "$COMPAT_OUT/bench-host.json") >"$COMPAT_OUT/bench-host.log" 2>&1 || {
    tail -n 20 "$COMPAT_OUT/bench-host.log" >&2
    return 1
  }
}
bench_table() {
  local files=("$COMPAT_OUT/bench-host.json") r
  for r in "${ROOTS[@]}"; do files+=("$COMPAT_OUT/bench-$r.json"); done
  (cd "$REPO" && .venv/bin/python -m benchmarks.versions "${files[@]}") | tee "$COMPAT_OUT/bench-versions.md"
}

# The host's numbers (the reference, QGIS of the host) on a county generated here once.
host_numbers() {
  local py=$REPO/.venv/bin/python
  [ -x "$py" ] || py=python3
  mkdir -p "$COMPAT_OUT"
  [ -f "$COMPAT_OUT/county.gpkg" ] ||
    (cd "$REPO" && "$py" -m tests.datagen --out "$COMPAT_OUT" --size 400 --seed 2024 --formats gpkg --quiet)
  (cd "$REPO" && QT_QPA_PLATFORM=offscreen "$py" -m tests.compat.numbers write "$COMPAT_OUT/county.gpkg" \
    "$COMPAT_OUT/host.json") >/dev/null 2>"$COMPAT_OUT/host-numbers.log"
}
compare_numbers() {
  local py=$REPO/.venv/bin/python files=() r
  [ -x "$py" ] || py=python3
  for r in "${ROOTS[@]}"; do
    [ -f "$COMPAT_OUT/$r.json" ] && files+=("$COMPAT_OUT/$r.json")
  done
  [ ${#files[@]} -gt 0 ] || { echo "no numbers written by the roots" && return 1; }
  (cd "$REPO" && "$py" -m tests.compat.numbers compare "$COMPAT_OUT/host.json" "${files[@]}")
}

main() {
  need_host_tools
  status=0
  if [ "$ACTION" = bench ]; then
    bench_host || exit 1
    for r in "${ROOTS[@]}"; do bench_root "$r" || status=1; done
    [ $status -eq 0 ] && bench_table
    exit $status
  fi
  if [ "$ACTION" != build ]; then
    host_numbers || { echo "the host's reference numbers failed: see $COMPAT_OUT/host-numbers.log" && exit 1; }
    for r in "${ROOTS[@]}"; do rm -f "$COMPAT_OUT/$r.json"; done
  fi
  for r in "${ROOTS[@]}"; do
    case $ACTION in
      build) build_root "$r" || status=1 ;;
      test) test_root "$r" || status=1 ;;
      all) test_root "$r" || status=1 ;; # builds what is missing or out of date first
      *) echo "usage: $0 [build|test|all|bench] [trixie|sid ...]" >&2 && exit 2 ;;
    esac
  done
  if [ "$ACTION" != build ]; then
    compare_numbers || status=1
  fi
  exit $status
}

# the whole file is read before anything runs (editing it during a long build is then safe)
main "$@"
exit
