"""How many OpenMP threads a step of an fft call runs on.

Every step (transforms, channel product, the kernel taps' DFT) is one call into the Cython core
`fastconv._fft` on OpenMP threads over work items computed alike whatever the split, one step
after the other, never two at once. Small steps run on the calling thread alone: an OpenMP
region costs microseconds (a 512x512 image's forward: 1.0 ms on one thread, 0.57 ms on two).
"""

MIN_PARALLEL_MACS = 1 << 14       # smaller channel products run on the calling thread alone
MIN_PARALLEL_POINTS = 1 << 14     # ... and smaller transforms (real values; a 128x128 image)


def threads(budget, items):
    """Threads for `items` work items: at most one each, at least one, at most `budget`."""
    return max(1, min(budget, items))


def for_points(budget, points):
    """The budget for a transform of `points` real values (1 below MIN_PARALLEL_POINTS)."""
    return budget if points >= MIN_PARALLEL_POINTS else 1


def for_macs(budget, macs):
    """The budget for a product of `macs` complex multiply-adds (1 below MIN_PARALLEL_MACS)."""
    return budget if macs >= MIN_PARALLEL_MACS else 1
