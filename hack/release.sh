#!/usr/bin/env bash
# Release attest-step's step image with attest-step itself (no Docker):
#   1. build it from images/attest-step/image.lock (fails when the lock is stale),
#   2. push the OCI layout with skopeo (digest preserved),
#   3. sign it (`attest-step sign`) and attest it (`attest-step attest`: SLSA v1 provenance whose
#      subject is the image digest and whose resolvedDependencies are the locked Debian packages
#      and wheels, each with its sha256),
#   4. pin the catalog's attest-step reference to the digest (images/attest-step/release.json).
#
#   hack/release.sh --key KEY [--repository REPO] [--allow-insecure-registry] [--no-pin]
#                   [--out DIR] [--unlocked-dev-wheel]
#
# --unlocked-dev-wheel (tests only) accepts an attest-step wheel that differs from the lock and
# implies --no-pin: the catalog is only ever pinned to a locked build.
# KEY is anything `attest-step sign --key` takes (cosign key file with COSIGN_PASSWORD, Secret
# dir, KMS URI). REPO defaults to ghcr.io/attest-step/attest-step; registry credentials come
# from the usual DOCKER_CONFIG / ~/.docker/config.json (skopeo and attest-step both read it).
# After a re-lock: make image-lock && hack/release.sh --key ... (see docs/image.md).
set -euo pipefail
cd "$(dirname "$0")/.."

repository="ghcr.io/attest-step/attest-step"
key=""
insecure=()
tls_verify=true
pin=true
out=build/image
dev=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --key) key="${2:?--key needs a value}"; shift 2 ;;
    --repository) repository="${2:?--repository needs a value}"; shift 2 ;;
    --allow-insecure-registry) insecure=(--allow-insecure-registry); tls_verify=false; shift ;;
    --no-pin) pin=false; shift ;;
    --out) out="${2:?--out needs a value}"; shift 2 ;;
    --unlocked-dev-wheel) dev=(--unlocked-dev-wheel); pin=false; shift ;;
    *) echo "release: unknown argument '$1' (see the header of hack/release.sh)" >&2; exit 2 ;;
  esac
done
[ -n "$key" ] || { echo "release: --key is required" >&2; exit 2; }

py=/usr/bin/python3
attest_step="${ATTEST_STEP:-.venv/bin/attest-step}"
[ -x "$attest_step" ] || attest_step="$(command -v attest-step || true)"
[ -n "$attest_step" ] || { echo "release: attest-step not found (run make venv)" >&2; exit 2; }

"$py" hack/image/cli.py build --image attest-step --reuse --out "$out" "${dev[@]}" >/dev/null
build="$out/attest-step/build.json"
digest="$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["digest"])' "$build")"
tag="$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["tag"])' "$build")"

skopeo copy --quiet --preserve-digests --dest-tls-verify="$tls_verify" \
  "oci:$out/attest-step/oci:${tag}" "docker://${repository}:${tag}"
pushed="$(skopeo inspect --tls-verify="$tls_verify" --format '{{.Digest}}' "docker://${repository}:${tag}")"
if [ "$pushed" != "$digest" ]; then
  echo "release: the registry reports $pushed for ${repository}:${tag}, the build is $digest" >&2
  exit 1
fi
image="${repository}@${digest}"

"$attest_step" sign --key "$key" "${insecure[@]}" "$image"

deps=()
while IFS= read -r line; do
  deps+=(--resolved-dependency "$line")
done < <("$py" hack/image/cli.py deps --image attest-step)
commit="$(git rev-parse HEAD)"
url="$(git config --get remote.origin.url || echo https://github.com/attest-step/attest-step)"
"$attest_step" attest --key "$key" "${insecure[@]}" --image "$image" \
  --builder-id https://attest-step.dev/builders/release-script/v1 \
  --git-url "$url" --git-commit "$commit" --param "IMAGE=${repository}:${tag}" \
  --output-file "$out/attest-step/provenance.dsse.json" "${deps[@]}"

if [ "$pin" = true ]; then
  "$py" hack/image/cli.py pin --out "$out"
fi
echo "release: $image signed and attested ($(( ${#deps[@]} / 2 )) resolved dependencies)"
