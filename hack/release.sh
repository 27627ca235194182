#!/usr/bin/env bash
# Push attest-step's image and pin the catalog to the pushed digest.
#   hack/release.sh IMAGE            e.g. ghcr.io/attest-step/attest-step:0.1.0
# Pushes IMAGE (built by `make image`), reads the digest the registry reports, and rewrites
# every reference to attest-step's image in catalog/ (the one placeholder reference) to
# IMAGE@sha256:<digest>. Then run `make validate-catalog` and commit.
set -euo pipefail
cd "$(dirname "$0")/.."
image="${1:?usage: hack/release.sh IMAGE (repository:tag)}"
engine="${ENGINE:-}"
if [ -z "$engine" ]; then
  for candidate in docker podman; do
    if command -v "$candidate" >/dev/null 2>&1; then engine="$candidate"; break; fi
  done
fi
[ -n "$engine" ] || { echo "release: no container engine found (docker or podman)" >&2; exit 1; }
digestfile="$(mktemp)"
trap 'rm -f "$digestfile"' EXIT
if [ "$engine" = podman ]; then
  podman push --digestfile "$digestfile" "$image"
  digest="$(cat "$digestfile")"
else
  docker push "$image" >/dev/null
  digest="$(docker inspect --format '{{index .RepoDigests 0}}' "$image" | sed 's/.*@//')"
fi
case "$digest" in
  sha256:????????????????????????????????????????????????????????????????) ;;
  *) echo "release: could not read the pushed digest (got '$digest')" >&2; exit 1 ;;
esac
pinned="${image}@${digest}"
mapfile -t files < <(grep -rlE 'ghcr\.io/attest-step/attest-step:[^@[:space:]]+@sha256:[0-9a-f]{64}' catalog)
for file in "${files[@]}"; do
  sed -i -E "s#ghcr\.io/attest-step/attest-step:[^@[:space:]]+@sha256:[0-9a-f]{64}#${pinned}#g" "$file"
done
echo "release: pinned ${#files[@]} catalog files to $pinned"
