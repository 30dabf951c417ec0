"""The public fastconv benchmark suite as data: cases, output shapes, FLOP counts and arrays.

Shipped inside the package so that ``fastconv bench`` runs where ``bench/`` is not installed;
``bench/cases.py`` imports it. Every case is one convolution layer: batch ``N``, ``C`` input and
``K`` output channels, the input's spatial size, the kernel's size, and the geometry (stride,
padding, groups; dilation is always 1). ``IMAGE_CASES`` are the single-channel 512x512 images
with kernels 3 to 63 (where the chooser must weigh direct against FFT).
"""
import zlib
from dataclasses import dataclass, replace
from math import prod

import numpy as np

OPERATIONS = ("forward", "grad_input", "grad_kernel")


@dataclass(frozen=True)
class Case:
    name: str
    N: int
    C: int
    K: int
    spatial: tuple
    kernel: tuple
    stride: int = 1
    padding: int = 0
    groups: int = 1

    @property
    def ndim(self):
        return len(self.spatial)

    @property
    def x_shape(self):
        return (self.N, self.C, *self.spatial)

    @property
    def w_shape(self):
        return (self.K, self.C // self.groups, *self.kernel)

    @property
    def single_channel(self):
        """One image, one input and one output channel: scipy.signal can compute it too."""
        return self.N == self.C == self.K == 1

    @property
    def geometry(self):
        return {"stride": self.stride, "padding": self.padding, "groups": self.groups}


def _case(name, N, C, K, spatial, kernel, stride, padding, groups):
    return Case(name, N, C, K, tuple(spatial), tuple(kernel), stride, padding, groups)


SUITE = (
    _case("resnet3x3", 8, 64, 64, (56, 56), (3, 3), 1, 1, 1),
    _case("vgg_first", 8, 3, 64, (224, 224), (3, 3), 1, 1, 1),
    _case("pointwise", 8, 256, 64, (28, 28), (1, 1), 1, 0, 1),
    _case("strided", 8, 64, 128, (56, 56), (3, 3), 2, 1, 1),
    _case("largek15", 4, 8, 8, (128, 128), (15, 15), 1, 7, 1),
    _case("depthwise", 8, 128, 128, (28, 28), (3, 3), 1, 1, 128),
    _case("mnist5x5", 64, 1, 32, (28, 28), (5, 5), 1, 0, 1),
    _case("audio1d", 16, 1, 32, (16000,), (64,), 1, 0, 1),
    _case("volume3d", 2, 4, 8, (32, 32, 32), (3, 3, 3), 1, 1, 1),
)

IMAGE_KERNELS = (3, 7, 15, 31, 63)
IMAGE_CASES = tuple(
    _case(f"image512_k{k}", 1, 1, 1, (512, 512), (k, k), 1, 0, 1) for k in IMAGE_KERNELS
)


def shrink(case):
    """The smoke-run version of a case: batch 1 (or less), spatial / 4 but not below the kernel."""
    spatial = tuple(max(n // 4, k) for n, k in zip(case.spatial, case.kernel))
    return replace(case, N=min(case.N, 1), spatial=spatial)


def all_cases(quick=False):
    cases = SUITE + IMAGE_CASES
    return tuple(shrink(c) for c in cases) if quick else cases


def output_spatial(case):
    return tuple(
        (n + 2 * case.padding - k) // case.stride + 1 for n, k in zip(case.spatial, case.kernel)
    )


def output_shape(case):
    """Shape of y = conv(x, w), which is also the shape of gy."""
    return (case.N, case.K, *output_spatial(case))


def result_shape(case, op):
    """Shape of what ``op`` returns: y for forward, gx for grad_input, gw for grad_kernel."""
    return {"forward": output_shape(case), "grad_input": case.x_shape, "grad_kernel": case.w_shape}[op]


def flops(case):
    """2 * multiply-adds of the direct method; the same count for all three operations."""
    return 2 * case.N * case.K * (case.C // case.groups) * prod(case.kernel) * prod(output_spatial(case))


def make_arrays(case, seed=0):
    """Seeded float32 C-contiguous x, w and gy for a case (the seed also depends on the name)."""
    rng = np.random.default_rng([seed, zlib.crc32(case.name.encode())])
    return {
        "x": rng.standard_normal(case.x_shape, dtype=np.float32),
        "w": rng.standard_normal(case.w_shape, dtype=np.float32),
        "gy": rng.standard_normal(output_shape(case), dtype=np.float32),
    }
