#!/usr/bin/env bash
# Podman for the image build and the simulator's real job mode, installed and configured by the
# project itself (CI starts from a fresh machine and reaches no container registry).
#
#   hack/podman.sh install   podman, runc, mmdebstrap (apt) if missing; write containers.conf
#   hack/podman.sh bases     Debian base images, built once with mmdebstrap and cached in podman
#   hack/podman.sh standin   the simulator's job stand-in image (cached)
#   hack/podman.sh image     the operator image from the Dockerfile, FROM the Debian bases
#   hack/podman.sh all       all of the above
#   hack/podman.sh env       print the environment to use podman as the project does
#
# Every image is built from Debian packages (bookworm: python3 3.11) and `podman import`; an
# image that exists is reused. Debian's crun refuses this kind of host's cgroups, so the engine
# runs runc with the cgroupfs manager and no default ulimits (containers.conf below).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${SKAHA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/skaha-operator}"
CONF_DIR="$CACHE/podman"
CONF="$CONF_DIR/containers.conf"
SUITE="${DEBIAN_SUITE:-bookworm}"
BASE_IMAGE="${BASE_IMAGE:-localhost/skaha-operator/debian-python:3.11-$SUITE}"
BUILD_BASE_IMAGE="${BUILD_BASE_IMAGE:-localhost/skaha-operator/debian-python-build:3.11-$SUITE}"
STANDIN_IMAGE="${STANDIN_IMAGE:-localhost/skaha-operator/job-standin:$SUITE-2}"
IMAGE="${IMAGE:-skaha-operator:dev}"
PYTHON="${PYTHON:-.venv/bin/python}"
WHEELHOUSE="build/wheelhouse"

log() { echo "[podman $(date +%H:%M:%S)] $*" >&2; }

