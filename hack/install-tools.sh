#!/usr/bin/env bash
# Install what the tests need, idempotently:
#  - Debian packages (when missing): docker-registry, shellcheck, yamllint, softhsm2, iproute2,
#    strace (delays forks to test attest-step run under a loaded machine's schedules),
#    gnupg (test keys for OpenPGP simple signing; skopeo and podman verify with it through gpgme),
#    and for the step image mmdebstrap, umoci, podman, runc, python3-pip (the host's Debian pip);
#    gcc and libssl-dev for make bench's C anchor
#  - pinned Go tools into .tools/bin: cosign v3 (and v2 when it builds), regctl (OCI layout interop),
#    opa (the Rego policies in policy/), rekor-server-posix (a local Rekor v2 log: rekor-tiles'
#    POSIX-storage server, for the transparency-log tests)
# Run by `make test` and `.ci/run`. Safe to run again; it only installs what is missing.
set -euo pipefail

cd "$(dirname "$0")/.."
TOOLS_BIN="${TOOLS_BIN:-$PWD/.tools/bin}"
COSIGN_V3_VERSION="${COSIGN_V3_VERSION:-v3.1.3}"
COSIGN_V2_VERSION="${COSIGN_V2_VERSION:-v2.6.5}"
REGCTL_VERSION="${REGCTL_VERSION:-v0.11.7}"
OPA_VERSION="${OPA_VERSION:-v1.22.4}"
REKOR_TILES_VERSION="${REKOR_TILES_VERSION:-v2.3.0}"
mkdir -p "$TOOLS_BIN"

log() { printf 'install-tools: %s\n' "$*" >&2; }

apt_packages=()
command -v docker-registry >/dev/null 2>&1 || apt_packages+=(docker-registry)
command -v shellcheck >/dev/null 2>&1 || apt_packages+=(shellcheck)
command -v skopeo >/dev/null 2>&1 || apt_packages+=(skopeo)
command -v gpg >/dev/null 2>&1 || apt_packages+=(gnupg)
command -v gpgconf >/dev/null 2>&1 || apt_packages+=(gpgconf)
command -v git >/dev/null 2>&1 || apt_packages+=(git)
command -v softhsm2-util >/dev/null 2>&1 || apt_packages+=(softhsm2)
command -v pkcs11-tool >/dev/null 2>&1 || apt_packages+=(opensc)
command -v ip >/dev/null 2>&1 || apt_packages+=(iproute2)
command -v unshare >/dev/null 2>&1 || apt_packages+=(util-linux)
command -v strace >/dev/null 2>&1 || apt_packages+=(strace)
# the step image (make image) and its container tests
command -v mmdebstrap >/dev/null 2>&1 || apt_packages+=(mmdebstrap)
command -v umoci >/dev/null 2>&1 || apt_packages+=(umoci)
command -v podman >/dev/null 2>&1 || apt_packages+=(podman)
command -v runc >/dev/null 2>&1 || apt_packages+=(runc)
command -v chroot >/dev/null 2>&1 || apt_packages+=(coreutils)
/usr/bin/python3 -m pip --version >/dev/null 2>&1 || apt_packages+=(python3-pip)
# make bench: the C anchor of the hashing section (hack/anchor/sha256read.c) against libcrypto
command -v gcc >/dev/null 2>&1 || apt_packages+=(gcc)
[ -e /usr/include/openssl/evp.h ] || apt_packages+=(libssl-dev)
if [ "${#apt_packages[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "apt-get install ${apt_packages[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}" >/dev/null
  else
    log "missing system packages: ${apt_packages[*]} (install them with your package manager)"
  fi
fi

# go install a pinned tool as "$TOOLS_BIN/$name" unless that exact version is there already.
install_go_tool() {
  local name=$1 module=$2 version=$3 stamp
  stamp="$TOOLS_BIN/.$name.version"
  if [ -x "$TOOLS_BIN/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then
    return 0
  fi
  if ! command -v go >/dev/null 2>&1; then
    log "go is not installed: cannot build $name $version (tests that need it will say so)"
    return 0
  fi
  log "go install $module@$version (first time only; a few minutes)"
  local tmp
  tmp=$(mktemp -d)
  if GOBIN="$tmp" GOFLAGS=-mod=mod go install "$module@$version"; then
    mv "$tmp/$(basename "$module")" "$TOOLS_BIN/$name"
    printf '%s\n' "$version" >"$stamp"
  else
    log "building $name $version failed"
    rm -rf "$tmp"
    return 1
  fi
  rm -rf "$tmp"
}

install_go_tool cosign github.com/sigstore/cosign/v3/cmd/cosign "$COSIGN_V3_VERSION"
install_go_tool regctl github.com/regclient/regclient/cmd/regctl "$REGCTL_VERSION"
# opa's main package is its module root: go install names the binary "opa", the basename
install_go_tool opa github.com/open-policy-agent/opa "$OPA_VERSION"
# rekor-tiles v2.3.0 is the log version cosign v3.1.3 builds against; go install names it "posix"
install_go_tool rekor-server-posix github.com/sigstore/rekor-tiles/v2/cmd/rekor-server/posix \
  "$REKOR_TILES_VERSION"
if [ "${INSTALL_COSIGN_V2:-1}" = 1 ]; then
  install_go_tool cosign-v2 github.com/sigstore/cosign/v2/cmd/cosign "$COSIGN_V2_VERSION" ||
    log "cosign $COSIGN_V2_VERSION did not build; v2 interop tests will say so"
fi
