#!/usr/bin/env bash
# Install Tekton Pipelines (with its resolvers) and Tekton Chains from the release YAML build.sh
# made, and configure Chains for OCI storage and slsa/v1 with a cosign key made by real cosign
# (`cosign generate-key-pair k8s://tekton-chains/signing-secrets`).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=hack/cluster/env.sh
. "$here/env.sh"
K="$CACHE/bin/kubectl"
export KUBECONFIG="${KUBECONFIG:-$STATE/pki/admin.kubeconfig}"
cosign="$root/.tools/bin/cosign"
"$K" apply -f "$CACHE/tekton/release.yaml" >"$STATE/logs/tekton-apply.log"
for d in tekton-pipelines-controller tekton-pipelines-webhook; do
  "$K" -n tekton-pipelines rollout status "deploy/$d" --timeout=300s >/dev/null
done
# Pod Security "restricted" namespaces need Tekton's own init containers (prepare,
# place-scripts, working-dir-initializer) to be restricted too: feature flag
# set-security-context (docs/catalog.md tells users the same).
"$K" -n tekton-pipelines patch configmap feature-flags --type merge \
  -p '{"data": {"set-security-context": "true"}}' >/dev/null
"$K" apply -f "$CACHE/chains/release.yaml" >"$STATE/logs/chains-apply.log"
"$K" -n tekton-chains patch configmap chains-config --type merge -p '{"data": {
  "artifacts.taskrun.format": "slsa/v1",
  "artifacts.taskrun.storage": "oci",
  "artifacts.oci.storage": "oci",
  "artifacts.pipelinerun.storage": "oci",
  "transparency.enabled": "false"}}' >/dev/null
"$K" -n tekton-chains delete secret signing-secrets --ignore-not-found >/dev/null
keys="$(mktemp -d)"
(cd "$keys" && COSIGN_PASSWORD=chains-local "$cosign" generate-key-pair k8s://tekton-chains/signing-secrets >/dev/null 2>&1)
mkdir -p "$STATE/chains" && mv "$keys/cosign.pub" "$STATE/chains/cosign.pub" && rmdir "$keys"
"$K" -n tekton-chains rollout restart deploy/tekton-chains-controller >/dev/null
"$K" -n tekton-chains rollout status deploy/tekton-chains-controller --timeout=300s >/dev/null
