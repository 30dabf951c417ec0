"""im2col + GEMM: the column matrix of a tile of the input times the kernel matrix, on BLAS.

The column buffer is bounded by the workspace limit: samples are batched into one GEMM until a tile
has about TARGET_COLUMNS columns (small images make small GEMMs otherwise), and a sample too large
for the limit is split over its output positions. A 1x1 kernel with stride 1 and no padding needs
no copy at all: the input is already the column matrix.
"""
import math

import numpy as np

from .. import _config, _im2col

NAME = "im2col"

TARGET_COLUMNS = 4096
BLAS_INT_MAX = 2**31 - 1
# Shipped cost constants (issue 4 calibrates them on the user's machine).
GEMM_FLOPS_PER_S = {"float32": 150e9, "float64": 70e9}
BYTES_PER_S = 10e9


def _pointwise(spec):
    return (math.prod(spec.kernel_size) == 1 and spec.stride == (1, 1, 1)
            and spec.pad_low == spec.pad_high == (0, 0, 0))


def _plan(spec):
    """(tile_n, tile_p, col elements, tmp elements) within the workspace limit."""
    rows = spec.in_channels * math.prod(spec.kernel_size)
    positions = math.prod(spec.output_size)
    if _pointwise(spec):
        return 1, positions, 0, 0
    limit = _config.get_workspace_limit() // spec.dtype.itemsize
    # several whole samples: column matrix plus a (K, columns) buffer to reorder the GEMM's output
    tile_n = min(spec.batch, -(-TARGET_COLUMNS // positions),
                 limit // ((rows + spec.out_channels) * positions))
    if tile_n > 1:
        columns = tile_n * positions
        return tile_n, positions, rows * columns, spec.out_channels * columns
    if rows * positions <= limit:
        return 1, positions, rows * positions, 0
    tile_p = max(1, limit // rows)
    return 1, tile_p, rows * tile_p, 0


def supports(spec, op):
    rows = spec.in_channels * math.prod(spec.kernel_size)
    if rows * spec.dtype.itemsize > _config.get_workspace_limit():
        return False, (f"one column ({rows} values) exceeds the workspace limit of "
                       f"{_config.get_workspace_limit()} bytes")
    tile_n, tile_p, _, _ = _plan(spec)
    if max(rows, spec.out_channels, tile_n * tile_p) > BLAS_INT_MAX:
        return False, "a matrix dimension exceeds the 32-bit BLAS integer range"
    return True, ""


def workspace(spec, op):
    _, _, col, tmp = _plan(spec)
    return (col + tmp) * spec.dtype.itemsize


def cost(spec, op):
    """GEMM time at a rate that falls with thin matrices, plus the traffic of the column buffer."""
    rows_g = spec.in_channels // spec.groups * math.prod(spec.kernel_size)
    k_g = spec.out_channels // spec.groups
    efficiency = min(1.0, rows_g / 64) * min(1.0, k_g / 32)
    gemm = spec.flops / (GEMM_FLOPS_PER_S[spec.dtype.name] * max(efficiency, 0.02))
    copies = 0 if _pointwise(spec) else 2 * spec.batch * rows_g * spec.groups * math.prod(spec.output_size)
    return gemm + copies * spec.dtype.itemsize / BYTES_PER_S


def _buffers(spec):
    tile_n, tile_p, col, tmp = _plan(spec)
    return np.empty(col, spec.dtype), np.empty(tmp, spec.dtype), tile_n, tile_p


def forward(spec, x, w):
    y = np.empty(spec.y_shape, spec.dtype)
    _im2col.forward(spec, x.reshape(-1), w.reshape(-1), y.reshape(-1), *_buffers(spec),
                    _config.get_num_threads())
    return y


def grad_input(spec, gy, w):
    gx = np.zeros(spec.x_shape, spec.dtype)
    _im2col.grad_input(spec, gy.reshape(-1), w.reshape(-1), gx.reshape(-1), *_buffers(spec),
                       _config.get_num_threads())
    return gx


def grad_kernel(spec, x, gy):
    gw = np.zeros(spec.w_shape, spec.dtype)
    _im2col.grad_kernel(spec, x.reshape(-1), gy.reshape(-1), gw.reshape(-1), *_buffers(spec),
                        _config.get_num_threads())
    return gw
