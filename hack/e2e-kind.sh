#!/usr/bin/env bash
# Run every catalog test run on a kind cluster (made by hack/setup-kind.sh) with a pinned
# Tekton Pipelines release, the attest-step image built from this checkout, and a fresh
# cosign key Secret; then verify the pushed images with cosign and attest-step.
# Needs docker, kind, kubectl, cosign and the internet: it is not run in the offline
# sandbox (there the local executor, tests/e2e/, runs the same test files).
#   TEKTON_VERSION=v1.0.0 hack/e2e-kind.sh
set -euo pipefail
cd "$(dirname "$0")/.."

TEKTON_VERSION=${TEKTON_VERSION:-v1.0.0}
RELEASE_URL="https://github.com/tektoncd/pipeline/releases/download/${TEKTON_VERSION}/release.yaml"
CLUSTER_NAME=${CLUSTER_NAME:-attest-step-e2e}
NS=${NS:-attest-step-e2e}
IMAGE_LOCAL=${IMAGE_LOCAL:-attest-step:e2e}
REGISTRY_HOST=${REGISTRY_HOST:-localhost:5000}
TIMEOUT=${TIMEOUT:-900}
ARTIFACTS=${ARTIFACTS:-$PWD/e2e-kind-artifacts}
COSIGN=${COSIGN:-cosign}
mkdir -p "$ARTIFACTS"

log() { printf 'e2e-kind: %s\n' "$*" >&2; }

log "Tekton Pipelines ${TEKTON_VERSION} from ${RELEASE_URL}"
kubectl apply -f "$RELEASE_URL"
kubectl -n tekton-pipelines wait --for=condition=Available deployment --all --timeout=300s
kubectl -n tekton-pipelines patch configmap feature-flags --type merge \
  -p '{"data":{"enable-step-actions":"true","enable-api-fields":"beta"}}'

log "building and loading ${IMAGE_LOCAL}"
make image
skopeo copy --quiet oci:build/image/attest-step/oci:0.1.0 "docker-archive:$ARTIFACTS/attest-step.tar:$IMAGE_LOCAL"
kind load image-archive "$ARTIFACTS/attest-step.tar" --name "$CLUSTER_NAME"

kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$NS" delete secret signing-secrets --ignore-not-found
COSIGN_PASSWORD=e2e-kind "$COSIGN" generate-key-pair "k8s://${NS}/signing-secrets"
kubectl -n "$NS" get secret signing-secrets -o jsonpath='{.data.cosign\.pub}' | base64 -d >"$ARTIFACTS/cosign.pub"

# Apply the catalog with the attest-step image reference rewritten to the loaded image.
rewrite() { sed -E "s#(image: *)[^ ]*attest-step[^ ]*#\1${IMAGE_LOCAL}#; s#(default: *)[^ ]*attest-step:[^ ]*#\1${IMAGE_LOCAL}#" "$1"; }
for f in catalog/*/*/*/*.yaml; do rewrite "$f" | kubectl -n "$NS" apply -f -; done

failed=0
for dir in catalog/*/*/*/tests; do
  for f in "$dir"/*.yaml; do
    # Test Secrets named signing-secrets would replace the generated key: skip them.
    rewrite "$f" | python3 -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
keep = [d for d in docs if not (d.get("kind") == "Secret" and d["metadata"]["name"] == "signing-secrets")]
print(yaml.safe_dump_all(keep))' >"$ARTIFACTS/applied.yaml"
    grep -q 'kind: \(PipelineRun\|TaskRun\)' "$ARTIFACTS/applied.yaml" || { kubectl -n "$NS" apply -f "$ARTIFACTS/applied.yaml"; continue; }
    runs=$(kubectl -n "$NS" create -f "$ARTIFACTS/applied.yaml" -o name | grep -E 'pipelinerun|taskrun' || true)
    for run in $runs; do
      log "waiting for $run"
      if kubectl -n "$NS" wait --for=condition=Succeeded --timeout="${TIMEOUT}s" "$run"; then
        log "PASS $dir $run"
      else
        log "FAIL $dir $run"
        failed=1
        kubectl -n "$NS" get "$run" -o yaml >"$ARTIFACTS/$(basename "$run").yaml"
        kubectl -n "$NS" get taskruns -o yaml >"$ARTIFACTS/$(basename "$run")-taskruns.yaml"
        for pod in $(kubectl -n "$NS" get pods -o name); do
          kubectl -n "$NS" logs "$pod" --all-containers --prefix >>"$ARTIFACTS/$(basename "$run").log" 2>&1 || true
        done
        cat "$ARTIFACTS/$(basename "$run").log" >&2 || true
      fi
    done
  done
done

# Verify every image the runs reported (IMAGE_URL@IMAGE_DIGEST results) from the host.
for tr in $(kubectl -n "$NS" get taskruns -o name); do
  url=$(kubectl -n "$NS" get "$tr" -o jsonpath='{.status.results[?(@.name=="IMAGE_URL")].value}')
  digest=$(kubectl -n "$NS" get "$tr" -o jsonpath='{.status.results[?(@.name=="IMAGE_DIGEST")].value}')
  if [ -z "$url" ] || [ -z "$digest" ]; then continue; fi
  ref="${url%%:*}"
  ref="${REGISTRY_HOST}/${ref#*/}@${digest}"
  log "verifying $ref"
  "$COSIGN" verify --key "$ARTIFACTS/cosign.pub" --allow-insecure-registry --insecure-ignore-tlog=true "$ref" >/dev/null || failed=1
  "$COSIGN" verify-attestation --key "$ARTIFACTS/cosign.pub" --type slsaprovenance1 --allow-insecure-registry --insecure-ignore-tlog=true "$ref" >/dev/null || failed=1
  attest-step verify-attestation --key "$ARTIFACTS/cosign.pub" --type slsaprovenance1 "$ref" || failed=1
done
exit "$failed"
