#!/usr/bin/env bash
# Create a kind cluster with a local registry reachable as registry.local:5000 from the
# nodes (containerd mirror) and as localhost:5000 from the host, as the Tekton catalog's
# CI does. Needs docker and kind; not runnable in the offline dev sandbox.
#   hack/setup-kind.sh [--cluster-name NAME] [--registry-port 5000]
set -euo pipefail

CLUSTER_NAME=${CLUSTER_NAME:-attest-step-e2e}
REGISTRY_NAME=registry.local
REGISTRY_PORT=${REGISTRY_PORT:-5000}
REGISTRY_IMAGE=${REGISTRY_IMAGE:-docker.io/library/registry:2.8.3}
KIND_NODE_IMAGE=${KIND_NODE_IMAGE:-kindest/node:v1.31.4}

while [ $# -gt 0 ]; do
  case $1 in
    --cluster-name) CLUSTER_NAME=$2; shift 2 ;;
    --registry-port) REGISTRY_PORT=$2; shift 2 ;;
    *) echo "setup-kind: unknown argument $1" >&2; exit 2 ;;
  esac
done

for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "setup-kind: $tool is required" >&2; exit 1; }
done

if [ "$(docker inspect -f '{{.State.Running}}' "$REGISTRY_NAME" 2>/dev/null || true)" != true ]; then
  docker run -d --restart=always -p "127.0.0.1:${REGISTRY_PORT}:5000" --name "$REGISTRY_NAME" "$REGISTRY_IMAGE"
fi

if ! kind get clusters | grep -qx "$CLUSTER_NAME"; then
  cat <<KIND | kind create cluster --name "$CLUSTER_NAME" --image "$KIND_NODE_IMAGE" --config=-
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
containerdConfigPatches:
  - |-
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "/etc/containerd/certs.d"
KIND
fi

# Nodes resolve registry.local:5000 to the registry container over the kind network.
for node in $(kind get nodes --name "$CLUSTER_NAME"); do
  dir="/etc/containerd/certs.d/${REGISTRY_NAME}:5000"
  docker exec "$node" mkdir -p "$dir"
  printf '[host."http://%s:5000"]\n' "$REGISTRY_NAME" | docker exec -i "$node" cp /dev/stdin "$dir/hosts.toml"
done
docker network connect kind "$REGISTRY_NAME" 2>/dev/null || true

kubectl apply -f - <<CM
apiVersion: v1
kind: ConfigMap
metadata:
  name: local-registry-hosting
  namespace: kube-public
data:
  localRegistryHosting.v1: |
    host: "localhost:${REGISTRY_PORT}"
    hostFromClusterNetwork: "${REGISTRY_NAME}:5000"
CM
echo "setup-kind: cluster $CLUSTER_NAME ready; registry ${REGISTRY_NAME}:5000 (host: localhost:${REGISTRY_PORT})"
