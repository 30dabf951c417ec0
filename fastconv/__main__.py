"""The ``fastconv`` command: ``fastconv tour`` (the default), ``demo``, ``bench``, ``explain``,
``calibrate`` and ``cache``.

A user's mistake (a shape that does not fit, a bad option value) prints one line
``fastconv: error: ...`` and exits with status 2, argparse's convention; a reader that goes away
(``fastconv explain ... | head``) ends the command quietly with status 141, as a shell reports a
command that SIGPIPE ended.
"""
import argparse
import os
import sys

import numpy as np

import fastconv
from fastconv import _timing
from fastconv.features import edge_detector_cost


def _photo():
    """A real photograph in grey levels, from scikit-learn's bundled samples (the demo extra)."""
    try:
        from sklearn.datasets import load_sample_image
        rgb = load_sample_image("china.jpg")
    except ImportError as exc:
        raise SystemExit(f"the tour needs the demo extra: pip install \"fastconv[demo]\" ({exc})")
    return (rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)) / 255


def tour(out=None):
    """Figure 9.6 on a real photograph, then a layer-sized problem with the chooser's view."""
    image = _photo()
    h, w = image.shape
    kernel = np.array([[[[-1.0, 1.0]]]], np.float32)      # figure 9.6: right minus left
    x = image[None, None]
    edges = fastconv.conv2d(x, kernel)
    seconds = _timing.best_of(lambda: fastconv.conv2d(x, kernel), 5)
    algorithm = fastconv.choose(x.shape, kernel.shape)
    print(f"figure 9.6: edges of a {h}x{w} photograph with the kernel [-1, 1]")
    print(f"  output {edges.shape[2]}x{edges.shape[3]}, {seconds * 1e3:.3f} ms, algorithm {algorithm!r}")
    print(f"  {edge_detector_cost(h, w)}")
    print(f"  strongest vertical edges: |y| max {np.abs(edges).max():.3f}, mean {np.abs(edges).mean():.4f}")
    if out:
        _save_png(out, np.abs(edges[0, 0]))
        print(f"  wrote {out}")

    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 64, 56, 56), dtype=np.float32)
    w = rng.standard_normal((64, 64, 3, 3), dtype=np.float32) / 24
    threads = fastconv.get_num_threads()
    print("\na ResNet layer: x (8, 64, 56, 56), w (64, 64, 3, 3), padding 1, float32, "
          f"{threads} thread{'' if threads == 1 else 's'}")
    y = fastconv.conv2d(x, w, padding=1)
    gy = np.ones_like(y)
    flops = 2 * y.size * 64 * 9
    for name, fn in [("forward", lambda: fastconv.conv2d(x, w, padding=1)),
                     ("grad_input", lambda: fastconv.conv_grad_input(gy, w, x.shape, padding=1)),
                     ("grad_kernel", lambda: fastconv.conv_grad_kernel(x, gy, w.shape, padding=1))]:
        t = _timing.best_of(fn, 3)
        print(f"  {name:<12} {t * 1e3:7.2f} ms  {flops / t / 1e9:6.1f} GFLOP/s")
    print()
    print(fastconv.explain(x.shape, w.shape, padding=1))


def _save_png(path, image):
    try:
        from PIL import Image
    except ImportError:
        raise SystemExit("writing a PNG needs Pillow (the demo extra): pip install \"fastconv[demo]\"")
    scaled = (255 * image / max(float(image.max()), 1e-12)).astype(np.uint8)
    try:
        Image.fromarray(scaled).save(path)
    except (OSError, ValueError) as exc:          # unwritable, or not an image file name
        raise SystemExit(f"fastconv: error: cannot write {path!r}: {exc}") from None


class _Parser(argparse.ArgumentParser):
    """argparse's exit status 2 for a usage error, with its message on one line."""

    def error(self, message):
        self.exit(2, f"fastconv: error: {message} (see '{self.prog} --help')\n")


def _shape(text):
    try:
        sizes = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 0:
        raise argparse.ArgumentTypeError(f"expected sizes >= 0 separated by commas, such as "
                                         f"8,64,56,56, got {text!r}")
    return sizes


