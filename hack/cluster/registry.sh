#!/usr/bin/env bash
# Start or stop the tier's local registry (Debian's docker-registry), data in $CACHE/registry.
#   hack/cluster/registry.sh start [ADDR]   (default $REG)
#   hack/cluster/registry.sh stop
#   hack/cluster/registry.sh running      exit 0 when the registry this script started runs
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/cluster/env.sh
. "$here/env.sh"
pidfile="$CACHE/registry.pid"
case "${1:?start|stop}" in
  start)
    REG="${2:-$REG}"
    if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then exit 0; fi
    mkdir -p "$CACHE/registry"
    printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n' \
      "$CACHE/registry" "$REG" >"$CACHE/registry.yml"
    if curl -sf "http://$REG/v2/" >/dev/null 2>&1; then
      echo "registry.sh: $REG is already served by a process this script did not start" >&2
      exit 1
    fi
    REGISTRY_LOG_LEVEL=warn nohup docker-registry serve "$CACHE/registry.yml" >"$CACHE/registry.log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 50); do curl -sf "http://$REG/v2/" >/dev/null 2>&1 && exit 0; sleep 0.2; done
    echo "registry.sh: the registry did not start; see $CACHE/registry.log" >&2
    exit 1
    ;;
  running)
    [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
    ;;
  stop)
    [ -s "$pidfile" ] || exit 0
    pid="$(cat "$pidfile")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 25); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
    ;;
esac
