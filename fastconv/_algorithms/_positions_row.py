"""blocked's pointwise layers on small planes, run as one row of the planes' positions
(_geometry.positions_as_row: the same sums, the arrays reshaped as views).

bk_row cuts a row of outputs into as few register tiles as the registers allow. A 7-wide row
(MobileNetV2's 320 -> 1280 layer on 7x7 maps) went as tiles of 3, 2 and 2 columns of two rows
at AVX2, 12, 8 and 8 of its 12 accumulators; one row of the 49 positions is tiles of 6 and 5.
Taken where the rows are short (at most SHORT_ROW columns), the planes small (at most
ROW_POSITIONS positions: an item's row buffer of positions x channel lanes is written and
transposed while in cache) and the work items (samples x groups x channel blocks, no longer
times rows) at least ROW_ITEMS: a number of the problem's, not of the thread count, so that a
problem's path -- and the kernel gradient's order of sums -- never changes with the threads.
"""
import functools

from .._geometry import positions_as_row

SHORT_ROW = 16
ROW_POSITIONS = 1024
ROW_ITEMS = 16


@functools.lru_cache(maxsize=256)
def _row(spec):
    row = positions_as_row(spec)
    if row is None or spec.input_size[2] > SHORT_ROW or row.input_size[2] > ROW_POSITIONS:
        return None
    return row


def as_row(spec, items):
    """The problem as one row of positions, or None where it stays as it is; `items(row)`: the
    work items the row's problem has."""
    row = _row(spec)
    if row is None or items(row) < ROW_ITEMS:
        return None
    return row


# The arrays of each operation, as ConvSpec's shape properties: its two operands, its result.
SHAPES = {"forward": ("x_shape", "w_shape", "y_shape"),
          "grad_input": ("y_shape", "w_shape", "x_shape"),
          "grad_kernel": ("x_shape", "y_shape", "w_shape")}


def operation(op, items):
    """Decorate blocked's `op(spec, a, b, out=None)` to run a problem `as_row` allows on its row
    (an `out` is filled through a view of it, and returned itself)."""
    a_shape, b_shape, out_shape = SHAPES[op]

    def decorate(fn):
        @functools.wraps(fn)
        def run(spec, a, b, out=None):
            row = as_row(spec, items)
            if row is None or (out is not None and not out.flags.c_contiguous):
                return fn(spec, a, b, out)
            view = None if out is None else out.reshape(getattr(row, out_shape))
            result = fn(row, a.reshape(getattr(row, a_shape)), b.reshape(getattr(row, b_shape)),
                        view)
            if result is None:
                return None
            return out if out is not None else result.reshape(getattr(spec, out_shape))
        return run
    return decorate


def question(items):
    """Decorate blocked's `fn(spec, op)` (supports, workspace, cost) to answer for the row a
    problem runs on."""
    def decorate(fn):
        @functools.wraps(fn)
        def answer(spec, op):
            row = as_row(spec, items)
            return fn(spec if row is None else row, op)
        return answer
    return decorate
