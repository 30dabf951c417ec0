/* FASTCONV_EACH_LEVEL (_cpu_level.h) for a kernel set written as a header body: includes the
   header FASTCONV_LEVEL_BODY once per level this build compiles, in the same order (the
   reference first), with FASTCONV_LV (the level's suffix: base, v3, v4), FASTCONV_ATTR (its
   target attribute), FASTCONV_VB (its vector bytes) and FASTCONV_NF, FASTCONV_ND (its float and
   double lanes, literals) defined. No include guard: a set includes it once. */
#include "_cpu_level.h"

#define FASTCONV_LV base
#define FASTCONV_ATTR
#define FASTCONV_VB FASTCONV_BASE_BYTES
#define FASTCONV_NF FASTCONV_BASE_LANES_F
#define FASTCONV_ND FASTCONV_BASE_LANES_D
#include FASTCONV_LEVEL_BODY
#undef FASTCONV_LV
#undef FASTCONV_ATTR
#undef FASTCONV_VB
#undef FASTCONV_NF
#undef FASTCONV_ND

#if FASTCONV_DISPATCH
#define FASTCONV_LV v3
#define FASTCONV_ATTR FASTCONV_TARGET_V3
#define FASTCONV_VB 32
#define FASTCONV_NF 8
#define FASTCONV_ND 4
#include FASTCONV_LEVEL_BODY
#undef FASTCONV_LV
#undef FASTCONV_ATTR
#undef FASTCONV_VB
#undef FASTCONV_NF
#undef FASTCONV_ND

#define FASTCONV_LV v4
#define FASTCONV_ATTR FASTCONV_TARGET_V4
#define FASTCONV_VB 64
#define FASTCONV_NF 16
#define FASTCONV_ND 8
#include FASTCONV_LEVEL_BODY
#undef FASTCONV_LV
#undef FASTCONV_ATTR
#undef FASTCONV_VB
#undef FASTCONV_NF
#undef FASTCONV_ND
#endif
