/* The one instruction-set dispatch of fastconv's hand-vectorised kernel sets (direct, Winograd,
 * FFT): which levels a build compiles, which one a process runs, and the table through which
 * every call reaches it.
 *
 * Levels: 2 x86-64-v4 (AVX-512, 64-byte vectors), 1 x86-64-v3 (AVX2 + FMA, 32-byte vectors),
 * 0 the build's own target (16-byte SSE2 vectors on plain x86-64, NEON on aarch64, ...). Every
 * set is compiled for level 0, the reference that is always there; where FASTCONV_DISPATCH is 1
 * (x86-64, GCC >= 11 or clang >= 12, a build not already targeting AVX2) also for levels 1 and 2,
 * each copy with vectors of its own width. As BLIS and NNPACK register their kernels, a set's
 * table is filled once, at import, with the level-0 kernels first and then overridden by each
 * faster level the process runs; its entry points call through the table and never ask which
 * instruction set they run on. One process keeps one table, so results never change from call to
 * call. FASTCONV_<SET>_LEVEL=0 or 1 (set by fastconv/_kernel_level.py from FASTCONV_KERNEL_LEVEL)
 * asks for a lower level, to test every set.
 *
 * A set written as one macro per level instantiates it with FASTCONV_EACH_LEVEL; a set written
 * as a header body includes that body once per level (_winograd_kernels.h, _fft_columns.h), in
 * the same order. Either way each copy is named with the level's suffix (base, v3, v4).
 */
#ifndef FASTCONV_CPU_LEVEL_H
#define FASTCONV_CPU_LEVEL_H

#include <stdlib.h>

/* The compilers whose target attribute knows the x86-64-v3/v4 names (GCC 11, clang 12; Apple
   numbers its clang on its own, 13 being LLVM 12) compile the faster copies. */
#if defined(__clang__) && defined(__apple_build_version__)
#  define FASTCONV_TARGET_NAMES (__clang_major__ >= 13)
#elif defined(__clang__)
#  define FASTCONV_TARGET_NAMES (__clang_major__ >= 12)
#elif defined(__GNUC__)
#  define FASTCONV_TARGET_NAMES (__GNUC__ >= 11)
#else
#  define FASTCONV_TARGET_NAMES 0
#endif
#if defined(__x86_64__) && !defined(__AVX2__) && FASTCONV_TARGET_NAMES
#  define FASTCONV_DISPATCH 1
#else
#  define FASTCONV_DISPATCH 0
#endif

/* The build's own target: vectors of its native width (as literal lane counts too, for names). */
#if defined(__AVX512F__)
#  define FASTCONV_BASE_BYTES 64
#  define FASTCONV_BASE_LANES_F 16
#  define FASTCONV_BASE_LANES_D 8
#elif defined(__AVX__)
#  define FASTCONV_BASE_BYTES 32
#  define FASTCONV_BASE_LANES_F 8
#  define FASTCONV_BASE_LANES_D 4
#else
#  define FASTCONV_BASE_BYTES 16
#  define FASTCONV_BASE_LANES_F 4
#  define FASTCONV_BASE_LANES_D 2
#endif

/* The targets of the faster copies (used where FASTCONV_DISPATCH is 1). */
#define FASTCONV_TARGET_V4 __attribute__((target("arch=x86-64-v4")))
#define FASTCONV_TARGET_V3 __attribute__((target("arch=x86-64-v3")))

/* Whether the CPU (and the OS, which must save the wider registers) has a level's features:
   by the level's name where the compiler knows it (GCC 12, clang 18), else feature by feature --
   all of x86-64-v4, and of x86-64-v3 all but F16C, LZCNT and MOVBE, which older clang cannot
   ask for and which every CPU with AVX2, FMA and BMI2 has. */
#if FASTCONV_DISPATCH && ((!defined(__clang__) && __GNUC__ >= 12)                                \
                          || (defined(__clang__) && !defined(__apple_build_version__)          \
                              && __clang_major__ >= 18))