apt_install() {
  log "apt-get install $*"
  if [ ! -f "$CACHE/.apt-updated" ] || [ -z "$(find "$CACHE/.apt-updated" -mmin -720 2>/dev/null)" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    mkdir -p "$CACHE" && touch "$CACHE/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

cmd_install() {
  local missing=()
  command -v podman >/dev/null || missing+=(podman)
  [ -x /usr/sbin/runc ] || command -v runc >/dev/null || missing+=(runc)
  command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
  # Rootless podman on a laptop needs these; as root they are harmless.
  command -v newuidmap >/dev/null || missing+=(uidmap)
  command -v slirp4netns >/dev/null || missing+=(slirp4netns)
  command -v fuse-overlayfs >/dev/null || missing+=(fuse-overlayfs)
  if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
      echo "podman.sh: missing ${missing[*]}; install them with your package manager" >&2
      exit 1
    fi
    apt_install "${missing[@]}"
  fi
  mkdir -p "$CONF_DIR"
  local runtime
  runtime="$(command -v runc || echo /usr/sbin/runc)"
  cat >"$CONF.tmp" <<EOF
# Written by hack/podman.sh: runc (crun refuses cgroup v1 hosts of this kind), cgroupfs, and no
# default ulimits (raising nofile is not permitted here).
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"

[engine.runtimes]
runc = ["$runtime"]
EOF
  mv "$CONF.tmp" "$CONF"
  export CONTAINERS_CONF="$CONF"
  podman info --format '{{.Host.OCIRuntime.Name}} {{.Store.GraphDriverName}}' >/dev/null
  log "podman $(podman --version | awk '{print $3}') ready; CONTAINERS_CONF=$CONF"
}

engine() {
  export CONTAINERS_CONF="${CONTAINERS_CONF:-$CONF}"
  [ -f "$CONTAINERS_CONF" ] || cmd_install
  podman "$@"
}

# debian_image NAME PACKAGES... : mmdebstrap a root file system and import it, unless NAME exists
# and was made from the same recipe (suite, sources, packages: the label below).
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DEBIAN_SECURITY="${DEBIAN_SECURITY:-http://deb.debian.org/debian-security}"
RECIPE_LABEL="io.skaha-operator.recipe"
debian_image() {
  local name="$1"
  shift
  local sources=(
    "deb $DEBIAN_MIRROR $SUITE main"
    "deb $DEBIAN_MIRROR $SUITE-updates main"
    "deb $DEBIAN_SECURITY $SUITE-security main"
  )
  local recipe
  recipe="$(printf '%s\n' "v1" "$SUITE" "${sources[@]}" "$@" | sha256sum | cut -c1-16)"
  if engine image exists "$name" && [ "${SKAHA_REBUILD_IMAGES:-0}" != 1 ] &&
    [ "$(engine image inspect --format "{{index .Labels \"$RECIPE_LABEL\"}}" "$name")" = "$recipe" ]; then
    log "reuse $name"
    return 0
  fi
  local work
  work="$(mktemp -d "${TMPDIR:-/tmp}/skaha-mmdebstrap.XXXXXX")"
  log "mmdebstrap $SUITE (with -updates and -security): $* -> $name"
  local include
  include="$(IFS=,; echo "$*")"
  # --variant=apt: Essential packages and apt, then only what is named; docs, man pages and
  # apt lists are dropped to keep the image small. The merged-usr hook lays /usr out itself, so
  # the usrmerge package (and the perl it pulls in) is not installed.
  mmdebstrap --quiet --variant=apt --include="$include" \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    "$SUITE" "$work/rootfs.tar" "${sources[@]}" >/dev/null || { rm -rf "$work"; return 1; }
  engine import --quiet \
    --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL $RECIPE_LABEL=$recipe" \
    "$work/rootfs.tar" "$name" >/dev/null || { rm -rf "$work"; return 1; }
  rm -rf "$work"
  log "built $name ($(engine image inspect --format '{{.Size}}' "$name") bytes)"
}

cmd_bases() {
  # Runtime base: the interpreter only (no pip, no compiler). Build base: plus venv (ensurepip).
  debian_image "$BASE_IMAGE" python3 ca-certificates passwd
  debian_image "$BUILD_BASE_IMAGE" python3 python3-venv ca-certificates passwd
}

cmd_standin() {
  # What the operator's jobs need from a science image: sh, coreutils, curl, python3 with venv
  # and pip. The simulator runs every headless session on it (simulator/containers.py).
  debian_image "$STANDIN_IMAGE" coreutils curl python3 python-is-python3 python3-venv python3-pip ca-certificates
}

cmd_wheelhouse() {
  # The build container reaches no index: the host's pip (PyPI) fills a wheelhouse that the
  # build mounts. Same Debian release and Python as the base, so the wheels fit.
  [ -x "$PYTHON" ] || { echo "podman.sh: $PYTHON missing; run make venv" >&2; exit 1; }
  mkdir -p "$WHEELHOUSE"
  log "wheelhouse $WHEELHOUSE"
  "$PYTHON" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$WHEELHOUSE" .
  "$PYTHON" -m pip download --quiet --disable-pip-version-check --dest "$WHEELHOUSE" \
    --only-binary=:all: "setuptools>=69" wheel
}

cmd_image() {
  cmd_bases
  cmd_wheelhouse
  log "build $IMAGE FROM $BASE_IMAGE"
  local start=$SECONDS
  engine build --quiet --layers=false --tag "$IMAGE" \
    --build-arg "PYTHON_IMAGE=$BASE_IMAGE" --build-arg "BUILD_IMAGE=$BUILD_BASE_IMAGE" \
    --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=/wheels \
    --volume "$PWD/$WHEELHOUSE:/wheels:ro" \
    --network none -f Dockerfile . >/dev/null
  log "built $IMAGE in $((SECONDS - start)) s: $(engine image inspect --format '{{.Size}}' "$IMAGE") bytes"
}

cmd_env() {
  echo "export CONTAINERS_CONF=$CONF"
}

case "${1:-all}" in
  install) cmd_install ;;
  bases) cmd_bases ;;
  standin) cmd_standin ;;
  wheelhouse) cmd_wheelhouse ;;
  image) cmd_image ;;
  env) cmd_env ;;
  all) cmd_install && cmd_bases && cmd_standin && cmd_image ;;
  *) echo "usage: $0 install|bases|standin|wheelhouse|image|env|all" >&2; exit 2 ;;
esac
