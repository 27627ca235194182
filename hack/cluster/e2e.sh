#!/usr/bin/env bash
# The real-cluster tier end to end (make e2e-cluster): build (cached), bring the cluster up,
# run tests/cluster, tear it down whatever happened, and fail if anything was left behind.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
"$here/build.sh" || exit 1
t0=$(date +%s)
if ! "$here/up.sh"; then "$here/down.sh"; exit 1; fi
echo "e2e-cluster: up in $(($(date +%s) - t0)) s"
"$root/.venv/bin/pytest" -n 0 -p no:cacheprovider "$root/tests/cluster" "$@"
status=$?
"$here/down.sh" || status=1
exit "$status"
