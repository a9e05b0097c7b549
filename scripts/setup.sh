#!/usr/bin/env bash
# Create/refresh the project venv (.venv) with hwsim and its dev extras; install Icarus Verilog
# from Debian when running as root and it is missing. Idempotent. Used by the README commands.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null
python -m pip install -q -e ".[dev]"
if ! command -v iverilog >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog) >/dev/null 2>&1 \
    || echo "setup: could not install iverilog (RTL co-simulation tests will skip)" >&2
fi
