"""Placements of signals in transform buffers: positions (start + i*step) mod L, i < count."""
import itertools

import numpy as np


def complex_dtype(dtype):
    return np.result_type(dtype, np.complex64)


def segments(place, L):
    """(first index, slice of positions) pieces of a placement, in order (at most two)."""
    start, count, step = place
    if count == 0:
        return []
    first = min(count, -(-(L - start) // step))
    pieces = [(0, slice(start, start + (first - 1) * step + 1, step))]
    if first < count:
        rest = start + first * step - L
        pieces.append((first, slice(rest, rest + (count - first - 1) * step + 1, step)))
    return pieces


def at(ndim, axis, sl):
    index = [slice(None)] * ndim
    index[axis] = sl
    return tuple(index)


def place(buf, src, places):
    """buf = src at `places` along the spatial axes (2..4), zero everywhere else."""
    L = buf.shape[2:]
    if all(step == 1 for _, _, step in places):       # zero only what src does not cover
        for ax, (start, count, _) in enumerate(places):
            if count < L[ax]:
                for _, sl in segments(((start + count) % L[ax], L[ax] - count, 1), L[ax]):
                    buf[at(buf.ndim, 2 + ax, sl)] = 0
    else:
        buf.fill(0)
    pieces = [[(slice(i0, i0 + len(range(*sl.indices(n)))), sl) for i0, sl in segments(p, n)]
              for p, n in zip(places, L)]
    for combo in itertools.product(*pieces):
        target = (Ellipsis,) + tuple(d for _, d in combo)
        buf[target] = src[(Ellipsis,) + tuple(s for s, _ in combo)]


def take(a, axis, where, L):
    """The positions of a placement along `axis` (a view unless they wrap around)."""
    pieces = segments(where, L)
    if len(pieces) == 1:
        return a[at(a.ndim, axis, pieces[0][1])]
    if not pieces:
        return a[at(a.ndim, axis, slice(0, 0))]
    return np.concatenate([a[at(a.ndim, axis, sl)] for _, sl in pieces], axis=axis)
