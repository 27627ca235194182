#!/usr/bin/env bash
# Write containerd's config for the tier into DIR: runc with cgroupfs, OOM score clamped, the
# pause image from the local registry, and registry hosts that send pulls of the catalog's
# upstream registries (ghcr.io, docker.io) and build.sh's loopback address to the local registry. Images pinned by
# digest resolve unchanged when the local registry holds them under the same repository.
#   hack/cluster/containerd-config.sh DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/cluster/env.sh
. "$here/env.sh"
dir=$1
for local in "$REG" "$CLUSTER_REG"; do
  mkdir -p "$dir/certs.d/$local"
  printf 'server = "http://%s"\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' \
    "$local" "$CLUSTER_REG" >"$dir/certs.d/$local/hosts.toml"
done
for upstream in ghcr.io docker.io; do
  mkdir -p "$dir/certs.d/$upstream"
  printf 'server = "https://%s"\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' \
    "$upstream" "$CLUSTER_REG" >"$dir/certs.d/$upstream/hosts.toml"
done
cat >"$dir/config.toml" <<T
version = 2
root = "$dir/root"
state = "$dir/state"
oom_score = 0
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$dir/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "$CLUSTER_REG/base/static:1"
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          BinaryName = "/usr/sbin/runc"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "$STATE/cni/net.d"
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "$dir/certs.d"
T
