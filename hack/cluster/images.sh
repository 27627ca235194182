#!/usr/bin/env bash
# Put the images the catalog's tests run into the cluster's registry, all built on this machine
# by hack/image (images/README.md), and write $STATE/images.json: local name -> reference by
# digest, which the tier's one mapping (images/upstream-map.json) resolves upstream pins to.
#   attest-step  pushed as $CLUSTER_REG/attest-step/attest-step:VERSION, so containerd resolves
#                the catalog's ghcr.io/attest-step/attest-step@DIGEST there unchanged; it is
#                also Tekton's -shell-image (non-root, has /bin/sh)
#   tools, git, registry   $CLUSTER_REG/local/NAME
#   kaniko       only when KANIKO_SRC names a kaniko source checkout (never a stand-in)
#   opa          pushed as $CLUSTER_REG/attest-step/opa:1.22.4, so the catalog's
#                ghcr.io/attest-step/opa@DIGEST resolves there unchanged (hack/image/opa.py)
# An image is rebuilt only when its inputs changed (lock and recipe; kaniko: source commit and
# recipe) or the registry lost it: the warm path pushes nothing. Needs the registry on
# $CLUSTER_REG (up.sh starts it).
set -euo pipefail
# A failed push inside "$(...)" must stop the script, not record a digest it never pushed.
shopt -s inherit_errexit
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
# A build is skipped when its inputs are unchanged (stamp) and the registry still holds the
# digest it gave: the lock pins every input of a locked build, including attest-step's wheel.
inputs_key() { # NAME
  if [ "$1" = kaniko ]; then
    { git -C "$KANIKO_SRC" rev-parse HEAD; cat "$root/hack/image/kaniko.py"; } | sha256sum | cut -c1-16
  elif [ "$1" = opa ]; then
    { go version; cat "$root/hack/image/opa.py" "$root/hack/image/ocilayout.py"; } | sha256sum | cut -c1-16
  else
    cat "$root/images/$1/image.lock" "$root"/hack/image/*.py | sha256sum | cut -c1-16
  fi
}
cached() { # NAME REPO: print the digest of a previous build with the same inputs, if still served
  local key digest
  [ -s "$CACHE/stamps/image-$1" ] || return 1
  read -r key digest <"$CACHE/stamps/image-$1"
  [ "$key" = "$(inputs_key "$1")" ] || return 1
  curl -sfI -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
    "http://$CLUSTER_REG/v2/$2/manifests/$digest" >/dev/null || return 1
  printf '%s\n' "$digest"
}
ensure() { # NAME REPO TAG: build (unless cached) and push; print the digest
  local digest
  if digest="$(cached "$1" "$2")"; then
    printf '%s\n' "$digest"
    return 0
  fi
  if [ "$1" = kaniko ]; then
    (cd "$root" && make -s image-kaniko KANIKO_SRC="$KANIKO_SRC" >/dev/null)
  elif [ "$1" = opa ]; then
    (cd "$root" && make -s image-opa >/dev/null)
  else
    (cd "$root" && make -s image IMAGE_NAME="$1" >/dev/null)
  fi
  digest="$(push "$1" "$CLUSTER_REG/$2:$3")"
  printf '%s %s\n' "$(inputs_key "$1")" "$digest" >"$CACHE/stamps/image-$1"
  printf '%s\n' "$digest"
}
declare -A refs=()
mkdir -p "$CACHE/stamps"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/pyproject.toml")"
digest="$(ensure attest-step attest-step/attest-step "$version")"
refs[attest-step]="$CLUSTER_REG/attest-step/attest-step@$digest"
skopeo copy -q --src-tls-verify=false --dest-tls-verify=false \
  "docker://$CLUSTER_REG/attest-step/attest-step@$digest" "docker://$CLUSTER_REG/base/shell:2"
refs[opa]="$CLUSTER_REG/attest-step/opa@$(ensure opa attest-step/opa 1.22.4)"
for name in tools git registry; do
  refs[$name]="$CLUSTER_REG/local/$name@$(ensure "$name" "local/$name" 1)"
done
if [ -n "${KANIKO_SRC:-}" ]; then
  refs[kaniko]="$CLUSTER_REG/local/kaniko@$(ensure kaniko local/kaniko 1)"
fi
{
  printf '{'
  sep=''
  for name in "${!refs[@]}"; do printf '%s"%s": "%s"' "$sep" "$name" "${refs[$name]}"; sep=', '; done
  printf '}\n'
} >"$STATE/images.json"