#  define FASTCONV_HAS_V4() __builtin_cpu_supports("x86-64-v4")
#  define FASTCONV_HAS_V3() __builtin_cpu_supports("x86-64-v3")
#else
#  define FASTCONV_HAS_V4()                                                                       \
       (FASTCONV_HAS_V3() && __builtin_cpu_supports("avx512f")                                    \
        && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512cd")               \
        && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
#  define FASTCONV_HAS_V3()                                                                       \
       (__builtin_cpu_supports("avx") && __builtin_cpu_supports("avx2")                           \
        && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi")                         \
        && __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("popcnt")                     \
        && __builtin_cpu_supports("sse4.2"))
#endif

/* The level numbers of the copies' suffixes. */
enum { FASTCONV_LEVEL_base = 0, FASTCONV_LEVEL_v3 = 1, FASTCONV_LEVEL_v4 = 2 };

/* The best level this machine has; the environment variable `lower_env` set to 0 or 1 asks for
   a lower one. */
static int fastconv_cpu_level(const char* lower_env) {
#if FASTCONV_DISPATCH
    const char* lower = getenv(lower_env);
    int found;
    __builtin_cpu_init();
    found = FASTCONV_HAS_V4() ? 2 : FASTCONV_HAS_V3() ? 1 : 0;
    if (lower && (lower[0] == '0' || lower[0] == '1') && lower[0] - '0' < found)
        found = lower[0] - '0';
    return found;
#else
    (void)lower_env;
    return 0;
#endif
}

/* M(LV, ATTR, BYTES, LANES_F, LANES_D) for each level this build compiles, the reference first:
   the level's suffix, its target attribute, its vector bytes and its float and double lanes (as
   literals). */
#if FASTCONV_DISPATCH
#  define FASTCONV_EACH_LEVEL(M)                                                                  \
       M(base, , FASTCONV_BASE_BYTES, FASTCONV_BASE_LANES_F, FASTCONV_BASE_LANES_D)               \
       M(v3, FASTCONV_TARGET_V3, 32, 8, 4)                                                        \
       M(v4, FASTCONV_TARGET_V4, 64, 16, 8)
#else
#  define FASTCONV_EACH_LEVEL(M)                                                                  \
       M(base, , FASTCONV_BASE_BYTES, FASTCONV_BASE_LANES_F, FASTCONV_BASE_LANES_D)
#endif

/* A kernel set's table: `struct NAME##_table NAME##_kernels` with one pointer per entry point,
   `NAME##_init()` that fills it (call it once, before any kernel runs: the modules do at import)
   and `NAME##_level()`, the level it was filled for. ENTRIES(X, LV) calls X(F, LV) for each
   entry point F, whose copies are F##_base, F##_v3, F##_v4; a call is `NAME##_kernels.F(...)`.
   ENV names the environment variable that asks for a lower level. */
#define FASTCONV_TABLE_FIELD(F, LV) __typeof__(F##_##LV)* F;
#define FASTCONV_TABLE_SET(F, LV) table_->F = F##_##LV;
#define FASTCONV_TABLE_FILL(ENTRIES, LV)                                                          \
    if (level_ >= FASTCONV_LEVEL_##LV) {                                                          \
        ENTRIES(FASTCONV_TABLE_SET, LV)                                                           \
        table_->level = FASTCONV_LEVEL_##LV;                                                      \
    }
#if FASTCONV_DISPATCH
#  define FASTCONV_TABLE_OVERRIDES(ENTRIES)                                                       \
       FASTCONV_TABLE_FILL(ENTRIES, v3) FASTCONV_TABLE_FILL(ENTRIES, v4)
#else
#  define FASTCONV_TABLE_OVERRIDES(ENTRIES)
#endif
#define FASTCONV_KERNEL_TABLE(NAME, ENTRIES, ENV)                                                 \
struct NAME##_table { int level; ENTRIES(FASTCONV_TABLE_FIELD, base) };                           \
static struct NAME##_table NAME##_kernels;                                                        \
static void NAME##_init(void) {                                                                   \
    struct NAME##_table* table_ = &NAME##_kernels;                                                \
    const int level_ = fastconv_cpu_level(ENV);                                                   \
    FASTCONV_TABLE_FILL(ENTRIES, base)          /* the reference, always there */                 \
    FASTCONV_TABLE_OVERRIDES(ENTRIES)           /* then each faster level the CPU runs */         \
}                                                                                                 \
static int NAME##_level(void) {                                                                   \
    return NAME##_kernels.level;                                                                  \
}

/* Bytes of one vector at a level. */
static inline Py_ssize_t fastconv_vector_bytes(int level) {
    return level == 2 ? 64 : level == 1 ? 32 : FASTCONV_BASE_BYTES;
}

#endif
