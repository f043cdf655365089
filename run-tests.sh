#!/usr/bin/env bash
# Run the whole test suite: installs what it needs (the project and its test tools in
# ./.venv, python-karborclient 2.1.0 in its own venv, PostgreSQL and Redis from Debian's
# packages),
# then runs ruff and pytest over tests/ (unit, functional on SQLite and PostgreSQL,
# integration). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
export PIP_DISABLE_PIP_VERSION_CHECK=1
# Servers the tests start themselves on 127.0.0.1, from Debian's packages.
need=()
command -v initdb >/dev/null 2>&1 || [ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing Debian packages: ${need[*]} (this user cannot install them)" >&2
  fi
fi
if [ ! -x .venv/bin/pytest ] || [ pyproject.toml -nt .venv/.installed ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[test]"
  touch .venv/.installed
fi
KC=.state/karborclient-venv
if [ ! -x "$KC/bin/karbor" ]; then
  rm -rf "$KC"
  python3 -m venv "$KC"
  "$KC/bin/pip" install -q "python-karborclient==2.1.0"
fi
export KARBORCLIENT="$PWD/$KC/bin/karbor"
.venv/bin/ruff check karbor tests benchmarks
exec .venv/bin/pytest -p no:cacheprovider "$@"
