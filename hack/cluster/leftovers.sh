#!/usr/bin/env bash
# Print what the tier left on the host, one line each, and exit 1 if anything: processes,
# mounts under $STATE, the pod bridge, kube-proxy's nftables tables, cgroups, changed sysctls.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/cluster/env.sh
. "$here/env.sh"
left=()
for f in "$STATE"/run/*.pid "$CACHE/registry.pid"; do
  [ -s "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && left+=("process $(basename "$f" .pid) $(cat "$f")")
done
for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $STATE/containerd/containerd.sock"); do left+=("containerd shim $p"); done
while read -r m; do [ -n "$m" ] && left+=("mount $m"); done < <(mount | awk -v b="$STATE/" 'index($3, b) == 1 {print $3}')
ip link show "$BRIDGE" >/dev/null 2>&1 && left+=("bridge $BRIDGE")
nft list tables 2>/dev/null | grep -q 'kube-proxy' && left+=("nftables tables: $(nft list tables | grep kube-proxy | tr '\n' ' ')")
for h in /sys/fs/cgroup/*/attest-step-k8s; do [ -d "$h" ] && left+=("cgroup $h"); done
if [ -s "$STATE/sysctl.before" ]; then
  now="$(sysctl -n vm.overcommit_memory kernel.panic kernel.panic_on_oops | tr '\n' ' ')"
  before="$(tr '\n' ' ' <"$STATE/sysctl.before")"
  [ "$now" = "$before" ] || left+=("sysctls vm.overcommit_memory kernel.panic kernel.panic_on_oops: $now (were $before)")
fi
[ -c /dev/null ] || left+=("/dev/null is not a character device")
if [ ${#left[@]} -gt 0 ]; then
  printf 'left behind: %s\n' "${left[@]}"
  exit 1
fi
echo "down: nothing left behind"
