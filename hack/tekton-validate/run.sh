#!/usr/bin/env bash
# Build (once, cached under .tools/) and run tekton-validate against Tekton Pipelines' own
# SetDefaults/Validate code, for the 1.0 LTS line (go.lts.mod) and the newest release the Go
# module proxy serves (go.mod).
#
#   hack/tekton-validate/run.sh [--build-only] [--line lts|newest|all] [PATH...]
#
# PATH defaults to catalog/. The binaries are .tools/tekton-validate-<line>-<hash of go.sum>,
# so a changed pin rebuilds them and an unchanged one costs nothing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
line=all
build_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --line) line="$2"; shift 2 ;;
    --build-only) build_only=1; shift ;;
    --) shift; break ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || set -- "$root/catalog"

command -v go >/dev/null 2>&1 || { echo "run.sh: go is not installed (needed to build tekton-validate)" >&2; exit 3; }

# binary LINE: print the path of the cached binary for LINE, building it when missing.
binary() {
  local which=$1 modfile sum hash out
  case "$which" in
    lts) modfile=go.lts.mod; sum=go.lts.sum ;;
    newest) modfile=go.mod; sum=go.sum ;;
    *) echo "run.sh: unknown line $which" >&2; exit 2 ;;
  esac
  hash="$(cat "$here/$modfile" "$here/$sum" "$here/main.go" | sha256sum | cut -c1-16)"
  out="$root/.tools/tekton-validate-$which-$hash"
  if [ ! -x "$out" ]; then
    mkdir -p "$root/.tools"
    echo "run.sh: building tekton-validate ($which, $modfile); the first build takes minutes" >&2
    (cd "$here" && go build -mod=readonly -modfile="$modfile" -trimpath -o "$out.tmp" .)
    mv "$out.tmp" "$out"
  fi
  printf '%s\n' "$out"
}

case "$line" in
  all) lines=(lts newest) ;;
  *) lines=("$line") ;;
esac
status=0
for l in "${lines[@]}"; do
  bin="$(binary "$l")"
  if [ "$build_only" = 1 ]; then
    printf '%s\n' "$bin"
    continue
  fi
  "$bin" "$@" || status=1
done
exit "$status"
