"""fastconv.reference registered as an algorithm: always applicable, never fast.

The chooser only picks it when nothing else applies; tests and users may force it.
"""
import math

from .. import reference

NAME = "reference"

FLOPS_PER_S = 0.5e9
# A fixed cost above any fast algorithm's (NumPy loops over the taps: ~0.15 ms on the smallest
# problems, measured), so that its prediction never wins where a fast algorithm applies, even
# after calibration gives the others their own call overheads (it is not calibrated).
OVERHEAD_S = 1e-3


def supports(spec, op):
    return True, ""


def cost(spec, op):
    return spec.flops / FLOPS_PER_S + OVERHEAD_S


def workspace(spec, op):
    """A float64 padded copy of the input and a float64 result."""
    padded = math.prod(n + lo + hi for n, lo, hi in zip(spec.input_size, spec.pad_low, spec.pad_high))
    result = max(math.prod(spec.y_shape), math.prod(spec.x_shape))
    return 8 * (spec.batch * spec.in_channels * padded + result)


def _geometry(spec):
    return dict(stride=spec.stride, padding=tuple(zip(spec.pad_low, spec.pad_high)),
                dilation=spec.dilation, groups=spec.groups)


def forward(spec, x, w):
    return reference.conv(x, w, **_geometry(spec)).astype(spec.dtype, copy=False)


def grad_input(spec, gy, w):
    return reference.conv_grad_input(gy, w, spec.x_shape, **_geometry(spec)).astype(spec.dtype, copy=False)


def grad_kernel(spec, x, gy):
    return reference.conv_grad_kernel(x, gy, spec.w_shape, **_geometry(spec)).astype(spec.dtype, copy=False)
