#!/usr/bin/env bash
# Build the local control plane (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
# etcd), helm and kwok from the Go module proxy at pinned versions, into a cache outside git.
#
# Kubernetes is built from the k8s.io/kubernetes module. That module's go.mod replaces its
# staging modules (k8s.io/api, k8s.io/apiserver, ...) with local directories that are not part of
# the module zip, so `go install k8s.io/kubernetes/cmd/...@v1.x` refuses it. We build it from a
# throwaway wrapper module that requires k8s.io/kubernetes and points each staging module at its
# published v0.x twin. etcd is built the same way from go.etcd.io/etcd/server/v3 (its main package),
# helm and kwok with a plain `go install` (kwok fakes nodes and pod status for the chart test;
# kube-scheduler binds the pods to those fake nodes: kwok itself does not schedule).
#
# Idempotent: binaries that already exist and report the pinned version are kept.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
CACHE="${SKAHA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/skaha-operator}"
BIN="$CACHE/bin"
WORK="$CACHE/build"
mkdir -p "$BIN" "$WORK"

log() { printf '[controlplane %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
have() { [ -x "$BIN/$1" ] && [ -f "$BIN/$1.version" ] && [ "$(cat "$BIN/$1.version")" = "$2" ]; }

start=$(date +%s)
export GOFLAGS="${GOFLAGS:--buildvcs=false}" CGO_ENABLED=0 GOTOOLCHAIN=local

build_kubernetes() {
  local targets=() t
  for t in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    have "$t" "$K8S_VERSION" || targets+=("$t")
  done
  [ ${#targets[@]} -eq 0 ] && { log "kubernetes $K8S_VERSION: cached"; return; }
  local dir="$WORK/k8s-$K8S_VERSION" minor="${K8S_VERSION#v1.}"
  local staging_version="v0.${minor}"
  mkdir -p "$dir"
  log "kubernetes $K8S_VERSION: resolving the module and its staging twins ($staging_version)"
  (
    cd "$dir"
    [ -f go.mod ] || go mod init skaha-operator.local/k8s-build >/dev/null 2>&1
    cat > tools.go <<GO
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
    local kdir
    kdir=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
    # Every staging module named in the upstream go.mod's replace block gets its published twin.
    local reps
    reps=$(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$kdir/go.mod")
    go mod edit -require="k8s.io/kubernetes@$K8S_VERSION"
    for m in $reps; do go mod edit -replace="$m=$m@$staging_version"; done
    log "kubernetes: downloading dependencies (go mod tidy)"
    go mod tidy >/dev/null
  )
  local pkg=k8s.io/component-base/version cpkg=k8s.io/client-go/pkg/version
  local ld="-s -w"
  for p in $pkg $cpkg; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=${minor%%.*}"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  for t in "${targets[@]}"; do
    log "kubernetes: building $t (several minutes on 2 cores when cold)"
    (cd "$dir" && go build -trimpath -ldflags "$ld" -o "$BIN/$t" "k8s.io/kubernetes/cmd/$t")
    echo "$K8S_VERSION" > "$BIN/$t.version"
  done
}

build_etcd() {
  have etcd "$ETCD_VERSION" && { log "etcd $ETCD_VERSION: cached"; return; }
  local dir="$WORK/etcd-$ETCD_VERSION"
  mkdir -p "$dir"
  log "etcd $ETCD_VERSION: building go.etcd.io/etcd/server/v3"
  (
    cd "$dir"
    [ -f go.mod ] || go mod init skaha-operator.local/etcd-build >/dev/null 2>&1
    go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
    go mod tidy >/dev/null
    go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
  )
  echo "$ETCD_VERSION" > "$BIN/etcd.version"
}

build_helm() {
  have helm "$HELM_VERSION" && { log "helm $HELM_VERSION: cached"; return; }
  log "helm $HELM_VERSION: go install helm.sh/helm/v3/cmd/helm"
  # Like helm's own Makefile: the default Kubernetes version (used by `helm template` and
  # `helm lint` without a cluster) follows the client-go helm is built with, else it is v1.20.
  local moddir cgo minor v=helm.sh/helm/v3/internal/version ld
  moddir=$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  cgo=$(sed -n 's#^\s*k8s.io/client-go v0\.\([0-9]*\)\..*#\1#p' "$moddir/go.mod")
  minor="${cgo:-20}"
  ld="-s -w -X $v.version=$HELM_VERSION -X $v.gitTreeState=clean"
  for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ld+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$minor"
  done
  GOBIN="$BIN" go install -trimpath -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  echo "$HELM_VERSION" > "$BIN/helm.version"
}

build_kwok() {
  have kwok "$KWOK_VERSION" && { log "kwok $KWOK_VERSION: cached"; return; }
  log "kwok $KWOK_VERSION: go install sigs.k8s.io/kwok/cmd/kwok"
  GOBIN="$BIN" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  echo "$KWOK_VERSION" > "$BIN/kwok.version"
}

case "${1:-all}" in
  all) build_etcd; build_kubernetes; build_helm; build_kwok ;;
  etcd) build_etcd ;;
  kubernetes) build_kubernetes ;;
  helm) build_helm ;;
  kwok) build_kwok ;;
  *) echo "usage: $0 [all|etcd|kubernetes|helm|kwok]" >&2; exit 2 ;;
esac
log "done in $(( $(date +%s) - start ))s; binaries in $BIN"
