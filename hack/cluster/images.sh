#!/usr/bin/env bash
# Put the images the catalog's tests run into the cluster's registry, all built on this machine:
#   attest-step/attest-step:VERSION  the step image of `make image` (the digest the catalog pins);
#                                    containerd resolves ghcr.io/attest-step/attest-step@DIGEST here
#   tools/debian:2, base/shell:2     Debian bookworm's essential set + git + ca-certificates: the
#                                    stand-in for the catalog's alpine and alpine/git tool steps
#                                    (tests/cluster/image-map.json) and Tekton's -shell-image
# Needs the registry on $CLUSTER_REG (up.sh starts it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=hack/cluster/env.sh
. "$here/env.sh"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/pyproject.toml" | head -n1)"
want="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["imageDigest"])' "$root/images/attest-step/image.lock.json")"
have() { skopeo inspect --tls-verify=false "docker://$CLUSTER_REG/$1" >/dev/null 2>&1; }

if ! have "attest-step/attest-step@$want"; then
  if [ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["digest"])' "$root/build/image/build.json" 2>/dev/null)" != "$want" ]; then
    (cd "$root" && make -s image)
  fi
  skopeo copy -q --dest-tls-verify=false "oci:$root/build/image/oci:$version" "docker://$CLUSTER_REG/attest-step/attest-step:$version"
fi

if ! have tools/debian:2; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  SOURCE_DATE_EPOCH=1700000000 mmdebstrap --mode=root --variant=essential --format=tar --quiet \
    --include=git,ca-certificates --dpkgopt=path-exclude=/usr/share/doc/* \
    --dpkgopt=path-exclude=/usr/share/man/* --dpkgopt=path-exclude=/usr/share/locale/* \
    bookworm "$work/root.tar" "deb http://deb.debian.org/debian bookworm main"
  umoci init --layout "$work/oci"
  umoci new --image "$work/oci:1"
  umoci raw add-layer --no-history --image "$work/oci:1" "$work/root.tar"
  umoci config --no-history --image "$work/oci:1" --created 2023-11-14T22:13:20Z --os linux --architecture amd64 \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --config.cmd /bin/sh \
    --config.user 65532:65532 --config.env HOME=/tmp
  skopeo copy -q --dest-tls-verify=false "oci:$work/oci:1" "docker://$CLUSTER_REG/tools/debian:2"
fi
have base/shell:2 || skopeo copy -q --src-tls-verify=false --dest-tls-verify=false \
  "docker://$CLUSTER_REG/tools/debian:2" "docker://$CLUSTER_REG/base/shell:2"
