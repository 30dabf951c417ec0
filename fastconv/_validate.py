"""The argument checks of every public entry point: each names the argument, what it got, and
what it wants (docs/CONTRACT.md, "Bad input"), with TypeError for a wrong type and ValueError for
a wrong value.

The convolution functions (_functional), separable, local, pooling, the layers (nn) and the
feature learners (features) all check their arrays, integers and shapes here, so one kind of
mistake gets one message everywhere. Geometry (stride, padding, dilation, groups, the spec) is
checked where it is computed, in _geometry. This module imports nothing else from fastconv.
"""
import numbers

import numpy as np

from . import _aligned, _callsteps
from ._geometry import check_index

# What the computing functions accept (CONTRACT.md): their arrays are computed in float32 or
# float64, the others converted.
CONVERTED = "a real numeric array (float32/float64, or integer/bool converted to float64)"


# --- arrays and dtypes --------------------------------------------------------------------

def real_array(a, name, expected=CONVERTED):
    """`a` as an array (no copy where it is one) of booleans, integers or floats; TypeError
    naming `name` for anything numpy cannot make an array of, or of another kind (complex,
    object, strings), saying it should be `expected`."""
    try:
        arr = np.asarray(a)
    except Exception as exc:   # ragged lists and the like
        raise TypeError(f"{name} must be array-like of numbers, got {type(a).__name__}: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be {expected}, got dtype {arr.dtype}")
    return arr


def float_array(a, name, ndim=None):
    """A float64 copy-free view (or converted copy) of a real array with `ndim` dimensions (an
    int or a tuple of the counts allowed; None: any)."""
    arr = real_array(a, name, "a real numeric array")
    if ndim is not None and arr.ndim not in (ndim if isinstance(ndim, tuple) else (ndim,)):
        raise ValueError(f"{name} must have {ndim} dimensions, got {arr.ndim} (shape {arr.shape})")
    return arr.astype(np.float64, copy=False)


def result_dtype(*arrays):
    """float32 only when every float input is float32 (or float16); anything else is float64.
    None entries (an absent bias) are skipped."""
    kinds = [a.dtype for a in arrays if a is not None]
    if all(d.kind == "f" and d.itemsize <= 4 for d in kinds):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def float_dtype(dtype, name="dtype"):
    """`dtype` as numpy.float32 or numpy.float64, the two precisions fastconv computes in."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be float32 or float64, got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got {dt}")
    return dt


def lifted(a, shape, dtype):
    """C-contiguous copy (only when needed, on a cache line: `_aligned`) of `a` in `dtype`,
    viewed as `shape` (the problem lifted to three spatial axes). An array whose values are not
    on their own size's boundary (a view at an odd byte offset) is copied too. The view of an
    array that needs no copy comes from C (src/_callsteps.pyx, 4-5 us less a call after a
    large kernel has flushed the caches)."""
    view = _callsteps.view_as(a, shape, dtype)
    if view is not None:
        return view
    flags = a.flags                 # a new object each time it is read
    if a.dtype == dtype and flags.c_contiguous and flags.aligned:
        return a.reshape(shape)
    copy = _aligned.empty(a.shape, dtype)
    np.copyto(copy, a, casting="unsafe")
    return copy.reshape(shape)


# --- scalars ------------------------------------------------------------------------------

def positive_int(value, name):
    """`value` as an int >= 1 (bool is not an int here)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def real_number(value, name, positive=False, non_negative=False):
    """`value` as a finite float (> 0 with `positive`, >= 0 with `non_negative`)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if non_negative and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def check_bool(value, name):
    """`value` (a bool or numpy.bool_) as a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r} ({type(value).__name__})")
    return bool(value)


# --- shapes -------------------------------------------------------------------------------

def shape_tuple(value, name):
    """A shape given by the caller (input_shape, kernel_shape, ...) as a tuple of ints >= 0."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise TypeError(f"{name} must be a tuple of ints, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must be a tuple of ints, got {value!r}")
        if v < 0:
            raise ValueError(f"{name} must have non-negative sizes, got {tuple(value)}")
        out.append(check_index(int(v), name, f"got {tuple(value)}"))
    return tuple(out)


def full_shape(shape, name, ndim, leading):
    """`shape` given in full or as spatial sizes only; `leading` fills the first two axes."""
    shape = shape_tuple(shape, name)
    if len(shape) == ndim:
        return tuple(leading) + shape
    if len(shape) != ndim + 2:
        raise ValueError(f"{name} must have {ndim} (spatial) or {ndim + 2} (full) entries for a "
                         f"{ndim}-D problem, got {shape}")
    return shape


def spatial_dims(lead, lead_name, layout, other, other_name, other_layout, relation):
    """The number of spatial dimensions of a call, which the array `lead` sets: it has 3, 4 or 5
    dimensions (`layout`), and `other` must have as many (`other_layout`; `relation`, formatted
    with `ndim`, says why)."""
    if lead.ndim not in (3, 4, 5):
        raise ValueError(f"{lead_name} must have 3, 4 or 5 dimensions ({layout}), got shape "
                         f"{lead.shape}")
    ndim = lead.ndim - 2
    if other.ndim != ndim + 2:
        raise ValueError(f"{other_name} must have {ndim + 2} dimensions ({other_layout}) "
                         f"{relation.format(ndim=ndim)}, got shape {other.shape}")
    return ndim


def check_bias(bias, channels, name="bias"):
    if bias is not None and bias.shape != (channels,):
        raise ValueError(f"{name} must have shape ({channels},) (one value per output channel), "
                         f"got {bias.shape}")


def check_output_grad(gy, expected, name="gy"):
    """`gy` has the output shape (`expected`) of the call's geometry."""
    expected = tuple(expected)
    if gy.shape != expected:
        raise ValueError(f"{name} must have shape {expected} (the output shape of this geometry), "
                         f"got {gy.shape}")
