"""im2col + GEMM: each thread packs a chunk of the column matrix and multiplies it on BLAS.

A chunk is `width` output positions of one sample, so a thread's column buffer (R rows x width)
stays in cache; a 1x1 kernel with stride 1 and no padding needs no buffer at all (the input is the
column matrix). Everything that changes a result's rounding -- the chunk width, the channel blocks
of the input gradient, the parts of the kernel gradient's sum -- depends on the problem and the
workspace limit only, never on the thread count; the limit is kept by running fewer threads.
"""
import math

import numpy as np

from .. import _config, _im2col

NAME = "im2col"

CHUNK_COLUMNS = 256     # output positions per chunk: R x 256 values stay in a core's L2
BLOCK_ROWS = 576        # input-gradient rows (channels x taps) per work item
MAX_PARTS = 16          # partial sums of the kernel gradient
BLAS_INT_MAX = 2**31 - 1
# Shipped cost constants (issue 4 calibrates them on the user's machine).
GEMM_FLOPS_PER_S = {"float32": 250e9, "float64": 120e9}
BYTES_PER_S = 20e9


def _pointwise(spec):
    return (math.prod(spec.kernel_size) == 1 and spec.stride == (1, 1, 1)
            and spec.pad_low == spec.pad_high == (0, 0, 0))


class _Plan:
    """Chunking and workspace of one problem and operation."""

    def __init__(self, spec, op):
        k_vol = math.prod(spec.kernel_size)
        positions = math.prod(spec.output_size)
        group_channels = spec.in_channels // spec.groups
        limit = _config.get_workspace_limit() // spec.dtype.itemsize
        blocks = -(-group_channels * k_vol // BLOCK_ROWS)
        self.block = -(-group_channels // blocks)
        rows = {"forward": spec.in_channels * k_vol, "grad_kernel": spec.in_channels * k_vol,
                "grad_input": self.block * k_vol}[op]
        self.rows = 0 if _pointwise(spec) else rows
        width = min(positions, CHUNK_COLUMNS)
        self.parts = self.partial_elements = 0
        if op == "grad_kernel":
            kernel_size = spec.out_channels * group_channels * k_vol
            chunks = spec.batch * -(-positions // width)
            self.parts = max(1, min(MAX_PARTS, chunks, limit // (2 * kernel_size)))
            self.partial_elements = self.parts * kernel_size
        room = limit - self.partial_elements
        self.width = max(1, min(width, room // max(self.rows, 1)))
        per_thread = self.rows * self.width
        self.threads = max(1, min(_config.get_num_threads(), room // per_thread if per_thread else 1 << 30))
        self.work_elements = self.threads * per_thread

    @property
    def workspace_elements(self):
        return self.work_elements + self.partial_elements


def supports(spec, op):
    rows = spec.in_channels * math.prod(spec.kernel_size)
    plan = _Plan(spec, op)
    if plan.workspace_elements * spec.dtype.itemsize > _config.get_workspace_limit():
        return False, (f"even one column chunk ({plan.rows} rows) and the partial sums exceed the "
                       f"workspace limit of {_config.get_workspace_limit()} bytes")
    if max(rows, spec.out_channels, math.prod(spec.output_size)) > BLAS_INT_MAX:
        return False, "a matrix dimension exceeds the 32-bit BLAS integer range"
    return True, ""


def workspace(spec, op):
    return _Plan(spec, op).workspace_elements * spec.dtype.itemsize


def cost(spec, op):
    """GEMM time at a rate that falls with thin matrices, plus the traffic of packing."""
    rows_g = spec.in_channels // spec.groups * math.prod(spec.kernel_size)
    k_g = spec.out_channels // spec.groups
    efficiency = min(1.0, rows_g / 64) * min(1.0, k_g / 32)
    gemm = spec.flops / (GEMM_FLOPS_PER_S[spec.dtype.name] * max(efficiency, 0.02))
    copies = 0 if _pointwise(spec) else 2 * spec.batch * rows_g * spec.groups * math.prod(spec.output_size)
    return gemm + copies * spec.dtype.itemsize / BYTES_PER_S


def forward(spec, x, w):
    plan = _Plan(spec, "forward")
    y = np.empty(spec.y_shape, spec.dtype)
    with _config.blas_single_threaded():
        _im2col.forward(spec, x.reshape(-1), w.reshape(-1), y.reshape(-1),
                        np.empty(plan.work_elements, spec.dtype), plan.width, plan.threads)
    return y


def grad_input(spec, gy, w):
    plan = _Plan(spec, "grad_input")
    gx = np.zeros(spec.x_shape, spec.dtype)
    with _config.blas_single_threaded():
        _im2col.grad_input(spec, gy.reshape(-1), w.reshape(-1), gx.reshape(-1),
                           np.empty(plan.work_elements, spec.dtype), plan.width, plan.block,
                           plan.threads)
    return gx


def grad_kernel(spec, x, gy):
    plan = _Plan(spec, "grad_kernel")
    gw = np.empty(spec.w_shape, spec.dtype)
    with _config.blas_single_threaded():
        _im2col.grad_kernel(spec, x.reshape(-1), gy.reshape(-1), gw.reshape(-1),
                            np.empty(plan.work_elements, spec.dtype),
                            np.empty(plan.partial_elements, spec.dtype), plan.width, plan.parts,
                            plan.threads)
    return gw
