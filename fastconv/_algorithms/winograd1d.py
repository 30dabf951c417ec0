"""Winograd convolution F(6, 3) for 1-D kernels of 3 taps at stride 1 (any dilation).

The 1-D case of winograd.py (which hands 1-D problems here): an output tile of 6 values costs 8
multiplications per (input, output) channel pair instead of 18, one GEMM over the channels per
transformed position, (tiles x C) @ (C x K). The transforms are NNPACK's F(6, 3), on the points 0,
+-1, +-2, +-1/2 and infinity: V = B^T d, U = G g, y = A^T M; the kernel gradient sums Mg^T V with
Mg = A gy and untransforms with G^T, the exact gradient of the forward formula. The input
gradient at stride 1 is the same pass from gy with the kernel reversed, channels swapped and
offset 2 d - p. Dilation d is a stride inside a block of 6 d Tr outputs (src/_winograd1d.pyx).
The GEMMs run on fastconv's own register tiles (wg1_gemm: 6 rows x 64 columns at AVX-512), not
BLAS. In float32 it rounds to about 2e-6 of the result's magnitude (the TCN's 64-channel layer;
F(4, 3) gave 1.2e-6, and no more speed once the GEMM was fastconv's own), far inside the
contract's 2e-4; non-finite values go to summation as winograd.py says.
"""

import math

import numpy as np

from .. import _aligned, _config, _scratch
from ._plan_cache import per_problem
from ._winograd_parts import parts as _parts
from .._lazy import LazyModule

_winograd1d = LazyModule("fastconv._winograd1d")     # loaded on first use

POSITIONS = 8
TILE = 6                    # outputs per tile
TARGET_TILES = 128          # tiles per block: V and M of 64 channels stay within a core's L2
MIN_ITEMS = 4               # blocks at the least (where there are enough tiles)
# Cost model, in winograd.py's units (its GEMM rate and fixed costs): the 8 GEMMs, and the
# stage, transforms and unstage per (tile, channel) they touch, set on the TCN's layers (64
# channels, 1024 long, dilation 1-8, Xeon AVX-512); calibrate() fits its own 1-D line on top.
TILE_CHANNEL_S = {"float32": 2.0e-9, "float64": 4.0e-9}


