"""The pools of `fastconv.pooling` that make sense chunked, on dask arrays (N, C, *spatial).

Windowed pools (max, average, Lp, distance-weighted) cut the spatial axes as `conv` does
(`_overlap.gather_plan`) and call the NumPy pool on each block. The NumPy pools take one
symmetric padding, so a block is handed over with that padding and arranged so that the windows
it must compute see the true padding only where the block touches a true end of an axis: where
it does not, the block begins with a filler of ``ceil(p / s) * s - p`` elements (read only by
outputs that are dropped) and ends at its last window. Global pools reduce block by block;
the cross-channel pool is pointwise in space. Adaptive pools, whose windows depend on the whole
size, are not offered: they are a small output of a large input, `global_*` or a plain
`fastconv.pooling` call on a coarsened array do that job.
"""
import numpy as np

import dask.array as da

from fastconv.dask._overlap import (as_dask, check_numeric, check_threads, gather_plan,
                                    halo_array, limited)


def _pool_region(block, stride, pad, extent, n):
    """For one axis of a block: (data_start, data_stop, filler, first), the slice of the block to
    pool (block-local), the filler to put before it, and the index of the first output wanted
    among the NumPy call's outputs (its padding being `pad` on both sides)."""
    o0, o1, in_start, in_stop = block
    start = o0 * stride - pad                 # the first window, in input positions
    stop = (o1 - 1) * stride - pad + extent
    if start <= 0:                            # the block holds position 0: the true padding
        assert in_start == 0, block
        data_start, filler, first = 0, 0, o0
    else:
        first = -(-pad // stride)
        data_start, filler = start, first * stride - pad
    data_stop = in_stop if stop >= n else stop
    assert stop < n or in_stop == n, block
    return data_start - in_start, data_stop - in_start, filler, first


def _windowed(x, pool, name, kernel_size, stride, padding, dilation, ceil_mode, threads,
              **options):
    """Run `pool` (a fastconv.pooling function taking x, kernel_size, stride, padding, [dilation,]
    ceil_mode and `options`) block by block."""
    from fastconv import _pooling_plan
    x = as_dask(x)
    check_numeric(x)
    threads = check_threads(threads)
    if x.ndim not in (3, 4, 5):
        raise ValueError(f"x must have 3, 4 or 5 dimensions (N, C, *spatial) for fastconv.dask "
                         f"pooling (a batch; unbatched examples: x[None]), got shape {x.shape}")
    nd = x.ndim - 2
    geometry = dict(stride=stride, padding=padding, ceil_mode=ceil_mode, **options)
    if dilation is not None:
        geometry["dilation"] = dilation
    kernel = kernel_size if isinstance(kernel_size, (tuple, list)) else (kernel_size,) * nd
    meta = pool(np.empty((0,) + tuple(x.shape[1:]), x.dtype), tuple(kernel), **geometry)
    k, s, p, d, out = _pooling_plan.window(x.shape[2:], tuple(kernel), stride, padding,
                                           1 if dilation is None else dilation, ceil_mode)
    extents = [dd * (kk - 1) + 1 for kk, dd in zip(k, d)]
    sizes = x.shape[2:]
    plans = [gather_plan(n, c, stride=ss, low=pp, extent=e, outputs=m)
             for n, c, ss, pp, e, m in zip(sizes, x.chunks[2:], s, p, extents, out)]
    call = dict(geometry, stride=tuple(s), padding=tuple(p))

    def block(xb, block_id=None):
        regions = [_pool_region(pl.blocks[j], ss, pp, e, n)
                   for pl, j, ss, pp, e, n in zip(plans, block_id[2:], s, p, extents, sizes)]
        xs = xb[(slice(None), slice(None)) + tuple(slice(a, b) for a, b, _, _ in regions)]
        if any(filler for _, _, filler, _ in regions):
            xs = np.pad(xs, [(0, 0), (0, 0)] + [(filler, 0) for _, _, filler, _ in regions])
        with limited(threads):
            y = pool(xs, tuple(k), **call)
        wanted = [pl.blocks[j][1] - pl.blocks[j][0] for pl, j in zip(plans, block_id[2:])]
        keep = tuple(slice(first, first + m) for (_, _, _, first), m in zip(regions, wanted))
        y = y[(slice(None), slice(None)) + keep]
        assert y.shape[2:] == tuple(wanted), (y.shape, wanted)
        return y

    xh = halo_array(x, plans)
    chunks = (xh.chunks[0], (x.shape[1],)) + tuple(pl.out_chunks for pl in plans)
    return da.map_blocks(block, xh, chunks=chunks, dtype=meta.dtype, meta=meta[:0],
                         name=f"fastconv-{name}")


def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
             threads=None):
    """`fastconv.pooling.max_pool` on a dask array (without ``return_indices``: the flat
    indices of a block are not those of the whole plane)."""
    from fastconv import pooling
    return _windowed(x, pooling.max_pool, "max-pool", kernel_size, stride, padding, dilation,
                     ceil_mode, threads)


def avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, *,
             threads=None):
    """`fastconv.pooling.avg_pool` on a dask array."""
    from fastconv import pooling
    return _windowed(x, pooling.avg_pool, "avg-pool", kernel_size, stride, padding, None,
                     ceil_mode, threads, count_include_pad=count_include_pad)


def lp_pool(x, p, kernel_size, stride=None, padding=0, ceil_mode=False, *, threads=None):
    """`fastconv.pooling.lp_pool` (the Lp norm of each window) on a dask array."""
    from fastconv import pooling

    def pool(xs, kernel, **geometry):
        return pooling.lp_pool(xs, p, kernel, **geometry)
    return _windowed(x, pool, "lp-pool", kernel_size, stride, padding, None, ceil_mode, threads)


def weighted_avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, sigma=None, *,
                      threads=None):
    """`fastconv.pooling.weighted_avg_pool` (Gaussian weights from the window's centre)."""
    from fastconv import pooling
    return _windowed(x, pooling.weighted_avg_pool, "weighted-avg-pool", kernel_size, stride,
                     padding, None, ceil_mode, threads, sigma=sigma)


def _spatial_batch(x, name):
    x = as_dask(x)
    check_numeric(x)
    if x.ndim not in (3, 4, 5) or 0 in x.shape[2:]:
        raise ValueError(f"x must have shape (N, C, *spatial) with 1 to 3 non-empty spatial axes "
                         f"for {name}, got shape {x.shape}")
    return x


def global_avg_pool(x):
    """`fastconv.pooling.global_avg_pool` on a dask array: (N, C, *spatial) -> (N, C), the
    mean of each plane (a dask reduction, in x's float precision)."""
    x = _spatial_batch(x, "global_avg_pool")
    dtype = np.float32 if x.dtype in (np.float32, np.float16) else np.float64
    return x.astype(dtype).mean(axis=tuple(range(2, x.ndim)), dtype=dtype)


def global_max_pool(x):
    """`fastconv.pooling.global_max_pool` on a dask array: the largest element of each plane."""
    x = _spatial_batch(x, "global_max_pool")
    dtype = np.float32 if x.dtype in (np.float32, np.float16) else np.float64
    return x.astype(dtype).max(axis=tuple(range(2, x.ndim)))


def channel_pool(x, group_size, mode="max", *, threads=None):
    """`fastconv.pooling.channel_pool` (max or mean over groups of channels) on a dask array;
    pointwise in space, so blocks need no halo, only whole channels."""
    from fastconv import pooling
    x = as_dask(x)
    check_numeric(x)
    threads = check_threads(threads)
    meta = pooling.channel_pool(np.empty((0,) + tuple(x.shape[1:2]) + (1,) * (x.ndim - 2),
                                         x.dtype), group_size, mode)
    x = x.rechunk({1: -1})

    def block(xb):
        with limited(threads):
            return pooling.channel_pool(xb, group_size, mode)
    chunks = (x.chunks[0], (meta.shape[1],)) + x.chunks[2:]
    return da.map_blocks(block, x, chunks=chunks, dtype=meta.dtype, meta=meta[:0],
                         name="fastconv-channel-pool")
