#!/usr/bin/env bash
# Create the project venv (.venv) with hwsim installed editable with its dev extras; install
# Icarus Verilog from Debian when running as root and it is missing. Used by the README
# commands. The pip install runs only when needed: no venv yet, hwsim not importable, or
# pyproject.toml / this script / the Python changed since the last install (a hash kept in
# .venv/.hwsim-setup). HWSIM_SETUP_FORCE=1 reinstalls anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
stamp=.venv/.hwsim-setup
want=$( { cat pyproject.toml scripts/setup.sh; python -VV; pwd; } | sha256sum | cut -d' ' -f1)
have=$(cat "$stamp" 2>/dev/null || true)
if [ "${HWSIM_SETUP_FORCE:-0}" = 1 ] || [ "$have" != "$want" ] \
    || ! python -c "import importlib.util as u, sys; sys.exit(u.find_spec('hwsim') is None)"; then
  rm -f "$stamp"
  python -m pip install -q --upgrade pip >/dev/null
  python -m pip install -q -e ".[dev]"
  echo "$want" > "$stamp"
fi
if ! command -v iverilog >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog) >/dev/null 2>&1 \
    || echo "setup: could not install iverilog (RTL co-simulation tests will skip)" >&2
fi
