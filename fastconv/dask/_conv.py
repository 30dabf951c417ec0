"""conv, conv_transpose and filter banks on dask arrays: one fastconv call per block.

Each function first runs the NumPy function on an empty batch of the same shape, which
validates every argument with the NumPy function's own messages and gives the result's shape
and dtype without computing anything; then it cuts the spatial axes (`_overlap`), and each
block calls the NumPy function with the padding its position needs.
"""
import numpy as np

import dask.array as da

from fastconv.dask._overlap import (as_dask, check_numeric, check_threads, gather_plan,
                                    halo_array, limited, scatter_plan, window_crop)


def _empty_batch(x):
    return np.empty((0,) + tuple(x.shape[1:]), x.dtype)


def _channels_whole(x, name="x"):
    """x with its channel axis in one chunk (a block needs every channel of its group)."""
    return x if len(x.chunks[1]) == 1 else x.rechunk({1: -1})


def _check_spatial(x, name="x"):
    if any(n == 0 for n in x.shape[2:]):
        raise ValueError(f"{name} must have every spatial size >= 1 for fastconv.dask, got shape "
                         f"{x.shape}")
    if any(np.isnan(c).any() for c in map(np.asarray, x.chunks)):
        raise ValueError(f"{name} has unknown chunk sizes {x.chunks}; call {name}.compute_chunk_"
                         f"sizes() first")


def _explicit_padding(x, pads, mode):
    """x with the padding filled by `mode` (reflect, replicate, circular) made explicit, lazily:
    the same copy as the NumPy call makes, from the ends of the whole array."""
    from fastconv._geometry import padding_index
    for i, (lo, hi) in enumerate(pads):
        if not (lo or hi):
            continue
        axis = 2 + i
        n = x.shape[axis]
        index = padding_index(n, lo, hi, mode)
        parts = [da.take(x, index[:lo], axis=axis)] if lo else []
        parts.append(x)
        if hi:
            parts.append(da.take(x, index[lo + n:], axis=axis))
        x = da.concatenate(parts, axis=axis)
    return x


