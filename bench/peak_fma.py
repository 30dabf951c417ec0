"""The machine's peak fused multiply-add rate: the physical limit every kernel figure is a fraction
of (issue 12). Compiles a small C program with the system compiler (`CC`, default `cc`) and runs,
on 1 and 2 OpenMP threads, chains of independent vector FMAs that never touch memory, at each
vector width the CPU has (AVX-512: 16 floats, AVX2 + FMA: 8), float32 and float64.

    python bench/peak_fma.py [--threads 1,2]

Prints GFLOP/s (2 per lane per FMA). Needs a compiler with OpenMP; nothing of fastconv.
"""
import argparse
import os
import shlex
import subprocess
import sys
import tempfile

SOURCE = r"""
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

/* CH independent accumulators: more than FMA latency x pipes of any core, and with the two
   constants within the level's registers (16 of AVX2's 16 would spill) */
#define PEAK(NAME, TARGET, T, BYTES, CH)                                                        \
__attribute__((target(TARGET))) static double NAME(long iters, T seed) {                        \
    typedef T V __attribute__((vector_size(BYTES)));                                            \
    V acc[CH], m = (V){0} + (T)0.999999, c = (V){0} + (T)1e-7;                              \
    for (int i = 0; i < CH; i++) acc[i] = (V){0} + seed + (T)i;                             \
    for (long k = 0; k < iters; k++) {                                                          \
        _Pragma("GCC unroll 16")                                                                \
        for (int i = 0; i < CH; i++) acc[i] = acc[i] * m + c;                               \
    }                                                                                           \
    double s = 0;                                                                               \
    for (int i = 0; i < CH; i++)                                                            \
        for (int l = 0; l < (int)(BYTES / sizeof(T)); l++) s += acc[i][l];                      \
    return s;                                                                                   \
}

PEAK(f32_avx512, "avx512f,fma", float, 64, 16)
PEAK(f64_avx512, "avx512f,fma", double, 64, 16)
PEAK(f32_avx2, "avx2,fma", float, 32, 12)
PEAK(f64_avx2, "avx2,fma", double, 32, 12)

int main(int argc, char** argv) {
    const char* which = argv[1];    /* 5s, 5d, 2s, 2d: level and precision */
    int threads = atoi(argv[2]);
    long iters = atol(argv[3]);
    double sink = 0, t0, t;
    omp_set_num_threads(threads);
    t0 = omp_get_wtime();
#pragma omp parallel reduction(+:sink)
    {
        double seed = omp_get_thread_num() * 1e-3;
        if (which[0] == '5' && which[1] == 's') sink += f32_avx512(iters, (float)seed);
        if (which[0] == '5' && which[1] == 'd') sink += f64_avx512(iters, seed);
        if (which[0] == '2' && which[1] == 's') sink += f32_avx2(iters, (float)seed);
        if (which[0] == '2' && which[1] == 'd') sink += f64_avx2(iters, seed);
    }
    t = omp_get_wtime() - t0;
    printf("%.6f %g\n", t, sink);
    return 0;
}
"""

LANES = {"5s": 16, "5d": 8, "2s": 8, "2d": 4}
CHAINS = {"5s": 16, "5d": 16, "2s": 12, "2d": 12}
NAMES = {"5s": "AVX-512 float32", "5d": "AVX-512 float64", "2s": "AVX2 float32",
         "2d": "AVX2 float64"}


def _has(flag):
    try:
        with open("/proc/cpuinfo") as f:
            return flag in f.read().split()
    except OSError:
        return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--iters", type=int, default=200_000_000)
    args = ap.parse_args(argv)
    cc = shlex.split(os.environ.get("CC", "cc"))
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = os.path.join(tmp, "peak.c"), os.path.join(tmp, "peak")
        with open(src, "w") as f:
            f.write(SOURCE)
        subprocess.run(cc + ["-O2", "-fopenmp", src, "-o", exe], check=True)
        kinds = [k for k in LANES if k[0] == "2" or _has("avx512f")]
        print("kind                 threads   GFLOP/s")
        for kind in kinds:
            for threads in map(int, args.threads.split(",")):
                best = None
                for _ in range(3):
                    out = subprocess.run([exe, kind, str(threads), str(args.iters // 16)],
                                         capture_output=True, text=True, check=True).stdout
                    seconds = float(out.split()[0])
                    best = seconds if best is None else min(best, seconds)
                flops = 2.0 * LANES[kind] * CHAINS[kind] * (args.iters // 16) * threads
                print(f"{NAMES[kind]:20s} {threads:7d} {flops / best / 1e9:9.1f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
