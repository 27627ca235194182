#!/usr/bin/env bash
# Build (once; cached) everything the real-cluster tier runs, from Debian packages and the Go
# module proxy only: Kubernetes and etcd, crictl, ko, Tekton Pipelines and Chains (ko, onto a
# local static base), tkn, Sigstore policy-controller's admission webhook (ko, same base).
# Nothing is pulled from the internet.
#
#   hack/cluster/build.sh           caches in $ATTEST_CLUSTER_CACHE (default /var/cache/attest-step-cluster)
#
# Outputs: $CACHE/bin/{kubelet,kube-apiserver,...,etcd,crictl,ko,tkn}, $CACHE/tekton/release.yaml,
# $CACHE/chains/release.yaml, $CACHE/policy-controller/release.yaml, images in the registry data dir $CACHE/registry (served by up.sh).
# Each part is skipped when its stamp matches its pin, so a second run is warm.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/cluster/env.sh
. "$here/env.sh"
mkdir -p "$CACHE"/{bin,mod,build,stamps,logs}
export GOMODCACHE="$CACHE/mod" GOCACHE="$CACHE/build" GOFLAGS=-mod=mod GOTOOLCHAIN=local

log() { printf 'cluster-build: %s\n' "$*" >&2; }
stamped() { [ "$(cat "$CACHE/stamps/$1" 2>/dev/null)" = "$2" ]; }
stamp() { printf '%s\n' "$2" >"$CACHE/stamps/$1"; }

# --- Debian packages the tier runs (only the missing ones; no service is started) ---
missing=()
for pair in containerd:containerd runc:runc catatonit:catatonit nft:nftables \
  docker-registry:docker-registry /usr/lib/cni/bridge:containernetworking-plugins; do
  tool=${pair%%:*} package=${pair#*:}
  if [ "${tool#/}" != "$tool" ]; then [ -e "$tool" ] || missing+=("$package")
  else command -v "$tool" >/dev/null 2>&1 || missing+=("$package"); fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- Kubernetes, etcd (wrapper module hack/cluster/k8s pins k8s.io/kubernetes) ---
k8s_pin="$(sha256sum "$here/k8s/go.mod" "$here/k8s/go.sum" | sha256sum | cut -c1-16)"
if ! stamped k8s "$k8s_pin"; then
  log "building Kubernetes $K8S_VERSION and etcd (cold: about 6 min)"
  minor="$(echo "$K8S_VERSION" | cut -d. -f2)"
  ldflags="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  (cd "$here/k8s" && go build -ldflags "$ldflags" -o "$CACHE/bin/" \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl ./etcd)
  stamp k8s "$k8s_pin"
fi

# --- Go tools pinned by version ---
gotool() {
  local name=$1 module=$2 version=$3
  stamped "$name" "$version" && [ -x "$CACHE/bin/$name" ] && return 0
  log "go install $module@$version"
  GOBIN="$CACHE/bin" go install "$module@$version"
  stamp "$name" "$version"
}
gotool ko github.com/google/ko "$KO_VERSION"
gotool crictl sigs.k8s.io/cri-tools/cmd/crictl "$CRICTL_VERSION"

# --- tkn (its go.mod has replace directives, so a wrapper module) ---
tkn_pin="$(sha256sum "$here/tkn/go.mod" "$here/tkn/go.sum" | sha256sum | cut -c1-16)"
if ! stamped tkn "$tkn_pin"; then
  log "building tkn $TKN_VERSION"
  (cd "$here/tkn" && go build -o "$CACHE/bin/tkn" github.com/tektoncd/cli/cmd/tkn)
  stamp tkn "$tkn_pin"
fi

# --- the local registry and a static base image for ko ---
if "$here/registry.sh" running; then
  ATTEST_CLUSTER_REGISTRY="$CLUSTER_REG" # the cluster is up: its registry serves the same data
else
  "$here/registry.sh" start
  trap '"$here/registry.sh" stop' EXIT
fi
export ATTEST_CLUSTER_REGISTRY="${ATTEST_CLUSTER_REGISTRY:-$REG}"
REG="$ATTEST_CLUSTER_REGISTRY"
"$here/base-images.sh"

# --- Tekton Pipelines and Chains release YAML, images built by ko onto the local base ---
release() {
  local name=$1 dir=$2 module=$3
  local pin out
  pin="$(sha256sum "$here/$dir/go.mod" "$here/$dir/go.sum" "$here/build.sh" "$here/release-config.sh" | sha256sum | cut -c1-16)"
  out="$CACHE/$name/release.yaml"
  stamped "$name" "$pin" && [ -s "$out" ] && return 0
  log "building $name images with ko (cold: several minutes)"
  local src cfg
  # go list -m names the module's directory only once it is in the module cache (cold cache).
  (cd "$here/$dir" && go mod download "$module")
  src="$(cd "$here/$dir" && go list -m -f '{{.Dir}}' "$module")"
  [ -d "$src/config" ] || { log "no config/ in $module's source ($src)"; exit 1; }
  cfg="$CACHE/$name/config"
  rm -rf "$cfg" && mkdir -p "$cfg"
  "$here/release-config.sh" "$name" "$src/config" "$cfg"
  (cd "$here/$dir" && KO_DOCKER_REPO="$REG/$name" KO_DEFAULTBASEIMAGE="$REG/base/static:1" \
    SOURCE_DATE_EPOCH=1700000000 "$CACHE/bin/ko" resolve --insecure-registry --base-import-paths --platform=linux/amd64 --recursive -f "$cfg" >"$out.tmp")
  mv "$out.tmp" "$out"
  stamp "$name" "$pin"
}
release tekton tekton github.com/tektoncd/pipeline
release chains chains github.com/tektoncd/chains
grep -q "^require github.com/sigstore/policy-controller $POLICY_CONTROLLER_VERSION\$" "$here/policy-controller/go.mod" ||
  { log "policy-controller/go.mod does not pin $POLICY_CONTROLLER_VERSION (env.sh)"; exit 1; }
release policy-controller policy-controller github.com/sigstore/policy-controller
log "done; binaries in $CACHE/bin"
