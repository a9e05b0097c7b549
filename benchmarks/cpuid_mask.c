/* Run a program as on a CPU without AVX-512, VNNI or AMX (benchmarks/avx2_only.sh loads this
 * with LD_PRELOAD).
 *
 * Linux can make the CPUID instruction fault (arch_prctl ARCH_SET_CPUID, 0; /proc/cpuinfo
 * flag "cpuid_fault"). This library does so when it is loaded, before the program's own code
 * runs, and answers each CPUID from its SIGSEGV handler: it turns faulting off for the one
 * instruction, executes it, turns faulting on again, clears the feature bits below in the
 * answer and steps over the instruction. Everything in the process that asks CPUID what the CPU
 * can do then sees an AVX2 CPU: LLVM (so Numba compiles hwsim's kernels for AVX2 and hwsim
 * takes its avx2 path), NumPy's dispatch, and TFLite's XNNPACK (cpuinfo), which then runs its
 * AVX2 kernels. The instructions still run on this core: a benchmark of both engines in one
 * process compares their AVX2 code on it.
 *
 * Hidden: leaf 7.0 EBX AVX512F/DQ/IFMA/PF/ER/CD/BW/VL, ECX AVX512_VBMI/VBMI2/VNNI/BITALG/
 * VPOPCNTDQ, EDX AVX512_4VNNIW/4FMAPS/VP2INTERSECT/AMX-BF16/AVX512_FP16/AMX-TILE/AMX-INT8;
 * leaf 7.1 EAX AVX-VNNI/AVX512_BF16/AVX-IFMA, EDX AVX-VNNI-INT8/AVX-NE-CONVERT/AVX10; leaf 0x24
 * (AVX10) all zero.
 *
 * CPUID_MASK_KEEP_AVXVNNI=1 leaves AVX-VNNI (vpdpbusd on ymm, VEX-encoded) visible: a CPU such as
 * Alder Lake, with VNNI but no AVX-512.
 *
 * A program that installs its own SIGSEGV handler (python -X faulthandler, pytest) replaces
 * this one and then dies at its first CPUID. CPUID_MASK_COUNT=1 prints on exit how many CPUID
 * instructions were answered (a few hundred, at start-up: none per inference).
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

static volatile unsigned long answered;
static int keep_avx_vnni; /* CPUID_MASK_KEEP_AVXVNNI=1: an AVX-VNNI CPU without AVX-512 (Alder Lake) */

static int cpuid_faults(int off) { return (int)syscall(SYS_arch_prctl, ARCH_SET_CPUID, off ? 0 : 1); }

static void on_segv(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)si;
    greg_t *g = ((ucontext_t *)ctx)->uc_mcontext.gregs;
    const uint8_t *ip = (const uint8_t *)g[REG_RIP];
    if (ip[0] != 0x0f || ip[1] != 0xa2) { /* a real fault: let it happen again, unhandled */
        signal(SIGSEGV, SIG_DFL);
        return;
    }
    uint32_t leaf = (uint32_t)g[REG_RAX], sub = (uint32_t)g[REG_RCX], a, b, c, d;
    cpuid_faults(0);
    __cpuid_count(leaf, sub, a, b, c, d);
    cpuid_faults(1);
    if (leaf == 7 && sub == 0) {
        b &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) |
               (1u << 31));
        c &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
        d &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25));
    } else if (leaf == 7 && sub == 1) {
        a &= ~((keep_avx_vnni ? 0u : (1u << 4)) | (1u << 5) | (1u << 23));
        d &= ~((1u << 4) | (1u << 5) | (1u << 19));
    } else if (leaf == 0x24) {
        a = b = c = d = 0;
    }
    g[REG_RAX] = a;
    g[REG_RBX] = b;
    g[REG_RCX] = c;
    g[REG_RDX] = d;
    g[REG_RIP] += 2;
    answered++;
}

__attribute__((constructor)) static void start(void) {
    const char *keep = getenv("CPUID_MASK_KEEP_AVXVNNI");
    keep_avx_vnni = keep && keep[0] == '1';
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, 0);
    if (cpuid_faults(1) != 0) {
        static const char m[] = "cpuid_mask: this CPU or kernel cannot make CPUID fault (no cpuid_fault in /proc/cpuinfo)\n";
        if (write(2, m, sizeof m - 1) < 0) _exit(2);
        _exit(2);
    }
}

__attribute__((destructor)) static void stop(void) {
    if (getenv("CPUID_MASK_COUNT")) fprintf(stderr, "cpuid_mask: %lu CPUID instructions answered\n", answered);
}
