"""Plain-NumPy oracle for fastconv: the three operations of section 9.5 of *Deep Learning*.

Every fast algorithm in fastconv is checked against this module, so it is written for clarity,
straight from the equations of chapter 9 (Goodfellow, Bengio and Courville), and shares nothing
with the rest of the package: it parses its own arguments from the text of docs/CONTRACT.md and
imports only NumPy.

Layout is channels-first: ``x`` is ``(N, C, *spatial)``, ``w`` is ``(K, C // groups, *kernel)``
and the number of spatial dimensions is ``w.ndim - 2`` (any number >= 1 works). In 0-based
indices, with the input already padded, eq. 9.8 generalised to a batch, dilation ``d`` and
any number of spatial dimensions reads::

    y[b, i, o] = sum_{l, m} xp[b, l, o * s + m * d] * w[i, l, m]        (o, m, s, d are vectors)

It is computed by *shift and add*: for every kernel tap ``m`` the strided window of the padded
input that the tap touches is contracted with ``w[:, :, m]`` over channels. The two gradients
(eq. 9.11 and 9.13) and the transposed convolution (eq. 9.14) walk the same windows.

All arithmetic is done in float64; the result is float32 when every array argument is a float
of at most 32 bits, float64 otherwise (integer and bool inputs are read as float64).
"""

import itertools
import operator

import numpy as np

from ._reference_common import real_array, result_dtype

__all__ = ["conv", "conv_grad_input", "conv_grad_kernel", "conv_transpose", "output_size"]

# padding_mode name -> np.pad mode
_NP_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def output_size(n, k, stride, pad_low, pad_high, dilation):
    """Number of output positions along one axis (the index range of j in eq. 9.8).

    An input of ``n`` elements padded with ``pad_low`` and ``pad_high`` zeros holds
    ``floor((n + pad_low + pad_high - dilation * (k - 1) - 1) / stride) + 1`` placements of a
    kernel of ``k`` taps spaced ``dilation`` apart, taken every ``stride`` elements.
    """
    return (n + pad_low + pad_high - dilation * (k - 1) - 1) // stride + 1


# ---------------------------------------------------------------------------------------------
# Argument normalisation (independent of fastconv's own geometry module on purpose)
# ---------------------------------------------------------------------------------------------

def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _per_dim(value, nd, name, minimum):
    """An int or one int per spatial dimension -> a tuple of ``nd`` ints, each >= ``minimum``."""
    values = (value,) * nd if _is_int(value) else tuple(value)
    if len(values) != nd or not all(_is_int(v) for v in values):
        raise ValueError(f"{name}: expected an int or {nd} ints, got {value!r}")
    values = tuple(operator.index(v) for v in values)
    if any(v < minimum for v in values):
        raise ValueError(f"{name}: expected values >= {minimum}, got {value!r}")
    return values


def _spatial_dims(w):
    if w.ndim < 3:
        raise ValueError(f"w: expected (K, C // groups, *kernel) with at least one spatial "
                         f"dimension, got shape {w.shape}")
    return w.ndim - 2


def _check_groups(groups, channels, kernel_shape):
    """Validate ``groups`` against the input channel count and the kernel shape (K, C_g, ...)."""
    if not _is_int(groups) or groups < 1:
        raise ValueError(f"groups: expected an int >= 1, got {groups!r}")
    if channels != kernel_shape[1] * groups:
        raise ValueError(f"x: {channels} input channels, but w.shape[1] * groups is "
                         f"{kernel_shape[1]} * {groups} = {kernel_shape[1] * groups}")
    if kernel_shape[0] % groups:
        raise ValueError(f"w: {kernel_shape[0]} output channels are not divisible by "
                         f"groups={groups}")
    return int(groups)


