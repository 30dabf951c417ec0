/* Winograd's channel-last staging (wg_stage, wg_unstage: register transposes between planes and
   channel-last rows), for the depthwise algorithm's channel-blocked layout (src/_depthwise.pyx).
   This module's copy of the Winograd kernel table is filled at the depthwise set's level, so
   that the staging's vectors are as wide as the depthwise kernels' (FASTCONV_DEPTHWISE_LEVEL
   lowers both). */
#ifndef FASTCONV_DEPTHWISE_STAGE_H
#define FASTCONV_DEPTHWISE_STAGE_H
#define WG_LEVEL_ENV "FASTCONV_DEPTHWISE_LEVEL"
#include "_winograd_kernels.h"
#endif
