#!/usr/bin/env bash
# Run a command as on a CPU without AVX-512, VNNI or AMX: CPUID faults and is answered with
# those features hidden (benchmarks/cpuid_mask.c), for every library in the process: hwsim
# (LLVM / Numba), NumPy and TFLite's XNNPACK. Needs gcc and a CPU and kernel with CPUID
# faulting ("cpuid_fault" in /proc/cpuinfo).
#
#   bash benchmarks/avx2_only.sh python benchmarks/bench_models.py --models mobilenet --no-startup
#   CPUID_MASK_KEEP_AVXVNNI=1 bash benchmarks/avx2_only.sh ...   # AVX-VNNI kept (an Alder Lake)
#
# The shim is compiled once into $TMPDIR (or /tmp); Numba's cache keys its kernels by the CPU
# features it saw, so the AVX2 builds sit beside the host's in the same cache.
set -euo pipefail
if [ $# -eq 0 ]; then
  echo "usage: bash benchmarks/avx2_only.sh COMMAND [ARG...]" >&2
  exit 2
fi
if ! grep -qw cpuid_fault /proc/cpuinfo; then
  echo "avx2_only.sh: this CPU or kernel cannot make CPUID fault (no cpuid_fault in /proc/cpuinfo)" >&2
  exit 2
fi
src="$(cd "$(dirname "$0")" && pwd)/cpuid_mask.c"
so="${TMPDIR:-/tmp}/hwsim-cpuid-mask-$(sha256sum "$src" | cut -c1-16).so"
if [ ! -f "$so" ]; then
  tmp="$so.$$"
  gcc -O2 -shared -fPIC -Wall -o "$tmp" "$src" || { echo "avx2_only.sh: gcc could not build $src" >&2; exit 2; }
  mv -f "$tmp" "$so"
fi
export HWSIM_CPUID_MASK=avx2
[ "${CPUID_MASK_KEEP_AVXVNNI:-0}" = 1 ] && HWSIM_CPUID_MASK=avxvnni
exec env LD_PRELOAD="$so${LD_PRELOAD:+:$LD_PRELOAD}" "$@"
