#!/usr/bin/env bash
# Copy a Tekton component's config/ into DEST for `ko resolve`, adapted to the local cluster.
#   hack/cluster/release-config.sh tekton|chains|policy-controller SRC DEST
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/cluster/env.sh
. "$here/env.sh"
name=$1 src=$2 dest=$3
case "$name" in
  tekton)
    cp "$src"/100-namespace/*.yaml "$src"/200-*.yaml "$src"/201-*.yaml "$src"/300-crds/*.yaml \
      "$src"/500-webhooks.yaml "$src"/clusterrole-aggregate-*.yaml "$src"/config-*.yaml \
      "$src"/controller.yaml "$src"/webhook.yaml "$dest"/
    mkdir -p "$dest/resolvers"
    cp "$src"/resolvers/*.yaml "$dest/resolvers/"
    chmod -R u+w "$dest"
    # Upstream runs the resolvers under /sbin/tini from its tini-git base image, which cannot be
    # pulled here; ko builds them onto the local static base, so run the binary itself. The
    # bundles and cluster resolvers need neither tini nor git (docs/e2e.md).
    sed -i -E '/^ *- \/sbin\/tini$/{N;s#^ *- /sbin/tini\n *- --$#__DROPPED__#}' "$dest/resolvers/resolvers-deployment.yaml"
    sed -i '/__DROPPED__/d' "$dest/resolvers/resolvers-deployment.yaml"
    ! grep -q /sbin/tini "$dest/resolvers/resolvers-deployment.yaml"
    # Script steps' init container uses -shell-image; point it at the local shell image.
    sed -i -E "s#\"-shell-image\", \"[^\"]+\"#\"-shell-image\", \"$REG/base/shell:2\"#" "$dest/controller.yaml"
    grep -q "$REG/base/shell:2" "$dest/controller.yaml"
    ;;
  chains)
    cp -r "$src"/. "$dest"/
    chmod -R u+w "$dest"
    ;;
  policy-controller)
    # Upstream's kustomization lists what to install; kustomization.yaml itself and the Go
    # placeholder are not Kubernetes objects.
    for f in $(sed -n 's/^ *- \([0-9a-z-]*\.yaml\)$/\1/p' "$src/kustomization.yaml") webhook.yaml; do
      cp "$src/$f" "$dest/"
    done
    chmod -R u+w "$dest"
    # No TUF: nothing here reaches the public Sigstore instance (key-based policies only).
    sed -i -E 's#^( *)args: \[$#\1args: ["--disable-tuf",#' "$dest/webhook.yaml"
    grep -q -- '--disable-tuf' "$dest/webhook.yaml"
    ;;
  *) echo "release-config.sh: unknown component $name" >&2; exit 2 ;;
esac