def _pad(n, lanes):
    return -(-n // lanes) * lanes


def _tiles_per_run(runs, batch, dil):
    """Tiles of one residue in a block: at most TARGET_TILES // dil, and blocks even in size and
    (where a few blocks are all the work) a multiple of MIN_ITEMS in all over the batch, so 1, 2
    or 4 threads share them evenly. It depends on the problem alone (the kernel gradient's
    partial sums follow the blocks, and nothing may depend on the thread count)."""
    if runs == 0:
        return 1
    blocks = -(-runs // max(1, TARGET_TILES // dil))
    if batch * blocks < 4 * MIN_ITEMS:          # few items: 5 blocks on 2 threads ran as 3
        step = MIN_ITEMS // math.gcd(MIN_ITEMS, batch)
        blocks = min(runs, -(-blocks // step) * step)
    return -(-runs // blocks)


def geometry_reason(spec):
    if spec.kernel_size[2] != 3:
        return f"it needs a kernel of 3 taps in 1-D, got {spec.kernel_size[2]}"
    if spec.stride[2] != 1:
        return f"it needs stride 1 in 1-D, got {spec.stride[2]}"
    if spec.groups != 1:
        return f"it needs groups=1, got groups={spec.groups}"
    return None


class Plan(_scratch.PlanWorkspace):
    """Tiling, scratch, parts and thread count of one problem and operation."""

    SCRATCH = "winograd.work"

    def __init__(self, spec, op, lanes):
        itemsize = spec.dtype.itemsize
        lin, lout = spec.input_size[2], spec.output_size[2]
        dil, pad = spec.dilation[2], spec.pad_low[2]
        if op == "grad_input":      # the forward pass from gy to gx, offset 2 d - p
            cin, cout, off = spec.out_channels, spec.in_channels, 2 * dil - pad
            lin, lout = lout, lin
        else:
            cin, cout, off = spec.in_channels, spec.out_channels, pad
        self.cin, self.cout, self.dil = cin, cout, dil
        CP, KP = _pad(max(cin, 1), lanes), _pad(max(cout, 1), lanes)
        self.CP, self.KP = CP, KP
        runs = -(-lout // (TILE * dil))            # tiles of one residue over a whole sample
        Tr = _tiles_per_run(runs, max(1, spec.batch), dil)
        self.u_elements = POSITIONS * max(cin, 1) * KP      # U, or dU: cin x KP a position
        limit = _config.get_workspace_limit() // itemsize
        gap = POSITIONS * 64 // itemsize        # the planes' gaps (WG_PLANE)
        while True:
            T, B = dil * Tr, TILE * dil * Tr
            size1 = max((B + 2 * dil) * CP, B * KP,
                        0 if op == "grad_kernel" else POSITIONS * T * KP + gap)
            size2 = max(POSITIONS * T * CP + gap, B * KP)
            size3 = POSITIONS * T * KP + gap if op == "grad_kernel" else 0
            self.per_thread = size1 + size2 + size3
            self.blocks = -(-lout // B)
            self.items = spec.batch * self.blocks
            self.tiles = self.items * T
            gemm_flops = 2 * POSITIONS * self.tiles * cin * KP
            if op == "grad_kernel":
                self.parts = min(_parts(gemm_flops, self.u_elements), max(1, self.items),
                                 max(1, (limit - self.per_thread) // self.u_elements - 1))
                self.fixed = (self.parts + 1) * self.u_elements
            else:
                self.parts, self.fixed = 0, self.u_elements
            if self.fixed + self.per_thread <= limit or Tr == 1:
                break
            Tr = -(-Tr // 2)
        self.tiling = (cin, cout, CP, KP, lin, lout, off, dil, Tr, size1, size2, size3)
        room = limit - self.fixed
        self.threads = max(1, min(_config.get_num_threads(),
                                  room // self.per_thread if room > 0 else 1))


plan = per_problem(lambda spec, op: Plan(spec, op, _winograd1d.lanes(spec.dtype.itemsize)))


def supports(spec, op):
    reason = geometry_reason(spec)
    if reason is not None:
        return False, reason
    p = plan(spec, op)
    if not p.fits_one_thread(spec):
        return False, (f"the transformed kernel and one block of one tile per residue need "
                       f"{(p.fixed + p.per_thread) * spec.dtype.itemsize} bytes, above the "
                       f"workspace limit of {_config.get_workspace_limit()} bytes")
    return True, ""


def layout(spec, op):
    p = plan(spec, op)
    return f"1-D blocks: {p.items} of {p.tiles} tiles"


def workspace(spec, op):
    return plan(spec, op).workspace_elements * spec.dtype.itemsize


def cost(spec, op, gemm_rate, call_overhead, parallel_efficiency, partial_value_s):
    """Seconds, in winograd.py's model (its GEMM rate, per-call cost and parallel efficiency)."""
    p = plan(spec, op)
    efficiency = min(1.0, (max(p.cin, 1) / 32) ** 0.5)     # thin GEMMs, as winograd.py's
    gemm = 2 * POSITIONS * p.tiles * p.cin * p.KP / (gemm_rate * efficiency)
    transforms = p.tiles * (p.CP + p.KP) * TILE_CHANNEL_S[spec.dtype.name]
    kernel = p.u_elements * p.parts * partial_value_s
    threads = _config.model_threads(spec)
    speedup = 1 + (min(threads, p.items) - 1) * parallel_efficiency
    return call_overhead + (gemm + transforms + kernel) / speedup


def _transformed_kernel(w, flipped, KP, threads):
    """U[xi][cin][KP] = G g (in double) of w's kernels (K, C, 3); flipped: the input gradient's,
    reversed with the channels swapped. Columns past the output channels are 0."""
    K, C = w.shape[:2]
    ins, outs = (K, C) if flipped else (C, K)
    u = _scratch.empty("winograd.u", POSITIONS * ins * KP, w.dtype)
    if KP > outs:
        u.reshape(-1, KP)[:, outs:] = 0
    _winograd1d.kernel_transform(np.ascontiguousarray(w).reshape(-1), u, K, C, KP, flipped,
                                 threads)
    return u


def run_pass(spec, op, a, w):
    """forward (a = x) or grad_input (a = gy); None if a value written was not finite."""
    p = plan(spec, op)
    shape = spec.x_shape if op == "grad_input" else spec.y_shape
    out = _aligned.empty(shape, spec.dtype)
    if out.size == 0:
        return out
    if a.size == 0 or p.cin == 0:
        out[...] = 0
        return out
    u = _transformed_kernel(w, op == "grad_input", p.KP, p.threads)
    flags = np.zeros(p.items, np.uint8)
    bad = _winograd1d.forward(p.tiling, a.reshape(spec.batch, -1), u, out.reshape(spec.batch, -1),
                              p.work(spec.dtype), flags, p.threads)    # its own GEMM: no BLAS
    return None if bad else out


def grad_kernel(spec, x, gy):
    p = plan(spec, "grad_kernel")
    if gy.size == 0 or x.size == 0 or spec.w_shape[0] * spec.w_shape[1] == 0:
        return _aligned.zeros(spec.w_shape, spec.dtype)
    du = _scratch.empty("winograd.du", p.u_elements, spec.dtype)
    _winograd1d.grad_kernel(p.tiling, x.reshape(spec.batch, -1), gy.reshape(spec.batch, -1), du,
                            p.work(spec.dtype),
                            _scratch.empty("winograd.partials", p.parts * p.u_elements,
                                           spec.dtype),
                            p.parts, p.threads)
    gw = _aligned.empty(spec.w_shape, spec.dtype)
    _winograd1d.kernel_untransform(du, gw.reshape(-1), p.cout, p.cin, p.KP)
    return gw
