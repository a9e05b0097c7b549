#!/usr/bin/env bash
# The README's test command: set up (idempotent), then run the whole test suite.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
. .venv/bin/activate
export NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-$PWD/.numba_cache}
# the heavier zoo models (VGG-19, ResNet-50, DenseNet-121, Inception-v2) run too (~40 s)
export HWSIM_SLOW=${HWSIM_SLOW:-1}
python -m pytest -q -p no:cacheprovider "$@"
rc=$?
[ "$rc" -eq 5 ] && echo "test.sh: no tests were collected" >&2 && exit 1
exit "$rc"
