#!/usr/bin/env bash
# Start karbor-server with the embedded defaults: SQLite and a file-system bank in
# ./.state, no auth, http://127.0.0.1:8799. Extra arguments go to karbor-server
# (e.g. --config-file karbor.conf). Creates ./.venv on first use.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/karbor-server ] || [ pyproject.toml -nt .venv/.installed ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e .
  touch .venv/.installed
fi
exec .venv/bin/karbor-server --state_path "${KARBOR_STATE_PATH:-$PWD/.state}" "$@"
