#!/usr/bin/env bash
# Install Sigstore policy-controller (the admission webhook build.sh built with ko, pinned by
# hack/cluster/policy-controller/go.mod) into cosign-system and wait until it admits: its
# Deployment Ready and the webhook configurations carrying the CA of the certificate it made
# for itself (knative's certificate controller; nothing to provision here). Policies are not
# installed here: policy/admission/README.md says how, and tests/cluster/test_admission.py does it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/cluster/env.sh
. "$here/env.sh"
K="$CACHE/bin/kubectl"
export KUBECONFIG="${KUBECONFIG:-$STATE/pki/admin.kubeconfig}"
"$K" apply -f "$CACHE/policy-controller/release.yaml" >"$STATE/logs/policy-controller-apply.log"
"$K" -n cosign-system rollout status deploy/webhook --timeout=300s >/dev/null
for _ in $(seq 1 240); do
  ready=1
  for kind in validatingwebhookconfiguration/validating.clusterimagepolicy.sigstore.dev \
    validatingwebhookconfiguration/policy.sigstore.dev mutatingwebhookconfiguration/policy.sigstore.dev; do
    ca="$("$K" get "$kind" -o jsonpath='{.webhooks[0].clientConfig.caBundle}' 2>/dev/null || true)"
    [ -n "$ca" ] || ready=0
  done
  [ "$ready" = 1 ] && exit 0
  sleep 0.5
done
echo "policy-controller.sh: the webhook configurations got no CA bundle; see kubectl -n cosign-system logs deploy/webhook" >&2
exit 1
