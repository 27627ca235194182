# shellcheck shell=bash
# Pins and locations shared by hack/cluster/*. Sourced, not run.
CACHE="${ATTEST_CLUSTER_CACHE:-/var/cache/attest-step-cluster}"
STATE="${ATTEST_CLUSTER_STATE:-$CACHE/state}"
# The registry listens on loopback while build.sh pushes, and on the pod bridge's gateway while
# the cluster runs, so that pods (kaniko, the attest step, Chains) reach it too. One data dir.
REG="${ATTEST_CLUSTER_REGISTRY:-127.0.0.1:5055}"
GW=10.244.0.1
POD_CIDR=10.244.0.0/24
BRIDGE=cni-attest0
CLUSTER_REG="$GW:5055"
K8S_VERSION=v1.35.4
KO_VERSION=v0.19.1
CRICTL_VERSION=v1.37.0
TKN_VERSION=v0.43.0
# Sigstore policy-controller (admission); the build's pin is policy-controller/go.mod, checked
# against this by build.sh.
POLICY_CONTROLLER_VERSION=v0.13.0
export CACHE STATE REG GW POD_CIDR BRIDGE CLUSTER_REG K8S_VERSION KO_VERSION CRICTL_VERSION TKN_VERSION POLICY_CONTROLLER_VERSION
