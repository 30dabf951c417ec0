"""The algorithms, registered in the order `fastconv.algorithms()` lists them."""
from .._registry import register
from . import im2col, reference
from . import separable
from . import fft
from . import direct
from . import winograd
from . import depthwise
from . import blocked
from . import pointwise

register(im2col)
register(reference)
register(separable)
register(fft)
register(direct)
register(winograd)
register(depthwise)
register(blocked)
register(pointwise)
