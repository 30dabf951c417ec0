"""fastconv.dask.conv against dask-image's convolve on the same LocalCluster, and one NumPy
process of fastconv.conv (issue 14, part 2's benchmark).

    python bench/dask_vs_daskimage.py            # 8192^2 image, 31x31; (4, 512^3) volume, 5^3
    python bench/dask_vs_daskimage.py --quick    # tiny sizes: checks that it runs and agrees

Both problems are the same arithmetic in both libraries: scipy.ndimage.convolve (which dask-image
wraps) flips the kernel, so fastconv runs with ``flip=True``; its default boundary 'reflect'
repeats the edge sample, which is numpy's 'symmetric', so dask-image runs with mode='mirror',
which is numpy's 'reflect' = fastconv's ``padding_mode="reflect"``; the volume is filtered per
channel (fastconv: groups=4 with a (4, 1, 5, 5, 5) kernel; dask-image: one convolve per
channel). Every result is reduced to its sum on the cluster (nothing is gathered), the input is
generated and persisted on the cluster before timing, and each timing is the best of a few runs
through fastconv's one timer (fastconv._timing). A crop at the array's corner is compared with
the NumPy call before anything is timed. Needs dask[array], distributed and dask-image.
"""
import argparse
import os

import numpy as np

import dask.array as da
import distributed
from dask_image import ndfilters

import fastconv
import fastconv.dask as fd
from fastconv import _timing

FULL = [("image 8192^2, 31x31", (1, 1, 8192, 8192), (1, 1, 31, 31), 1, (1, 1, 2048, 2048)),
        ("volume 4x512^3, 5^3 per channel", (1, 4, 512, 512, 512), (4, 1, 5, 5, 5), 4,
         (1, 4, 128, 128, 128))]
QUICK = [("image 256^2, 7x7", (1, 1, 256, 256), (1, 1, 7, 7), 1, (1, 1, 64, 64)),
         ("volume 4x32^3, 5^3 per channel", (1, 4, 32, 32, 32), (4, 1, 5, 5, 5), 4,
          (1, 4, 16, 16, 16))]
CROP = 96


def _fastconv_dask(x, w, groups):
    return fd.conv(x, w, padding="same", padding_mode="reflect", groups=groups, flip=True)


def _dask_image(x, w):
    """dask-image's convolve on each (batch, channel) plane-or-volume, stacked back."""
    planes = [da.stack([ndfilters.convolve(x[n, c], w[c, 0], mode="mirror")
                        for c in range(x.shape[1])]) for n in range(x.shape[0])]
    return da.stack(planes)


def _check_crop(client, x, w, groups, results):
    """The corner crop of each dask result against fastconv.conv on the crop (with the context its
    outputs read): the NumPy call is the reference."""
    nd = w.ndim - 2
    context = CROP + w.shape[-1]
    piece = client.compute(x[(slice(None), slice(None)) + (slice(0, context),) * nd]).result()
    want = fastconv.conv(piece, w, padding="same", padding_mode="reflect", groups=groups,
                         flip=True)[(slice(None), slice(None)) + (slice(0, CROP),) * nd]
    for name, y in results.items():
        got = client.compute(y[(slice(None), slice(None)) + (slice(0, CROP),) * nd]).result()
        err = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))
        print(f"    crop check {name}: max relative error {err:.1e}")
        assert err < 1e-4, f"{name} disagrees with fastconv.conv on the corner crop: {err}"


def _numpy_fits(shape, itemsize=4):
    """Whether input, output and the explicitly padded copy fit in the memory available."""
    need = 3.2 * np.prod(shape) * itemsize
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return False
    return need < 0.7 * avail


def run(cases, repeat):
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    with distributed.Client(cluster) as client:
        print(f"cluster: 2 workers x 1 thread; fastconv {fastconv.__version__}")
        for name, shape, w_shape, groups, chunks in cases:
            print(f"{name}: x {shape} float32 in chunks {chunks}, w {w_shape}")
            w = np.random.default_rng(0).standard_normal(w_shape).astype(np.float32)
            x = da.random.default_rng(1).random(shape, chunks=chunks, dtype=np.float32)
            x = client.persist(x)
            distributed.wait(x)
            ours, theirs = _fastconv_dask(x, w, groups), _dask_image(x, w)
            _check_crop(client, x, w, groups, {"fastconv.dask": ours, "dask-image": theirs})
            for label, y in (("fastconv.dask.conv", ours), ("dask_image convolve", theirs)):
                t = _timing.best_of(lambda: client.compute(y.sum()).result(), repeat)
                print(f"    {label:22s} {t:8.3f} s")
            if _numpy_fits(shape):
                xn = client.compute(x).result()
                t = _timing.best_of(lambda: fastconv.conv(xn, w, padding="same",
                                                          padding_mode="reflect", groups=groups,
                                                          flip=True), repeat)
                print(f"    {'fastconv.conv (NumPy)':22s} {t:8.3f} s  "
                      f"({fastconv.get_num_threads()} threads, one process)")
                del xn
            else:
                print("    fastconv.conv (NumPy): skipped, not enough free memory")
            client.cancel(x)
    cluster.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one timed run")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per case (best kept)")
    args = parser.parse_args()
    run(QUICK if args.quick else FULL, 1 if args.quick else args.repeat)


if __name__ == "__main__":
    main()