def conv(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1, flip=False,
         padding_mode="zeros", algorithm="auto", threads=None):
    """`fastconv.conv` on a dask array x (N, C, *spatial), chunked along batch and spatial axes.

    Same arguments and result (to float rounding) as the NumPy call, for any chunking: the
    channel axis is rechunked whole, spatial chunks are moved onto stride multiples and merged
    until each holds its halo. Each block reads a halo of ``(k - 1) * dilation`` inputs split by
    the padding; the padding (any form, any `padding_mode`) applies at the array's true edges
    only. `w` and `bias` are NumPy arrays. `threads`: fastconv threads per task (default: see
    ``task_threads``). Returns a lazy dask array (N, K, *output).
    """
    import fastconv
    x = as_dask(x)
    check_numeric(x)
    threads = check_threads(threads)
    w = np.asarray(w)
    if w.ndim in (3, 4, 5) and x.ndim == w.ndim - 1:        # one unbatched example (C, *spatial)
        return conv(x[None], w, bias, stride=stride, padding=padding, dilation=dilation,
                    groups=groups, flip=flip, padding_mode=padding_mode, algorithm=algorithm,
                    threads=threads)[0]
    meta = fastconv.conv(_empty_batch(x), w, bias, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, flip=flip, padding_mode=padding_mode,
                         algorithm=algorithm)
    _check_spatial(x)
    from fastconv._geometry import make_spec
    spec = make_spec(tuple(x.shape), tuple(w.shape), stride=stride, padding=padding,
                     dilation=dilation, groups=groups, dtype=meta.dtype)
    nd = w.ndim - 2
    pads = list(zip(spec.pad_low[-nd:], spec.pad_high[-nd:]))
    strides, dilations = spec.stride[-nd:], spec.dilation[-nd:]
    extents = [d * (k - 1) + 1 for k, d in zip(w.shape[2:], dilations)]
    x = _channels_whole(x)
    if padding_mode != "zeros":
        x = _explicit_padding(x, pads, padding_mode)
        pads = [(0, 0)] * nd
    plans = [gather_plan(n, c, stride=s, low=lo, extent=e, outputs=m)
             for n, c, s, (lo, _), e, m in zip(x.shape[2:], x.chunks[2:], strides, pads, extents,
                                              spec.output_size[-nd:])]
    sizes = x.shape[2:]
    geometry = dict(stride=strides, dilation=dilations, groups=groups, flip=flip,
                    algorithm=algorithm)
    wc = w.astype(meta.dtype, copy=False)
    bc = None if bias is None else np.asarray(bias).astype(meta.dtype, copy=False)

    def block(xb, block_id=None):
        crops = [window_crop(p.blocks[j], s, lo, e, n) for p, j, s, (lo, _), e, n
                 in zip(plans, block_id[2:], strides, pads, extents, sizes)]
        out = (xb.shape[0], wc.shape[0]) + tuple(p.blocks[j][1] - p.blocks[j][0]
                                                 for p, j in zip(plans, block_id[2:]))
        if any(stop == start for start, stop, _, _ in crops):      # windows on padding alone
            y = np.zeros(out, meta.dtype)
            return y if bc is None else y + bc.reshape((1, -1) + (1,) * nd)
        xs = xb[(slice(None), slice(None)) + tuple(slice(a, b) for a, b, _, _ in crops)]
        with limited(threads):
            y = fastconv.conv(xs, wc, bc, padding=tuple((lo, hi) for _, _, lo, hi in crops),
                              **geometry)
        assert y.shape == out, (y.shape, out)
        return y

    xh = halo_array(x, plans)
    chunks = (xh.chunks[0], (w.shape[0],)) + tuple(p.out_chunks for p in plans)
    return da.map_blocks(block, xh, chunks=chunks, dtype=meta.dtype, meta=meta[:0],
                         name="fastconv-conv")


