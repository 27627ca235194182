#!/usr/bin/env bash
# Push the tier's base images to $REG, made here from Debian packages (no pulls):
#   $REG/base/static:1   Debian's static catatonit as /pause: the pod sandbox image and ko's base
# Reproducible (umoci, fixed timestamps). Needs the registry running.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/cluster/env.sh
. "$here/env.sh"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if skopeo inspect --tls-verify=false "docker://$REG/base/static:1" >/dev/null 2>&1; then exit 0; fi
mkdir -p "$work/root"
install -m 0755 /usr/bin/catatonit "$work/root/pause"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/root" -cf "$work/layer.tar" .
umoci init --layout "$work/oci"
umoci new --image "$work/oci:1"
umoci raw add-layer --no-history --image "$work/oci:1" "$work/layer.tar"
umoci config --no-history --image "$work/oci:1" --created 1970-01-01T00:00:00Z --os linux \
  --architecture amd64 --config.user 65535:65535 --config.entrypoint /pause --config.cmd -P
skopeo copy -q --dest-tls-verify=false "oci:$work/oci:1" "docker://$REG/base/static:1"
