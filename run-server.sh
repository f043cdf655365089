#!/usr/bin/env bash
# Start karbor-server with the embedded defaults: SQLite and a file-system bank in
# ./.state, no auth, http://127.0.0.1:8799. Extra arguments go to karbor-server
# (e.g. --config-file karbor.conf). Creates ./.venv on first use.
# KARBOR_STATE_PATH moves the state (karbor-manage finds it there too), KARBOR_PORT the
# API's port (it overrides osapi_karbor_listen_port of a config file).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/karbor-server ] || [ pyproject.toml -nt .venv/.installed ]; then
  echo "run-server.sh: installing Karbor into ./.venv (about 40 s, once)" >&2
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e .
  touch .venv/.installed
fi
if [ -n "${KARBOR_PORT:-}" ]; then
  export OS_DEFAULT__OSAPI_KARBOR_LISTEN_PORT="$KARBOR_PORT"  # oslo.config's environment source
fi
exec .venv/bin/karbor-server --state_path "${KARBOR_STATE_PATH:-$PWD/.state}" "$@"
