#!/usr/bin/env bash
# Put the images the catalog's tests run into the cluster's registry, all built on this machine
# by hack/image (images/README.md), and write $STATE/images.json: local name -> reference by
# digest, which the tier's one mapping (images/upstream-map.json) resolves upstream pins to.
#   attest-step  pushed as $CLUSTER_REG/attest-step/attest-step:VERSION, so containerd resolves
#                the catalog's ghcr.io/attest-step/attest-step@DIGEST there unchanged; it is
#                also Tekton's -shell-image (non-root, has /bin/sh)
#   tools, git, registry   $CLUSTER_REG/local/NAME
#   kaniko       only when KANIKO_SRC names a kaniko source checkout (never a stand-in)
# Needs the registry on $CLUSTER_REG (up.sh starts it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=hack/cluster/env.sh
. "$here/env.sh"
field() { /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
push() { # NAME DEST
  local layout="$root/build/image/$1/oci" tag
  tag="$(field "$root/build/image/$1/build.json" tag)"
  skopeo copy -q --dest-tls-verify=false "oci:$layout:$tag" "docker://$2"
  printf '%s\n' "$(field "$root/build/image/$1/build.json" digest)"
}
declare -A refs=()
for name in attest-step tools git registry; do
  (cd "$root" && make -s image IMAGE_NAME="$name" >/dev/null)
done
version="$(field "$root/build/image/attest-step/build.json" tag)"
digest="$(push attest-step "$CLUSTER_REG/attest-step/attest-step:$version")"
refs[attest-step]="$CLUSTER_REG/attest-step/attest-step@$digest"
skopeo copy -q --src-tls-verify=false --dest-tls-verify=false \
  "docker://$CLUSTER_REG/attest-step/attest-step@$digest" "docker://$CLUSTER_REG/base/shell:2"
for name in tools git registry; do
  refs[$name]="$CLUSTER_REG/local/$name@$(push "$name" "$CLUSTER_REG/local/$name:1")"
done
if [ -n "${KANIKO_SRC:-}" ]; then
  (cd "$root" && make -s image-kaniko KANIKO_SRC="$KANIKO_SRC" >/dev/null)
  refs[kaniko]="$CLUSTER_REG/local/kaniko@$(push kaniko "$CLUSTER_REG/local/kaniko:1")"
fi
{
  printf '{'
  sep=''
  for name in "${!refs[@]}"; do printf '%s"%s": "%s"' "$sep" "$name" "${refs[$name]}"; sep=', '; done
  printf '}\n'
} >"$STATE/images.json"
