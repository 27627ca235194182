#!/usr/bin/env bash
# Bring up a single-node Kubernetes with Tekton Pipelines and Chains on this machine, as root,
# without Docker: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and
# kube-proxy (built by build.sh), containerd with runc and the CNI bridge, the local registry;
# then Tekton, Chains and Sigstore policy-controller (admission; opt-in per namespace).
# Every process is recorded in $STATE/run/*.pid; down.sh stops them by PID and undoes the host
# changes (mounts, bridge, nftables tables, cgroups, sysctls saved here in $STATE/sysctl.before).
# The quirks each setting answers are in docs/e2e.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/cluster/env.sh
. "$here/env.sh"
BIN="$CACHE/bin"
NODE="$(hostname)"
K="$BIN/kubectl"
[ "$(id -u)" = 0 ] || { echo "up.sh: run as root" >&2; exit 1; }
[ -x "$BIN/kubelet" ] || { echo "up.sh: run hack/cluster/build.sh first" >&2; exit 1; }
if [ -s "$STATE/run/apiserver.pid" ] && kill -0 "$(cat "$STATE/run/apiserver.pid")" 2>/dev/null; then
  echo "up.sh: a cluster is already running from $STATE; hack/cluster/down.sh stops it" >&2
  exit 1
fi
rm -rf "$STATE"
mkdir -p "$STATE"/{pki,logs,run,etcd,containerd/root,containerd/state,cni/net.d,cni/data,kubelet/root,kubelet/podlogs,kubelet/certs}
sysctl -n vm.overcommit_memory kernel.panic kernel.panic_on_oops >"$STATE/sysctl.before"
t0=$(date +%s.%N)
lap() { printf 'up: %-16s %6.1fs\n' "$1" "$(echo "$(date +%s.%N) - $t0" | bc)"; }
start() {
  local name=$1
  shift
  nohup "$@" >"$STATE/logs/$name.log" 2>&1 &
  echo $! >"$STATE/run/$name.pid"
}
waitfor() {
  local _
  for _ in $(seq 1 "${2:-240}"); do
    if eval "$1" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "up.sh: timed out waiting for: $1 (logs in $STATE/logs)" >&2
  return 1
}

# --- PKI: one CA, a serving certificate for the apiserver, client certificates ---
P="$STATE/pki"
(
  cd "$P"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 7 -subj /CN=attest-step-local-ca 2>/dev/null
  cert() {
    openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
    printf '%b' "$3" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days 7 -extfile "$1.ext" 2>/dev/null
  }
  cert apiserver /CN=kube-apiserver "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,IP:$GW,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:$NODE\nextendedKeyUsage=serverAuth\n"
  for u in "admin:/O=system:masters/CN=admin" "kubelet:/O=system:nodes/CN=system:node:$NODE" \
    "apiserver-kubelet-client:/O=system:masters/CN=kube-apiserver-kubelet-client" \
    "kcm:/CN=system:kube-controller-manager" "sched:/CN=system:kube-scheduler" "proxy:/CN=system:kube-proxy"; do
    cert "${u%%:*}" "${u#*:}" "extendedKeyUsage=clientAuth\n"
    cat >"${u%%:*}.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {certificate-authority: $P/ca.crt, server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {client-certificate: $P/${u%%:*}.crt, client-key: $P/${u%%:*}.key}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
KC
  done
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
)
lap pki

# --- the pod bridge (made here so the registry can listen on its gateway), registry, etcd ---
ip link add "$BRIDGE" type bridge
ip addr add "$GW/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
"$here/registry.sh" start "$CLUSTER_REG"
start etcd "$BIN/etcd" --name n --data-dir "$STATE/etcd" --listen-client-urls http://127.0.0.1:23790 \
  --advertise-client-urls http://127.0.0.1:23790 --listen-peer-urls http://127.0.0.1:23800 \
  --initial-advertise-peer-urls http://127.0.0.1:23800 --initial-cluster n=http://127.0.0.1:23800 \
  --listen-metrics-urls http://127.0.0.1:23810
waitfor "curl -sf http://127.0.0.1:23790/health"
lap etcd
# Not loopback: Services (and Tekton's webhook) need an advertise address pods can reach.
start apiserver "$BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:23790 --bind-address=0.0.0.0 \
  --advertise-address=$GW --secure-port=6443 --cert-dir="$P/gen" --tls-cert-file="$P/apiserver.crt" \
  --tls-private-key-file="$P/apiserver.key" --client-ca-file="$P/ca.crt" \
  --service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$P/sa.pub" \
  --service-account-signing-key-file="$P/sa.key" --authorization-mode=Node,RBAC \
  --service-cluster-ip-range=10.0.0.0/24 --allow-privileged=true \
  --kubelet-client-certificate="$P/apiserver-kubelet-client.crt" --kubelet-client-key="$P/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types=Hostname,InternalIP \
  --enable-admission-plugins=NodeRestriction,PodSecurity
