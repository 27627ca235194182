#!/usr/bin/env bash
# Lint (shellcheck) every shell script in the repository, and every script embedded in catalog YAML.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t scripts < <(git ls-files --cached --others --exclude-standard '*.sh' .ci/run | sort -u)
if [ "${#scripts[@]}" -gt 0 ]; then
  shellcheck -x "${scripts[@]}"
fi
if [ -x .venv/bin/python ] && [ -f hack/catalog_scripts.py ]; then
  .venv/bin/python hack/catalog_scripts.py --shellcheck
fi
