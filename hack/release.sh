#!/usr/bin/env bash
# Release attest-step's step image, or pin the catalog to it. No Docker: skopeo and attest-step.
#
#   hack/release.sh pin
#       Rewrite the catalog's attest-step image references to the digest recorded in
#       images/attest-step/image.lock.json (written by `make image-lock`).
#   hack/release.sh publish REPOSITORY --key KEY [attest-step flags, e.g. --allow-insecure-registry]
#       Push build/image/oci (from `make image`) to REPOSITORY:VERSION, sign it with
#       `attest-step sign`, and attest it with SLSA v1 provenance whose resolved dependencies are
#       the image's Debian packages and wheels (build/image/debs.json, the lock). Prints the
#       cosign commands that verify both.
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-.venv/bin/python}"
attest_step="${ATTEST_STEP:-.venv/bin/attest-step}"
lock=images/attest-step/image.lock.json
version="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n1)"
upstream="ghcr.io/attest-step/attest-step"

locked_digest() {
  "$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["imageDigest"])' "$lock"
}

case "${1:-}" in
  pin)
    digest="$(locked_digest)"
    case "$digest" in
      sha256:????????????????????????????????????????????????????????????????) ;;
      *) echo "release: $lock has no image digest; run make image-lock" >&2; exit 1 ;;
    esac
    pinned="$upstream:$version@$digest"
    mapfile -t files < <(grep -rlE "$upstream:[^@[:space:]]+@sha256:[0-9a-f]{64}" catalog)
    for file in "${files[@]}"; do
      sed -i -E "s#$upstream:[^@[:space:]]+@sha256:[0-9a-f]{64}#$pinned#g" "$file"
    done
    echo "release: pinned ${#files[@]} catalog files to $pinned"
    ;;
  publish)
    repository="${2:?usage: hack/release.sh publish REPOSITORY --key KEY [flags]}"
    shift 2
    build="${ATTEST_IMAGE_BUILD:-build/image}"
    [ -s "$build/build.json" ] || { echo "release: no $build/build.json; run make image" >&2; exit 1; }
    digest="$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["digest"])' "$build/build.json")"
    tls=()
    case " $* " in *" --allow-insecure-registry "*) tls=(--dest-tls-verify=false) ;; esac
    skopeo copy -q "${tls[@]}" "oci:$build/oci:$version" "docker://$repository:$version"
    materials=()
    mapfile -t materials < <("$py" hack/image/materials.py "$build" "$lock")
    "$attest_step" sign "$@" "$repository@$digest"
    "$attest_step" attest "$@" --image "$repository@$digest" \
      --builder-id "https://attest-step.dev/builders/image-release/v1" \
      --param "image=$upstream:$version" --param "lock=$lock" "${materials[@]}" \
      --output-file "$build/provenance.dsse.json" >/dev/null
    echo "release: pushed, signed and attested $repository@$digest"
    echo "  cosign verify --key cosign.pub $repository@$digest"
    echo "  cosign verify-attestation --key cosign.pub --type slsaprovenance1 $repository@$digest"
    ;;
  *)
    echo "usage: hack/release.sh pin | publish REPOSITORY --key KEY [flags]" >&2
    exit 2
    ;;
esac