export KUBECONFIG="$P/admin.kubeconfig"
waitfor "$K get --raw /readyz"
lap apiserver
start kcm "$BIN/kube-controller-manager" --kubeconfig="$P/kcm.kubeconfig" --authentication-kubeconfig="$P/kcm.kubeconfig" \
  --authorization-kubeconfig="$P/kcm.kubeconfig" --bind-address=127.0.0.1 --secure-port=10357 \
  --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" --use-service-account-credentials=true \
  --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" --controllers='*,-nodeipam' --leader-elect=false
start sched "$BIN/kube-scheduler" --kubeconfig="$P/sched.kubeconfig" --authentication-kubeconfig="$P/sched.kubeconfig" \
  --authorization-kubeconfig="$P/sched.kubeconfig" --bind-address=127.0.0.1 --secure-port=10359 --leader-elect=false

# --- containerd (CRI) with runc and cgroupfs; registries resolved through the local one ---
"$here/containerd-config.sh" "$STATE/containerd"
cat >"$STATE/cni/net.d/10-bridge.conflist" <<T
{"cniVersion": "0.4.0", "name": "attest-step-pods", "plugins": [
  {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$STATE/cni/data"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
T
start containerd containerd --config "$STATE/containerd/config.toml"
waitfor "$BIN/crictl -r unix://$STATE/containerd/containerd.sock info"
lap containerd

# --- kubelet (cgroup v1 with cgroupfs; sysctls it changes are restored by down.sh) ---
for h in cpu cpuacct cpuset memory devices freezer blkio pids systemd; do
  [ -d "/sys/fs/cgroup/$h" ] && mkdir -p "/sys/fs/cgroup/$h/attest-step-k8s"
done
cat /sys/fs/cgroup/cpuset/cpuset.cpus >/sys/fs/cgroup/cpuset/attest-step-k8s/cpuset.cpus
cat /sys/fs/cgroup/cpuset/cpuset.mems >/sys/fs/cgroup/cpuset/attest-step-k8s/cpuset.mems
cat >"$STATE/kubelet/config.yaml" <<T
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /attest-step-k8s
failSwapOn: false
containerRuntimeEndpoint: unix://$STATE/containerd/containerd.sock
address: 127.0.0.1
port: 10350
healthzBindAddress: 127.0.0.1
healthzPort: 10348
readOnlyPort: 0
podLogsDir: $STATE/kubelet/podlogs
authentication: {anonymous: {enabled: false}, webhook: {enabled: false}, x509: {clientCAFile: $P/ca.crt}}
authorization: {mode: AlwaysAllow}
protectKernelDefaults: false
makeIPTablesUtilChains: false
imagePullCredentialsVerificationPolicy: NeverVerify
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
T
grep -q "127.0.0.1 $NODE\$" /etc/hosts || { echo "up.sh: /etc/hosts must map $NODE to 127.0.0.1 (kubectl logs/exec)" >&2; }
start kubelet "$BIN/kubelet" --config="$STATE/kubelet/config.yaml" --kubeconfig="$P/kubelet.kubeconfig" \
  --root-dir="$STATE/kubelet/root" --cert-dir="$STATE/kubelet/certs"
waitfor "$K wait --for=condition=Ready node/$NODE --timeout=1s"
lap node
start proxy "$BIN/kube-proxy" --kubeconfig="$P/proxy.kubeconfig" --proxy-mode=nftables --cluster-cidr=$POD_CIDR \
  --hostname-override="$NODE" --bind-address=127.0.0.1 --healthz-bind-address=127.0.0.1:10356 \
  --metrics-bind-address=127.0.0.1:10349 --conntrack-max-per-core=0 \
  --conntrack-tcp-timeout-established=0 --conntrack-tcp-timeout-close-wait=0
waitfor "$K get sa default -n default"
lap cluster

# --- images from local builds, then Tekton Pipelines and Chains ---
"$here/images.sh"
lap images
if [ "${ATTEST_CLUSTER_NO_TEKTON:-0}" != 1 ]; then
  "$here/tekton.sh"
  lap tekton
fi
if [ "${ATTEST_CLUSTER_NO_POLICY_CONTROLLER:-0}" != 1 ]; then
  "$here/policy-controller.sh"
  lap policy-controller
fi
echo "up: KUBECONFIG=$P/admin.kubeconfig"
