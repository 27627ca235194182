#!/usr/bin/env bash
# Build attest-step's step image from dist/*.whl with whichever engine exists:
# docker, podman or buildah (in that order; ENGINE=... to choose).
#   hack/build-image.sh [IMAGE]      default IMAGE: ghcr.io/attest-step/attest-step:<version>
set -euo pipefail
cd "$(dirname "$0")/.."
version="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n1)"
image="${1:-ghcr.io/attest-step/attest-step:${version}}"
engine="${ENGINE:-}"
if [ -z "$engine" ]; then
  for candidate in docker podman buildah; do
    if command -v "$candidate" >/dev/null 2>&1; then
      engine="$candidate"
      break
    fi
  done
fi
if [ -z "$engine" ]; then
  echo "build-image: no container engine found (install docker, podman or buildah)" >&2
  exit 1
fi
if ! ls dist/attest_step-*.whl >/dev/null 2>&1; then
  echo "build-image: no wheel in dist/ (run make wheel)" >&2
  exit 1
fi
case "$engine" in
  buildah) buildah bud -f images/attest-step/Containerfile -t "$image" . ;;
  *) "$engine" build -f images/attest-step/Containerfile -t "$image" . ;;
esac
echo "built $image with $engine"
