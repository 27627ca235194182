#!/usr/bin/env bash
# Stop what up.sh started, by the PIDs it recorded, and undo its host changes: pod sandboxes,
# mounts under $STATE, the pod bridge, kube-proxy's nftables tables, the cgroups, and the
# sysctls kubelet changed (restored from $STATE/sysctl.before). Prints what is left (nothing).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/cluster/env.sh
. "$here/env.sh"
BIN="$CACHE/bin"
pid_of() { cat "$STATE/run/$1.pid" 2>/dev/null; }
stop() {
  local pid i
  pid="$(pid_of "$1")"
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || { rm -f "$STATE/run/$1.pid"; return 0; }
  for i in $(seq 1 20); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$STATE/run/$1.pid"; return 0; }
    sleep 0.5
    # kube-apiserver 1.35 may keep running after one SIGTERM; a second one ends it.
    [ "$i" = 10 ] && kill "$pid" 2>/dev/null
  done
  kill -9 "$pid" 2>/dev/null
  rm -f "$STATE/run/$1.pid"
}
stop kubelet
sock="unix://$STATE/containerd/containerd.sock"
if [ -S "$STATE/containerd/containerd.sock" ]; then
  pods="$("$BIN/crictl" -r "$sock" pods -q 2>/dev/null)"
  if [ -n "$pods" ]; then
    # shellcheck disable=SC2086
    "$BIN/crictl" -r "$sock" stopp $pods >/dev/null 2>&1
    # shellcheck disable=SC2086
    "$BIN/crictl" -r "$sock" rmp -f $pods >/dev/null 2>&1
  fi
fi
stop containerd
for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $STATE/containerd/containerd.sock"); do
  kill "$pid" 2>/dev/null
done
mount | awk -v b="$STATE/" 'index($3, b) == 1 {print $3}' | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
stop proxy
"$BIN/kube-proxy" --cleanup >/dev/null 2>&1
stop kcm
stop sched
stop apiserver
stop etcd
"$here/registry.sh" stop
ip link del "$BRIDGE" 2>/dev/null
for h in cpu cpuacct cpuset memory devices freezer blkio pids systemd unified; do
  [ -d "/sys/fs/cgroup/$h/attest-step-k8s" ] && find "/sys/fs/cgroup/$h/attest-step-k8s" -depth -type d -exec rmdir {} \; 2>/dev/null
done
if [ -s "$STATE/sysctl.before" ]; then
  read -r -d '' overcommit panic oops <"$STATE/sysctl.before"
  sysctl -q -w vm.overcommit_memory="$overcommit" kernel.panic="$panic" kernel.panic_on_oops="$oops"
fi
"$here/leftovers.sh"
