#!/usr/bin/env bash
# The README's main job: set up (idempotent), generate the bundled example int8 CNN and its
# input, run it bit-exactly and print the per-layer table; the full trace goes to
# build/example/trace.h5.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
hwsim example --out build/example
hwsim info build/example/example_cnn.tflite
hwsim run build/example/example_cnn.tflite --input build/example/example_input.npy \
    --warmup --trace build/example/trace.h5 --output build/example/output.npy
