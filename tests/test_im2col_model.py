"""im2col's cost model: the terms a strided input gradient pays beyond its GEMMs.

A stride along the width makes the input gradient sum each row by phase of the stride (contiguous
adds) and then put every gx value back in order (src/_phase.pxd's unphase_rows, a store every
stride values). The model counted the GEMMs and the column matrix only, so a shallow strided
input gradient (4 output channels in 4 groups, stride 3) was predicted 0.11 ms and measured
0.46 ms, and the models sent it to im2col at 3x direct's time (chooser sweep, AVX2 and AVX-512).
"""
import numpy as np

from fastconv import _registry
from fastconv._algorithms import im2col
from fastconv._geometry import make_spec


def _shallow_strided():
    return make_spec((8, 64, 13, 72), (4, 16, 3, 3), stride=3, groups=4, dtype=np.float32)


def test_a_strided_input_gradient_counts_every_value_it_puts_back_in_order():
    spec = _shallow_strided()
    plan = im2col.plan_of(spec, "grad_input")
    assert plan.phased
    assert im2col._unphased(spec, "grad_input", plan) == 8 * 64 * 13 * 72
    for op in ("forward", "grad_kernel"):      # they phase x, which the copies count
        assert im2col._unphased(spec, op, im2col.plan_of(spec, op)) == 0
    unstrided = make_spec((8, 64, 13, 72), (4, 16, 3, 3), groups=4, dtype=np.float32)
    assert im2col._unphased(unstrided, "grad_input", im2col.plan_of(unstrided, "grad_input")) == 0


def test_the_models_rank_a_shallow_strided_input_gradient_below_direct():
    """Measured (2 threads, Intel Xeon): direct 0.16 ms, im2col 0.46-0.50 ms at every level."""
    spec = _shallow_strided()
    assert (_registry.predicted("im2col", spec, "grad_input")
            > _registry.predicted("direct", spec, "grad_input"))
