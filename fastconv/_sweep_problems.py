"""The chooser sweep's problems: layers of well-known networks, image filters, a seeded draw.

Each problem is one convolution as a user calls it: input and kernel shapes and the geometry
keywords of ``fastconv.conv`` (stride, padding, dilation, groups, padding_mode). The sweep
(`_sweep`) runs forward and both gradients of each, so a decoder's transposed convolution is the
``grad_input`` of the matching forward layer (U-Net and DCGAN rows).
"""
import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Problem:
    network: str
    name: str
    x_shape: tuple
    w_shape: tuple
    geometry: dict = field(default_factory=dict, hash=False)

    @property
    def ndim(self):
        return len(self.w_shape) - 2


def _layers(network, batches, layers):
    """Problems for `layers` [(name, C, K, spatial, kernel, geometry)] at every batch size."""
    out = []
    for n in batches:
        for name, c, k, spatial, kernel, geometry in layers:
            groups = geometry.get("groups", 1)
            out.append(Problem(network, f"{name}/b{n}", (n, c, *spatial),
                               (k, c // groups, *kernel), dict(geometry)))
    return out


def _sq(n):
    return (n, n)


RESNET18 = [
    ("conv1 7x7/2", 3, 64, _sq(224), _sq(7), dict(stride=2, padding=3)),
    ("layer1 3x3", 64, 64, _sq(56), _sq(3), dict(padding=1)),
    ("layer2 3x3/2", 64, 128, _sq(56), _sq(3), dict(stride=2, padding=1)),
    ("layer2 1x1/2", 64, 128, _sq(56), _sq(1), dict(stride=2)),
    ("layer2 3x3", 128, 128, _sq(28), _sq(3), dict(padding=1)),
    ("layer3 3x3/2", 128, 256, _sq(28), _sq(3), dict(stride=2, padding=1)),
    ("layer3 3x3", 256, 256, _sq(14), _sq(3), dict(padding=1)),
    ("layer4 3x3/2", 256, 512, _sq(14), _sq(3), dict(stride=2, padding=1)),
    ("layer4 3x3", 512, 512, _sq(7), _sq(3), dict(padding=1)),
]
MOBILENET_V2 = [
    ("stem 3x3/2", 3, 32, _sq(224), _sq(3), dict(stride=2, padding=1)),
    ("dw32 3x3", 32, 32, _sq(112), _sq(3), dict(padding=1, groups=32)),
    ("pw 32->16", 32, 16, _sq(112), _sq(1), {}),
    ("pw 16->96", 16, 96, _sq(112), _sq(1), {}),
    ("dw96 3x3/2", 96, 96, _sq(112), _sq(3), dict(stride=2, padding=1, groups=96)),
    ("dw144 3x3", 144, 144, _sq(56), _sq(3), dict(padding=1, groups=144)),
    ("pw 144->24", 144, 24, _sq(56), _sq(1), {}),
    ("dw192 3x3/2", 192, 192, _sq(56), _sq(3), dict(stride=2, padding=1, groups=192)),
    ("dw384 3x3", 384, 384, _sq(14), _sq(3), dict(padding=1, groups=384)),
    ("dw960 3x3", 960, 960, _sq(7), _sq(3), dict(padding=1, groups=960)),
    ("pw 320->1280", 320, 1280, _sq(7), _sq(1), {}),
]
CONVNEXT = [
    ("dw96 7x7", 96, 96, _sq(56), _sq(7), dict(padding=3, groups=96)),
    ("dw384 7x7", 384, 384, _sq(14), _sq(7), dict(padding=3, groups=384)),
]
C3D = [
    ("conv1 3x3x3", 3, 32, (8, 56, 56), (3, 3, 3), dict(padding=1)),
    ("conv2 3x3x3", 32, 64, (8, 28, 28), (3, 3, 3), dict(padding=1)),
    ("conv3 3x3x3", 64, 128, (4, 14, 14), (3, 3, 3), dict(padding=1)),
]
TCN = [(f"k3 d{d}", 64, 64, (1024,), (3,), dict(dilation=d, padding=((2 * d, 0),)))
       for d in (1, 2, 4, 8)]
WAV2VEC = [
    ("conv0 k10/5", 1, 256, (16000,), (10,), dict(stride=5)),
    ("conv1 k3/2", 256, 256, (3199,), (3,), dict(stride=2)),
    ("conv6 k2/2", 256, 256, (99,), (2,), dict(stride=2)),
]
UNET = [    # encoder 3x3 layers; the decoder's 2x2/2 up-convolution is the grad_input of "down"
    ("enc 3x3", 32, 32, _sq(128), _sq(3), dict(padding=1)),
    ("enc 3x3 deep", 128, 128, _sq(32), _sq(3), dict(padding=1)),
    ("down 2x2/2", 64, 128, _sq(64), _sq(2), dict(stride=2)),
    ("dcgan 4x4/2", 64, 128, _sq(32), _sq(4), dict(stride=2, padding=1)),
]
LENET = [
    ("digits c1 5x5", 1, 16, _sq(16), _sq(5), dict(padding=2)),
    ("digits c2 5x5", 16, 32, _sq(8), _sq(5), dict(padding=2)),
    ("mnist c1 5x5", 1, 6, _sq(28), _sq(5), {}),
    ("mnist c2 5x5", 6, 16, _sq(12), _sq(5), {}),
    ("cifar c1 3x3", 3, 32, _sq(32), _sq(3), dict(padding=1)),
    ("cifar c2 3x3", 32, 64, _sq(16), _sq(3), dict(padding=1)),
]


def network_problems(quick=False):
    if quick:
        return (_layers("resnet18", (1,), RESNET18[1::3]) + _layers("mobilenetv2", (1,), MOBILENET_V2[1::4])
                + _layers("lenet", (32,), LENET[:2]) + _layers("tcn", (4,), TCN[:1]))
    return (_layers("resnet18", (1, 8), RESNET18) + _layers("mobilenetv2", (1, 8), MOBILENET_V2)
            + _layers("convnext", (1, 8), CONVNEXT) + _layers("c3d", (1, 2), C3D)
            + _layers("tcn", (1, 8), TCN) + _layers("wav2vec", (1, 4), WAV2VEC)
            + _layers("unet", (1, 4), UNET) + _layers("lenet", (32, 128), LENET))


IMAGES = ((256, 3), (256, 15), (256, 63), (512, 5), (512, 9), (512, 31), (1024, 7), (1024, 21),
          (1024, 63), (2048, 3), (2048, 11), (2048, 41))


def image_problems(quick=False):
    sizes = IMAGES[::4] if quick else IMAGES
    return [Problem("image", f"{n}x{n} k{k}", (1, 1, n, n), (1, 1, k, k), {})
            for n, k in sizes]


def random_problems(count=24, seed=0):
    """A seeded draw of odd geometries: 1-3-D, stride, dilation, groups, padding modes."""
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        ndim = rng.choice((1, 2, 2, 3))
        groups = rng.choice((1, 1, 2, 4))
        c = groups * rng.choice((1, 3, 8, 16))
        k = groups * rng.choice((1, 4, 8, 32))
        size = {1: (101, 2000), 2: (9, 80), 3: (6, 20)}[ndim]
        spatial = tuple(rng.randint(*size) for _ in range(ndim))
        kernel = tuple(rng.choice((1, 2, 3, 5, 7)) for _ in range(ndim))
        stride = rng.choice((1, 1, 2, 3))
        dilation = rng.choice((1, 1, 2))
        if any((kk - 1) * dilation + 1 > n for kk, n in zip(kernel, spatial)):
            continue
        mode = rng.choice(("zeros", "zeros", "reflect", "replicate", "circular"))
        padding = rng.choice((0, 1, "same" if stride == 1 else 1))
        if mode == "reflect" and padding and min(spatial) <= 2:
            continue
        n = rng.choice((1, 2, 8))
        out.append(Problem("random", f"r{len(out)} {ndim}d", (n, c, *spatial), (k, c // groups, *kernel),
                           dict(stride=stride, dilation=dilation, groups=groups, padding=padding,
                                padding_mode=mode)))
    return out


def all_problems(quick=False):
    return network_problems(quick) + image_problems(quick) + random_problems(6 if quick else 24)