def _int_or_ints(text):
    """An int, or one int per spatial dimension separated by commas."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int or one int per spatial dimension "
                                         f"such as 2,1, got {text!r}") from None
    return values[0] if len(values) == 1 else values


def _padding(text):
    if text in ("valid", "same", "full"):
        return text
    try:
        return _int_or_ints(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected valid, same, full, an int or one int per "
                                         f"spatial dimension such as 1,1, got {text!r}") from None


def main(argv=None):
    try:
        status = _main(argv)
        sys.stdout.flush()              # here, where a closed pipe can still be answered
        return status
    except BrokenPipeError:
        # The reader went away: stop quietly. Python would report the failed flush of stdout at
        # exit, so stdout goes to /dev/null first (the recipe of Python's signal documentation).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13                 # 141: what a shell shows for a command ended by SIGPIPE


def _size(nbytes):
    for unit in ("bytes", "KiB", "MiB"):
        if nbytes < 1024 or unit == "MiB":
            return f"{nbytes} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024


def cache(clear=False):
    """``fastconv cache``: the cache directory and fastconv's files in it; with `clear`, delete
    them (nothing else in the directory)."""
    from . import _cachefiles
    directory = _cachefiles.cache_dir()
    if clear:
        removed = _cachefiles.clear()
        print(f"removed {len(removed)} file{'' if len(removed) == 1 else 's'} from {directory}")
        for path in removed:
            print(f"  {os.path.basename(path)}")
        return 0
    found = _cachefiles.files()
    state = "" if found else (" (empty)" if os.path.isdir(directory) else " (not created yet)")
    print(f"cache directory: {directory}{state}")
    for path, nbytes in found:
        print(f"  {os.path.basename(path):<28} {_size(nbytes):>11}")
    if found:
        print("(fastconv cache --clear deletes them; FASTCONV_CACHE_DIR moves the directory)")
    return 0


def calibrate(quick=False, save=True):
    """``fastconv calibrate``: fastconv.calibrate() with what it is timing on stderr, then the
    summary of what it fitted (and warnings about a busy machine) on stdout."""
    from . import _calibrate, _calibration

    def progress(done, total, what):
        print(f"[{done + 1}/{total}] timing {what}", file=sys.stderr, flush=True)

    data = _calibrate.calibrate(quick=quick, save=save, progress=progress)
    for line in _calibrate.summary(data):
        print(line)
    print(f"saved to {_calibration.path()}" if save else "not saved (--no-save)")
    return 0


def _main(argv):
    from .demos import plain
    parser = _Parser(prog="fastconv", description=plain(__doc__))
    sub = parser.add_subparsers(dest="command")
    p_tour = sub.add_parser("tour", help="figure 9.6 on a photograph and a timed ResNet layer")
    p_tour.add_argument("--out", help="write the edge image to this PNG file")
    p_explain = sub.add_parser("explain", help="what the chooser sees for one problem",
                               description="Every algorithm for forward, grad_input and "
                               "grad_kernel: applicable or why not, predicted time, measured time "
                               "if tuned, workspace, and the choice.")
    p_explain.add_argument("--shape", nargs=2, type=_shape, metavar=("X", "W"),
                           help="input and kernel shapes, e.g. --shape 8,64,56,56 64,64,3,3")
    p_explain.add_argument("--x", type=_shape, help="input shape, e.g. 8,64,56,56")
    p_explain.add_argument("--w", type=_shape, help="kernel shape, e.g. 64,64,3,3")
    p_explain.add_argument("--stride", type=_int_or_ints, default=1)
    p_explain.add_argument("--padding", type=_padding, default=0,
                           help="valid, same, full, an int, or one int per dimension (1,1)")
    p_explain.add_argument("--dilation", type=_int_or_ints, default=1)
    p_explain.add_argument("--groups", type=int, default=1)
    p_explain.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p_demo = sub.add_parser("demo", help="run an example: digits, segment, variable-size, ...")
    p_demo.add_argument("name", nargs="?", help="which demo (without one: the list)")
    p_demo.add_argument("demo_args", nargs=argparse.REMAINDER, help="the demo's own options")
    p_bench = sub.add_parser("bench", help="time every algorithm and the chooser on the suite "
                             "(--sweep: the chooser on real network layers)")
    p_bench.add_argument("bench_args", nargs=argparse.REMAINDER, help="options of the benchmark")
    p_cal = sub.add_parser("calibrate", help="fit the chooser's cost models to this machine "
                           "(about 20 s; run it when the machine is quiet)",
                           description="Time every algorithm on a fixed set of small problems, "
                           "fit each model's scale and overhead, keep them in the cache directory "
                           "and print what was fitted, with a warning where the measurements "
                           "look like a busy machine.")
    p_cal.add_argument("--quick", action="store_true", help="one tiny problem (a test run)")
    p_cal.add_argument("--no-save", action="store_true", help="do not write the cache file")
    p_cache = sub.add_parser("cache", help="show (or --clear) fastconv's cache directory",
                             description="The directory fastconv keeps its calibration and "
                             "autotuning results in, and its files with their sizes.")
    p_cache.add_argument("--clear", action="store_true",
                         help="delete fastconv's files there (nothing else)")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:       # argparse's REMAINDER drops options that come first
        if "--sweep" in argv[1:]:   # the chooser sweep over real network layers (_sweep)
            from . import _sweep
            return _sweep.main([a for a in argv[1:] if a != "--sweep"])
        from . import benchmark
        return benchmark.main(argv[1:])
    args = parser.parse_args(argv)
    if args.command == "demo":
        from . import demos
        if args.name is None:
            print("the demos (fastconv demo NAME [--quick] [--out DIR]; "
                  "fastconv demo NAME --help for the options):")
            for name, what in demos.summaries().items():
                print(f"  {name:<14} {what}")
            print(f"their pictures go to {demos.out_dir(None)} unless --out DIR says otherwise")
            return 0
        if args.name not in demos.available():
            p_demo.error(f"unknown demo {args.name!r}; expected one of: "
                         f"{', '.join(demos.available())}")
        return demos.run(args.name, args.demo_args)
    if args.command == "bench":
        from . import benchmark
        return benchmark.main(args.bench_args)
    if args.command == "calibrate":
        return calibrate(quick=args.quick, save=not args.no_save)
    if args.command == "cache":
        return cache(clear=args.clear)
    if args.command == "explain":
        x_shape, w_shape = args.shape if args.shape else (args.x, args.w)
        if x_shape is None or w_shape is None:
            p_explain.error("explain needs --shape X W (or --x X --w W)")
        try:
            table = fastconv.explain(x_shape, w_shape, stride=args.stride, padding=args.padding,
                                     dilation=args.dilation, groups=args.groups, dtype=args.dtype)
        except (ValueError, TypeError, OverflowError) as exc:
            p_explain.error(str(exc))
        print(table)
    else:
        out = getattr(args, "out", None)
        if out and not os.path.isdir(os.path.dirname(os.path.abspath(out))):
            p_tour.error(f"--out {out!r}: the folder {os.path.dirname(os.path.abspath(out))!r} "
                         "does not exist")
        tour(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
