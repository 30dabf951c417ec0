"""A small fastconv.nn network's inference over a huge array, its receptive field as the halo.

A chain of layers that are local in space (convolutions, windowed pools, and pointwise layers:
activations, batch norm in eval mode, dropout in eval mode, residual blocks that keep the size)
makes each output from a window of the input, like one convolution: along each axis it has a
total stride S (the product of the strides), a receptive field F and a low offset P (the
padding each layer adds, scaled by the strides before it). So the network runs as a convolution
does (`_overlap.gather_plan`): each block holds its chunk plus a halo of about F - 1 inputs and
starts on a multiple of S, the network runs on the block with its own padding, and only the
outputs whose receptive field lies inside the block (or reaches a true edge, where the block's
padding is the network's) are kept. Everything else -- the padding the layers put at a block's
inner edges -- is cut away, so the result equals the network on the whole array.
"""
import copy
import math

import numpy as np

import dask.array as da

from fastconv.dask._overlap import (as_dask, check_numeric, check_threads, gather_plan,
                                    halo_array, limited)


def _layer_window(layer, ndim, where):
    """(stride, low, extent) per axis of one layer, or None for a pointwise layer; ValueError for
    a layer that is not local in space."""
    from fastconv import nn
    from fastconv._geometry import resolve_padding
    from fastconv._pooling_plan import window
    name = type(layer).__name__
    if isinstance(layer, (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.Identity, nn.Dropout,
                          nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.ChannelPool, nn.Maxout)):
        return None
    if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        if layer.ndim != ndim:
            raise ValueError(f"{where} ({name}) has {layer.ndim} spatial axes, the network's input "
                             f"has {ndim}")
        if layer.bias_kind != "channel":
            raise ValueError(f"{where} ({name}) has bias={layer.bias_kind!r}, one bias per output "
                             "position: it is not the same at every position, so it cannot run "
                             "in blocks")
        if layer.padding_mode == "circular":
            raise ValueError(f"{where} ({name}) pads circularly, which reads the far end of the "
                             "array: use padding_mode 'zeros', 'reflect' or 'replicate', or pad "
                             "the input first")
        if layer.padding == "same" and any(s != 1 for s in layer.stride):
            raise ValueError(f"{where} ({name}) has padding='same' with stride {layer.stride}: its "
                             "padding then depends on the input size; give the padding as ints")
        pads = resolve_padding(layer.padding, [10**9] * ndim, layer.kernel_size, layer.stride,
                               layer.dilation)
        return [(s, lo, d * (k - 1) + 1) for s, (lo, _), k, d
                in zip(layer.stride, pads, layer.kernel_size, layer.dilation)]
    pools = [(nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d),
             (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d), (nn.LPPool1d, nn.LPPool2d, nn.LPPool3d),
             (nn.WeightedAvgPool1d, nn.WeightedAvgPool2d, nn.WeightedAvgPool3d)]
    for i, kinds in enumerate(pools):
        if isinstance(layer, kinds):
            if layer.ndim != ndim:
                raise ValueError(f"{where} ({name}) has {layer.ndim} spatial "
                                 f"axes, the network's input has {ndim}")
            kernel = layer.kernel_size
            kernel = kernel if isinstance(kernel, tuple) else (kernel,) * ndim
            k, s, p, d, _ = window([10**9] * ndim, kernel, layer.stride, layer.padding,
                                   layer.dilation if i == 0 else 1, layer.ceil_mode)
            return [(ss, pp, dd * (kk - 1) + 1) for kk, ss, pp, dd in zip(k, s, p, d)]
    raise ValueError(f"{where} ({name}) is not local in space (it is not a convolution, a "
                     f"windowed pool or a pointwise layer), so the network cannot run in blocks; "
                     f"run the local part with apply_network and the rest on its (smaller) "
                     f"output")


def _compose(total, window):
    """The window of a layer after `total` (per axis (S, P, F)): (S s, P + p S, F + (e - 1) S)."""
    return [(S * s, P + lo * S, F + (e - 1) * S) for (S, P, F), (s, lo, e) in zip(total, window)]


def receptive_field(model, ndim):
    """Per spatial axis, (total stride S, low offset P, receptive field F) of `model`: output o
    reads the inputs [o * S - P, o * S - P + F). Refuses (ValueError, naming the layer) a layer
    that is not local in space."""
    from fastconv import nn

    def walk(module, total, where):
        if isinstance(module, nn.Sequential):
            for i, layer in enumerate(module):
                total = walk(layer, total, f"{where}[{i}]")
            return total
        if isinstance(module, nn.Residual):
            inner = walk(module.module, [(1, 0, 1)] * ndim, f"{where}.module")
            if any(S != 1 or 2 * P != F - 1 for S, P, F in inner):
                raise ValueError(f"{where} (Residual) needs an inner module that keeps the size "
                                 f"(stride 1, centred 'same' padding), got windows {inner}")
            return _compose(total, [(1, P, F) for _, P, F in inner])
        window = _layer_window(module, ndim, where)
        return total if window is None else _compose(total, window)
    return walk(model, [(1, 0, 1)] * ndim, "model")


def apply_network(model, x, *, threads=None):
    """Inference of `model` (a fastconv.nn network local in space) on the dask array x
    (N, C, *spatial): equal to ``model(x)`` on the whole array, computed block by block.

    The model runs in eval mode on a copy (the caller's model is untouched). Each block holds
    its chunk plus the receptive field as halo and starts on a multiple of the total stride;
    chunks are merged until each holds its halo. The receptive field comes from the layers
    (`receptive_field`); a layer that is not local in space raises ValueError naming it.
    Returns a lazy dask array (N, K, *output).
    """
    x = as_dask(x)
    check_numeric(x)
    threads = check_threads(threads)
    if x.ndim not in (3, 4, 5):
        raise ValueError(f"x must have 3, 4 or 5 dimensions (N, C, *spatial), got shape {x.shape}")
    ndim = x.ndim - 2
    model = copy.deepcopy(model)
    model.eval()
    windows = receptive_field(model, ndim)
    meta = np.asarray(model(np.zeros((0,) + tuple(x.shape[1:]), x.dtype)))
    plans = []
    for n, chunks, (S, P, F), m in zip(x.shape[2:], x.chunks[2:], windows, meta.shape[2:]):
        left = S * math.ceil(P / S)
        plans.append(gather_plan(n, chunks, stride=S, low=P, extent=F, outputs=m, left=left,
                                 right=max(F - P - S, 0), phase=0))
    strides = [S for S, _, _ in windows]

    def block(xb, block_id=None):
        parts = [p.blocks[j] for p, j in zip(plans, block_id[2:])]
        with limited(threads):
            y = np.asarray(model(xb))
        keep = []
        for (o0, o1, in_start, _), S, size in zip(parts, strides, y.shape[2:]):
            first = o0 - in_start // S
            assert in_start % S == 0 and first + (o1 - o0) <= size, (parts, y.shape)
            keep.append(slice(first, first + o1 - o0))
        return y[(slice(None), slice(None)) + tuple(keep)]

    xh = halo_array(x, plans)
    out_chunks = (xh.chunks[0], (meta.shape[1],)) + tuple(p.out_chunks for p in plans)
    return da.map_blocks(block, xh, chunks=out_chunks, dtype=meta.dtype, meta=meta[:0],
                         name="fastconv-network")