def _string_padding(padding, n, k, stride, dilation):
    """(low, high) padding of one axis for the strings "valid", "full" and "same"."""
    eff = dilation * (k - 1) + 1
    if padding == "valid":
        return 0, 0
    if padding == "full":
        return eff - 1, eff - 1
    if padding == "same":
        out = -(-n // stride)  # ceil(n / stride)
        total = max((out - 1) * stride + eff - n, 0)
        return total // 2, total - total // 2
    raise ValueError(f"padding: unknown string {padding!r}, expected 'valid', 'full' or 'same'")


def _numeric_padding(padding, nd):
    """An int, one int per dimension, or one (low, high) pair per dimension -> nd pairs.

    With one spatial dimension a flat ``(low, high)`` is read as that dimension's pair.
    """
    if _is_int(padding):
        items = [padding] * nd
    else:
        items = list(padding)
        if nd == 1 and len(items) == 2 and all(_is_int(p) for p in items):
            items = [tuple(items)]
    if len(items) != nd:
        raise ValueError(f"padding: expected an int, {nd} ints or {nd} (low, high) pairs, "
                         f"got {padding!r}")
    pairs = []
    for item in items:
        pair = (item, item) if _is_int(item) else tuple(item)
        if len(pair) != 2 or not all(_is_int(p) for p in pair):
            raise ValueError(f"padding: expected an int or a (low, high) pair per dimension, "
                             f"got {padding!r}")
        if min(pair) < 0:
            raise ValueError(f"padding: expected values >= 0, got {padding!r}")
        pairs.append((int(pair[0]), int(pair[1])))
    return tuple(pairs)


def _geometry(in_sizes, k_sizes, stride, padding, dilation):
    """Validated (stride, dilation, pads, out_sizes) of one call; pads are (low, high) pairs."""
    nd = len(k_sizes)
    stride = _per_dim(stride, nd, "stride", 1)
    dilation = _per_dim(dilation, nd, "dilation", 1)
    if isinstance(padding, str):
        pads = tuple(_string_padding(padding, n, k, s, d)
                     for n, k, s, d in zip(in_sizes, k_sizes, stride, dilation))
    else:
        pads = _numeric_padding(padding, nd)
    for n, k, d, (lo, hi) in zip(in_sizes, k_sizes, dilation, pads):
        if n + lo + hi < d * (k - 1) + 1:
            raise ValueError(f"w: kernel of effective size {d * (k - 1) + 1} is larger than the "
                             f"padded input of size {n} + {lo} + {hi}")
    out_sizes = tuple(output_size(n, k, s, lo, hi, d)
                      for n, k, s, d, (lo, hi) in zip(in_sizes, k_sizes, stride, dilation, pads))
    return stride, dilation, pads, out_sizes


def _check_padding_mode(padding_mode):
    if padding_mode not in _NP_PAD_MODES:
        raise ValueError(f"padding_mode: unknown {padding_mode!r}, expected one of "
                         f"{sorted(_NP_PAD_MODES)}")


def _check_bias(bias, channels):
    b = real_array(bias, "bias")
    if b.shape != (channels,):
        raise ValueError(f"bias: expected shape ({channels},), got {b.shape}")
    return b


def _spatial_request(shape, nd, full_prefix, name):
    """Spatial sizes from ``shape``, which is either ``(*spatial)`` or ``(*full_prefix, *spatial)``.

    ``full_prefix`` holds the two leading sizes that a full shape must have.
    """
    shape = tuple(operator.index(v) for v in shape)
    if len(shape) == nd + 2:
        if shape[:2] != tuple(full_prefix):
            raise ValueError(f"{name}: leading sizes {shape[:2]} do not match the expected "
                             f"{tuple(full_prefix)}")
        shape = shape[2:]
    if len(shape) != nd:
        raise ValueError(f"{name}: expected {nd} spatial sizes or a full shape of {nd + 2} "
                         f"sizes, got {shape}")
    return shape


# ---------------------------------------------------------------------------------------------
# Padding and its adjoint
# ---------------------------------------------------------------------------------------------

def _pad(x, pads, padding_mode):
    """Pad the spatial axes of ``x`` as ``padding_mode`` says (np.pad does the work)."""
    return np.pad(x, ((0, 0), (0, 0)) + tuple(pads), mode=_NP_PAD_MODES[padding_mode])


def _fold(gxp, in_sizes, pads, padding_mode):
    """Adjoint of :func:`_pad`: add the gradient at every padded position onto its source.

    Along one axis the padding map copies input element ``source[p]`` to padded position ``p``
    (``source`` is np.pad applied to ``arange(n)``; -1 marks an implicit zero). The map is a
    product of such per-axis maps, so its transpose is applied one axis at a time.
    """
    gx = gxp
    for axis, (n, (lo, hi)) in enumerate(zip(in_sizes, pads), start=2):
        if padding_mode == "zeros":
            source = np.pad(np.arange(n), (lo, hi), mode="constant", constant_values=-1)
        else:
            source = np.pad(np.arange(n), (lo, hi), mode=_NP_PAD_MODES[padding_mode])
        kept = source >= 0
        folded = np.zeros(gx.shape[:axis] + (n,) + gx.shape[axis + 1:])
        np.add.at(folded, (slice(None),) * axis + (source[kept],), np.compress(kept, gx, axis))
        gx = folded
    return gx


# ---------------------------------------------------------------------------------------------
# The three operations, in float64 on padded arrays
# ---------------------------------------------------------------------------------------------

def _taps(k_sizes):
    """Every kernel position m = (m_1, ..., m_nd)."""
    return itertools.product(*(range(k) for k in k_sizes))


def _window(tap, stride, dilation, out_sizes):
    """Index of the padded-input elements that kernel tap ``m`` meets: ``o * s + m * d``."""
    return (slice(None), slice(None)) + tuple(
        slice(m * d, m * d + (o - 1) * s + 1, s)
        for m, s, d, o in zip(tap, stride, dilation, out_sizes))


def _group_slices(groups, size):
    step = size // groups
    return [slice(g * step, (g + 1) * step) for g in range(groups)]


def _forward(xp, w, stride, dilation, groups, out_sizes):
    """Eq. 9.8: y[b, i, o] = sum_{l, m} xp[b, l, o*s + m*d] w[i, l, m], one group at a time."""
    y = np.zeros((xp.shape[0], w.shape[0]) + out_sizes)
    for cs, ks in zip(_group_slices(groups, xp.shape[1]), _group_slices(groups, w.shape[0])):
        for tap in _taps(w.shape[2:]):
            window = xp[:, cs][_window(tap, stride, dilation, out_sizes)]
            y[:, ks] += np.einsum("bl...,il->bi...", window, w[(ks, slice(None)) + tap])
    return y


def _grad_input(gy, w, padded_shape, stride, dilation, groups):
    """Eq. 9.13: h = dL/dxp, scattering gy[b, i, o] w[i, l, m] onto xp[b, l, o*s + m*d]."""
    gxp = np.zeros(padded_shape)
    out_sizes = gy.shape[2:]
    for cs, ks in zip(_group_slices(groups, padded_shape[1]), _group_slices(groups, w.shape[0])):
        gxp_group = gxp[:, cs]
        for tap in _taps(w.shape[2:]):
            gxp_group[_window(tap, stride, dilation, out_sizes)] += np.einsum(
                "bi...,il->bl...", gy[:, ks], w[(ks, slice(None)) + tap])
    return gxp


def _grad_kernel(xp, gy, k_sizes, stride, dilation, groups):
    """Eq. 9.11: g[i, l, m] = sum_{b, o} gy[b, i, o] xp[b, l, o*s + m*d]."""
    k_out, channels = gy.shape[1], xp.shape[1]
    gw = np.zeros((k_out, channels // groups) + tuple(k_sizes))
    out_sizes = gy.shape[2:]
    summed = [0] + list(range(2, gy.ndim))  # batch and output positions
    for cs, ks in zip(_group_slices(groups, channels), _group_slices(groups, k_out)):
        for tap in _taps(k_sizes):
            window = xp[:, cs][_window(tap, stride, dilation, out_sizes)]
            gw[(ks, slice(None)) + tap] += np.tensordot(gy[:, ks], window, (summed, summed))
    return gw


def _flip_spatial(w):
    """Reverse a kernel along all its spatial axes (turns cross-correlation into convolution)."""
    return w[(slice(None), slice(None)) + (slice(None, None, -1),) * (w.ndim - 2)]


# ---------------------------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------------------------

def conv(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1, flip=False,
         padding_mode="zeros"):
    """Multi-channel strided cross-correlation, eq. 9.7/9.8 (true convolution with ``flip``).

    ``x`` is ``(N, C, *n)``, ``w`` is ``(K, C // groups, *k)``, ``bias`` is ``(K,)``; the
    result is ``(N, K, *out)`` with ``out`` given by :func:`output_size`. Output channel ``i``
    of group ``g`` reads only the input channels of group ``g``.
    """
    x, w = real_array(x, "x"), real_array(w, "w")
    nd = _spatial_dims(w)
    arrays = [x, w]
    if bias is not None:
        arrays.append(_check_bias(bias, w.shape[0]))
    dtype = result_dtype(*arrays)
    if x.ndim != nd + 2:
        raise ValueError(f"x: expected {nd + 2} dimensions (N, C, *spatial) to match w, "
                         f"got shape {x.shape}")
    groups = _check_groups(groups, x.shape[1], w.shape)
    _check_padding_mode(padding_mode)
    stride, dilation, pads, out_sizes = _geometry(x.shape[2:], w.shape[2:], stride, padding,
                                                  dilation)

    w64 = _flip_spatial(w) if flip else w
    xp = _pad(x.astype(np.float64), pads, padding_mode)
    y = _forward(xp, w64.astype(np.float64), stride, dilation, groups, out_sizes)
    if bias is not None:
        y += arrays[2].astype(np.float64).reshape((1, -1) + (1,) * nd)
    return y.astype(dtype)


def conv_grad_input(gy, w, input_shape, *, stride=1, padding=0, dilation=1, groups=1,
                    flip=False, padding_mode="zeros"):
    """Input gradient h of eq. 9.13: multiplication by the transpose of the convolution matrix.

    ``gy`` is the gradient of the output of ``conv(x, w, ...)``, ``(N, K, *out)``. The result
    has ``x``'s shape; ``input_shape`` is either that full shape or only its spatial sizes (then
    N comes from ``gy`` and C is ``w.shape[1] * groups``). With a padding mode other than zeros
    the gradient of every padded element is folded back onto the element it was copied from.
    """
    gy, w = real_array(gy, "gy"), real_array(w, "w")
    nd = _spatial_dims(w)
    dtype = result_dtype(gy, w)
    if gy.ndim != nd + 2:
        raise ValueError(f"gy: expected {nd + 2} dimensions (N, K, *out), got shape {gy.shape}")
    if not _is_int(groups) or groups < 1:
        raise ValueError(f"groups: expected an int >= 1, got {groups!r}")
    channels = w.shape[1] * groups
    in_sizes = _spatial_request(input_shape, nd, (gy.shape[0], channels), "input_shape")
    groups = _check_groups(groups, channels, w.shape)
    _check_padding_mode(padding_mode)
    stride, dilation, pads, out_sizes = _geometry(in_sizes, w.shape[2:], stride, padding,
                                                  dilation)
    expected = (gy.shape[0], w.shape[0]) + out_sizes
    if gy.shape != expected:
        raise ValueError(f"gy: expected shape {expected} for this geometry, got {gy.shape}")

    w64 = _flip_spatial(w) if flip else w
    padded_shape = (gy.shape[0], channels) + tuple(n + lo + hi for n, (lo, hi) in
                                                   zip(in_sizes, pads))
    gxp = _grad_input(gy.astype(np.float64), w64.astype(np.float64), padded_shape, stride,
                      dilation, groups)
    return _fold(gxp, in_sizes, pads, padding_mode).astype(dtype)


def conv_grad_kernel(x, gy, kernel_shape, *, stride=1, padding=0, dilation=1, groups=1,
                     flip=False, padding_mode="zeros"):
    """Kernel gradient g of eq. 9.11: g[i, l, m] = sum_{b, o} gy[b, i, o] xp[b, l, o*s + m*d].

    ``x`` is the forward input ``(N, C, *n)``, ``gy`` the output gradient ``(N, K, *out)``. The
    result has ``w``'s shape; ``kernel_shape`` is either that full shape or only the kernel's
    spatial sizes (then K comes from ``gy`` and C // groups from ``x``). With ``flip`` the
    gradient is with respect to the unflipped kernel the caller passed.
    """
    x, gy = real_array(x, "x"), real_array(gy, "gy")
    dtype = result_dtype(x, gy)
    if x.ndim < 3:
        raise ValueError(f"x: expected (N, C, *spatial) with at least one spatial dimension, "
                         f"got shape {x.shape}")
    nd = x.ndim - 2
    if gy.ndim != nd + 2:
        raise ValueError(f"gy: expected {nd + 2} dimensions (N, K, *out), got shape {gy.shape}")
    if not _is_int(groups) or groups < 1:
        raise ValueError(f"groups: expected an int >= 1, got {groups!r}")
    if x.shape[1] % groups:
        raise ValueError(f"x: {x.shape[1]} channels are not divisible by groups={groups}")
    k_sizes = _spatial_request(kernel_shape, nd, (gy.shape[1], x.shape[1] // groups),
                               "kernel_shape")
    groups = _check_groups(groups, x.shape[1], (gy.shape[1], x.shape[1] // groups))
    _check_padding_mode(padding_mode)
    stride, dilation, pads, out_sizes = _geometry(x.shape[2:], k_sizes, stride, padding,
                                                  dilation)
    expected = (x.shape[0], gy.shape[1]) + out_sizes
    if gy.shape != expected:
        raise ValueError(f"gy: expected shape {expected} for this geometry, got {gy.shape}")

    xp = _pad(x.astype(np.float64), pads, padding_mode)
    gw = _grad_kernel(xp, gy.astype(np.float64), k_sizes, stride, dilation, groups)
    return (_flip_spatial(gw) if flip else gw).astype(dtype)


def _transpose_sizes(m, k, stride, padding, dilation, pad_pair):
    """All input sizes n >= 1 whose forward output size along one axis is ``m``.

    A string ``padding`` is resolved for each candidate n as the forward call would; otherwise
    ``pad_pair`` is fixed. Since padding is >= 0, n <= m * stride + dilation * (k - 1).
    """
    sizes = []
    for n in range(1, m * stride + dilation * (k - 1) + 1):
        lo, hi = (_string_padding(padding, n, k, stride, dilation) if isinstance(padding, str)
                  else pad_pair)
        if n + lo + hi >= dilation * (k - 1) + 1 and \
                output_size(n, k, stride, lo, hi, dilation) == m:
            sizes.append(n)
    return sizes


def conv_transpose(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
                   output_shape=None):
    """Transposed convolution, the decoder of eq. 9.14: conv_grad_input with ``x`` as ``gy``.

    ``x`` is ``(N, K, *m)``, ``w`` is ``(K, C // groups, *k)``, ``bias`` is ``(C,)``; the result
    is ``(N, C, *n)`` where ``n`` is a size whose forward output size is ``m``: ``output_shape``
    (spatial sizes or the full shape) picks it, by default the smallest one.
    """
    x, w = real_array(x, "x"), real_array(w, "w")
    nd = _spatial_dims(w)
    if not _is_int(groups) or groups < 1:
        raise ValueError(f"groups: expected an int >= 1, got {groups!r}")
    channels = w.shape[1] * groups
    arrays = [x, w]
    if bias is not None:
        arrays.append(_check_bias(bias, channels))
    dtype = result_dtype(*arrays)
    if x.ndim != nd + 2:
        raise ValueError(f"x: expected {nd + 2} dimensions (N, K, *spatial) to match w, "
                         f"got shape {x.shape}")
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"x: expected {w.shape[0]} channels (w.shape[0]), got {x.shape[1]}")
    stride_t = _per_dim(stride, nd, "stride", 1)
    dilation_t = _per_dim(dilation, nd, "dilation", 1)
    if isinstance(padding, str):
        _string_padding(padding, 1, 1, 1, 1)  # rejects an unknown string before the search
        pad_pairs = (None,) * nd
    else:
        pad_pairs = _numeric_padding(padding, nd)
    choices = [_transpose_sizes(m, k, s, padding, d, pair) for m, k, s, d, pair in
               zip(x.shape[2:], w.shape[2:], stride_t, dilation_t, pad_pairs)]
    if output_shape is None:
        if not all(choices):
            raise ValueError(f"x: no output size gives the forward output size {x.shape[2:]} "
                             f"for this geometry")
        sizes = tuple(c[0] for c in choices)
    else:
        sizes = _spatial_request(output_shape, nd, (x.shape[0], channels), "output_shape")
        for axis, (n, c) in enumerate(zip(sizes, choices)):
            if n not in c:
                raise ValueError(f"output_shape: size {n} along spatial axis {axis} does not "
                                 f"give the forward output size {x.shape[2 + axis]}; "
                                 f"possible sizes: {c}")

    groups = _check_groups(groups, channels, w.shape)
    _, _, pads, _ = _geometry(sizes, w.shape[2:], stride_t, padding, dilation_t)
    padded_shape = (x.shape[0], channels) + tuple(n + lo + hi for n, (lo, hi) in
                                                  zip(sizes, pads))
    gxp = _grad_input(x.astype(np.float64), w.astype(np.float64), padded_shape, stride_t,
                      dilation_t, groups)
    y = _fold(gxp, sizes, pads, "zeros")
    if bias is not None:
        y += arrays[2].astype(np.float64).reshape((1, -1) + (1,) * nd)
    return y.astype(dtype)


# Pooling and the unshared convolutions have their references in files of their own.
from ._reference_pooling import *  # noqa: E402,F401,F403
from ._reference_local import *  # noqa: E402,F401,F403
from . import _reference_local, _reference_pooling  # noqa: E402

__all__ += _reference_pooling.__all__ + _reference_local.__all__