def conv_transpose(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
                   output_shape=None, algorithm="auto", threads=None):
    """`fastconv.conv_transpose` (the decoder of eq. 9.14) on a dask array x (N, K, *m).

    Each output block gathers the inputs whose kernels reach it (``(k - 1) * dilation //
    stride`` inputs before its chunk), runs the NumPy call on them without padding and keeps its
    own outputs: the result equals the NumPy call for any chunking. Returns (N, C, *n), lazily.
    """
    import fastconv
    x = as_dask(x)
    check_numeric(x)
    threads = check_threads(threads)
    w = np.asarray(w)
    if w.ndim in (3, 4, 5) and x.ndim == w.ndim - 1:
        return conv_transpose(x[None], w, bias, stride=stride, padding=padding,
                              dilation=dilation, groups=groups, output_shape=output_shape,
                              algorithm=algorithm, threads=threads)[0]
    full = output_shape
    if output_shape is not None and len(tuple(output_shape)) == w.ndim:
        full = (0,) + tuple(output_shape)[1:]             # the meta call has an empty batch
    meta = fastconv.conv_transpose(_empty_batch(x), w, bias, stride=stride, padding=padding,
                                   dilation=dilation, groups=groups, output_shape=full,
                                   algorithm=algorithm)
    if output_shape is not None and len(tuple(output_shape)) == w.ndim and \
            tuple(output_shape)[0] != x.shape[0]:
        raise ValueError(f"output_shape {tuple(output_shape)} must start with the batch size of "
                         f"x ({x.shape[0]})")
    _check_spatial(x)
    from fastconv._geometry import make_spec, per_dim
    nd = w.ndim - 2
    sizes = meta.shape[2:]
    spec = make_spec((1, meta.shape[1]) + sizes, tuple(w.shape), stride=stride, padding=padding,
                     dilation=dilation, groups=groups)
    pads = list(zip(spec.pad_low[-nd:], spec.pad_high[-nd:]))
    strides = list(per_dim(stride, nd, "stride", 1))
    dilations = list(spec.dilation[-nd:])
    extents = [d * (k - 1) + 1 for k, d in zip(w.shape[2:], dilations)]
    x = _channels_whole(x)
    plans = [scatter_plan(m, c, stride=s, low=lo, extent=e, n_out=n)
             for m, c, s, (lo, _), e, n in zip(x.shape[2:], x.chunks[2:], strides, pads, extents,
                                              sizes)]
    wc = w.astype(meta.dtype, copy=False)
    bc = None if bias is None else np.asarray(bias).astype(meta.dtype, copy=False)
    channels = meta.shape[1]

    def block(xb, block_id=None):
        parts = [p.blocks[j] for p, j in zip(plans, block_id[2:])]
        with limited(threads):
            yb = fastconv.conv_transpose(xb, wc, stride=tuple(strides), dilation=tuple(dilations),
                                         groups=groups, algorithm=algorithm)
        y = np.zeros((xb.shape[0], channels) + tuple(b - a for a, b, _, _ in parts), meta.dtype)
        target, source = [slice(None)] * 2, [slice(None)] * 2
        for (o0, o1, in_start, _), s, (lo, _), size in zip(parts, strides, pads, yb.shape[2:]):
            origin = in_start * s - lo          # the global output of yb's first position
            a, b = max(o0, origin), min(o1, origin + size)
            b = max(a, b)
            target.append(slice(a - o0, b - o0))
            source.append(slice(a - origin, b - origin))
        y[tuple(target)] = yb[tuple(source)]
        if bc is not None:
            y += bc.reshape((1, -1) + (1,) * nd)
        return y

    xh = halo_array(x, plans)
    chunks = (xh.chunks[0], (channels,)) + tuple(p.out_chunks for p in plans)
    return da.map_blocks(block, xh, chunks=chunks, dtype=meta.dtype, meta=meta[:0],
                         name="fastconv-conv-transpose")


def filter_bank(x, bank, *, padding="same", padding_mode="reflect", **kwargs):
    """Every kernel of `bank` (K, 1, *kernel) on every channel of x (N, C, *spatial): the
    responses (N, C * K, *output), channel c's K responses together. A depthwise `conv`
    (groups=C) with the bank repeated per channel; other keywords go to `conv`."""
    bank = np.asarray(bank)
    if bank.ndim not in (3, 4, 5) or bank.shape[1] != 1:
        raise ValueError(f"bank must have shape (K, 1, *kernel) with 1 to 3 kernel axes, got "
                         f"shape {bank.shape}")
    x = as_dask(x)
    channels = x.shape[1] if x.ndim == bank.ndim else None
    if channels is None:
        raise ValueError(f"x must have {bank.ndim} dimensions (N, C, *spatial) to match the bank "
                         f"of shape {bank.shape}, got shape {x.shape}")
    w = np.concatenate([bank] * channels) if channels else bank
    return conv(x, w, padding=padding, padding_mode=padding_mode, groups=max(channels, 1),
                **kwargs)


def gabor(x, size, orientations=8, frequencies=None, phases=(0.0, np.pi / 2), scales=None, *,
          aspect=1.0, padding="same", padding_mode="reflect", **kwargs):
    """The responses of a Gabor bank (`fastconv.features.gabor_bank`, in x's precision) on each
    channel of the 2-D images x (N, C, H, W): (N, C * K, H, W) with ``padding="same"``."""
    from fastconv.features import gabor_bank
    x = as_dask(x)
    dtype = np.float32 if x.dtype == np.float32 else np.float64
    bank = gabor_bank(size, orientations, frequencies, phases, scales, aspect=aspect, dtype=dtype)
    return filter_bank(x, bank, padding=padding, padding_mode=padding_mode, **kwargs)
