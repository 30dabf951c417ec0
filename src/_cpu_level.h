/* Which instruction set fastconv's hand-vectorised kernels run at (direct, Winograd, FFT).
 *
 * Each kernel set is compiled once per level; the process picks one at first use and keeps it,
 * so results never change from call to call. Levels: 2 x86-64-v4 (AVX-512, 64-byte vectors),
 * 1 x86-64-v3 (AVX2 + FMA, 32-byte vectors), 0 the build's own target. A build that already
 * targets AVX2 or better (FASTCONV_NATIVE=1), a compiler other than GCC, or another architecture
 * compiles the kernels once, for its own target (level 0).
 */
#ifndef FASTCONV_CPU_LEVEL_H
#define FASTCONV_CPU_LEVEL_H

#include <stdlib.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__AVX2__)
#  define FASTCONV_DISPATCH 1
#else
#  define FASTCONV_DISPATCH 0
#endif
/* The build's own target: vectors of its native width. */
#if defined(__AVX512F__)
#  define FASTCONV_BASE_BYTES 64
#elif defined(__AVX__)
#  define FASTCONV_BASE_BYTES 32
#else
#  define FASTCONV_BASE_BYTES 16
#endif

/* The best level this machine has; the environment variable `lower_env` set to 0 or 1 asks for
   a lower one (read at each call: callers cache the answer), to test every kernel set. */
static int fastconv_cpu_level(const char* lower_env) {
#if FASTCONV_DISPATCH
    const char* lower = getenv(lower_env);
    int found;
    __builtin_cpu_init();
    found = __builtin_cpu_supports("x86-64-v4") ? 2
            : __builtin_cpu_supports("x86-64-v3") ? 1 : 0;
    if (lower && (lower[0] == '0' || lower[0] == '1') && lower[0] - '0' < found)
        found = lower[0] - '0';
    return found;
#else
    (void)lower_env;
    return 0;
#endif
}

/* The targets of the per-level copies of a kernel set (used where FASTCONV_DISPATCH is 1). */
#define FASTCONV_TARGET_V4 __attribute__((target("arch=x86-64-v4")))
#define FASTCONV_TARGET_V3 __attribute__((target("arch=x86-64-v3")))

/* `static int NAME(void)`: the level a kernel set runs at, fastconv_cpu_level(ENV) asked at its
   first use and kept for the life of the process. */
#define FASTCONV_LEVEL_FUNCTION(NAME, ENV)                                                         \
static int NAME(void) {                                                                            \
    static int level = -1;                                                                         \
    if (level < 0)                                                                                 \
        level = fastconv_cpu_level(ENV);                                                           \
    return level;                                                                                  \
}

/* The call of F##_v4, F##_v3 or F##_base with ARGS (a parenthesised list) that LEVEL picks, as
   an expression (void or not); only F##_base where there is one copy. */
#if FASTCONV_DISPATCH
#  define FASTCONV_PICK(LEVEL, F, ARGS)                                                            \
       ((LEVEL) == 2 ? F##_v4 ARGS : (LEVEL) == 1 ? F##_v3 ARGS : F##_base ARGS)
#else
#  define FASTCONV_PICK(LEVEL, F, ARGS) (F##_base ARGS)
#endif

/* Bytes of one vector at a level. */
static inline Py_ssize_t fastconv_vector_bytes(int level) {
    return level == 2 ? 64 : level == 1 ? 32 : FASTCONV_BASE_BYTES;
}

#endif
