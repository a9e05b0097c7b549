#!/usr/bin/env python3
"""Regenerate the committed RTL vectors (rtl_vectors/): the example network without its
SOFTMAX (example_rtl.tflite), its seeded input (example_input.npy) and their export with the
tflite-int8 preset (rtl_vectors/example/, .hex files); and the host example
(example_host.tflite, example_host_input.npy, rtl_vectors/example_host/: host layers at the
head, in the middle and at the tail). README.md and tb/ are not touched.

    . .venv/bin/activate && python scripts/regen_rtl_vectors.py [--dest DIR]

tests/test_rtl_vectors.py regenerates into a temp folder and checks the committed files are
byte-identical, so run this after any change that alters the export (and commit the result).
"""
import sys

from hwsim.export.exporter import main

if __name__ == "__main__":
    sys.exit(main(["--regen-rtl-vectors", *sys.argv[1:]]))
