"""fastconv's compiled calls release the GIL: another Python thread runs while they compute.

The probe involves no clock. ``sys.setswitchinterval(100)`` stops the interpreter from taking
the GIL from its holder on its own, so the GIL changes hands only when the thread holding it
blocks or lets it go. A second thread counts, letting the GIL go at every turn
(``time.sleep(0)``); the main thread, holding the GIL, reads the count, makes a call and reads
the count again. The count can have moved only if the call let go of the GIL while it ran.

NumPy lets the GIL go in many of its own loops, so the count is read around fastconv's compiled
calls themselves: every function of the compiled modules is wrapped during these tests, and what
is checked is that the count moved during every compiled function that an operation runs on its
data (arrays of WORK_SIZE elements or more). A release is seen only if the counting thread gets
a core during it (on a busy machine it may wait for one), so each problem takes a millisecond or
more on one thread and an operation is repeated, up to ATTEMPTS times, until every such function
has been seen letting the GIL go; a function that keeps the GIL is never seen to, however often
it runs. The controls at the end show the probe failing on calls that keep the GIL (a C function
called through ctypes.PyDLL, a Python loop, a pooling kernel made to keep it) and passing on the
same C function called through ctypes.CDLL, which lets it go.
"""
import ctypes
import importlib
import sys
import threading
import time

import numpy as np
import pytest

import fastconv
from fastconv import local, nn, pooling as P
from fastconv.nn import _elementwise, _matmul  # noqa: F401  (their LazyModules are watched)
from fastconv._lazy import LazyModule

COMPILED = ("_direct", "_im2col", "_winograd", "_fft", "_separable", "_local", "_depthwise",
            "_blocked", "_pooling", "_matmul", "_elementwise")
ATTEMPTS = 50


class _Probe:
    """The counting thread, and which compiled functions it saw letting the GIL go."""

    def __init__(self):
        self.count = 0
        self.released = set()    # compiled functions during which the count moved
        self.working = set()     # compiled functions called on arrays of WORK_SIZE or more
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop:
            self.count += 1
            time.sleep(0)        # lets the GIL go, and waits for it again

    def start(self):
        self._thread.start()
        while self.count == 0:
            time.sleep(0)

    def stop(self):
        self._stop = True
        self._thread.join()

    def moves(self, call):
        """How far the count moved during call() (with the GIL held before and after)."""
        before = self.count
        call()
        return self.count - before

    def held_in_compiled_code(self, call):
        """The compiled functions that call() ran on its data (arrays of WORK_SIZE elements or
        more) and that were never seen letting the GIL go in up to ATTEMPTS tries, and all
        those it ran on its data."""
        self.released, self.working = set(), set()
        for _ in range(ATTEMPTS):
            call()
            if self.working and self.working <= self.released:
                break
        return self.working - self.released, self.working


# A compiled function given an array this large works on the operation's data; smaller calls
# (the kernel's transforms, sizes and tables) may end before the counting thread wakes.
WORK_SIZE = 2**16
# The FFT's row transforms read a large array of spectra but transform only the lines they are
# given, (lines of src_off) x (length L) values: a kernel gradient's inverse takes a kernel's few
# rows (the depthwise problem's: 96 lines of 100, a few microseconds, which the counting thread
# missed in 50 tries about one run in six). Their work is counted by those values.
ROW_TRANSFORMS = {"_fft.rows_r2c": (1, 9), "_fft.rows_c2r": (1, 9)}   # (src_off, L) positions


def _works_on_data(name, args):
    if name in ROW_TRANSFORMS:
        offsets, length = ROW_TRANSFORMS[name]
        return len(args[offsets]) * args[length] >= WORK_SIZE
    return any(isinstance(a, np.ndarray) and a.size >= WORK_SIZE for a in args)


class _Watched:
    """A compiled function that notes whether the count moved while it ran."""

    def __init__(self, fn, probe, name):
        self._fn, self._probe, self._name = fn, probe, name

    def __call__(self, *args, **kwargs):
        before = self._probe.count
        try:
            return self._fn(*args, **kwargs)
        finally:
            if self._probe.count != before:
                self._probe.released.add(self._name)
            if _works_on_data(self._name, args):
                self._probe.working.add(self._name)

    def __getitem__(self, key):          # a fused function's specialisation (pooling plans)
        return _Watched(self._fn[key], self._probe, self._name)


def _watch_compiled_functions(monkeypatch, probe):
    """Wrap every function of the compiled modules, where the modules and their stand-ins
    (LazyModule: fastconv imports some on first use) hold them."""
    for name in COMPILED:
        module = importlib.import_module(f"fastconv.{name}")
        holders = [module] + [
            v for key, m in list(sys.modules.items()) if key.startswith("fastconv")
            for v in list(vars(m).values())
            if isinstance(v, LazyModule) and v.__dict__["_lazy_name"] == module.__name__]
        for attr, fn in list(vars(module).items()):
            if callable(fn) and getattr(fn, "__module__", None) == module.__name__:
                for holder in holders:
                    monkeypatch.setattr(holder, attr, _Watched(fn, probe, f"{name}.{attr}"))


@pytest.fixture(scope="module")
def probe():
    interval, threads = sys.getswitchinterval(), fastconv.get_num_threads()
    fastconv.set_num_threads(1)              # the work runs on the calling thread
    sys.setswitchinterval(100)
    counter = _Probe()
    patch = pytest.MonkeyPatch()
    try:
        counter.start()
        _watch_compiled_functions(patch, counter)
        yield counter
    finally:
        patch.undo()
        counter.stop()
        sys.setswitchinterval(interval)
        fastconv.set_num_threads(threads)


def _check(probe, call):
    held, working = probe.held_in_compiled_code(call)
    assert working, "no compiled call on the operation's data was made"
    assert not held, (f"the GIL was held throughout every call of {sorted(held)} "
                      f"({ATTEMPTS} tries; these ran: {sorted(working)})")


# --- convolution, every algorithm ------------------------------------------------------------

def _conv_problems():
    """A 2-D problem with a rank-one (separable) kernel, so that every algorithm but the
    depthwise one takes it; a depthwise one (groups = channels); a 1-D one (the FFT's channel
    product unfused)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 16, 64, 64)).astype(np.float32)
    w = (rng.standard_normal((16, 16, 3, 1)) * rng.standard_normal((16, 16, 1, 3))).astype(
        np.float32)
    xd = rng.standard_normal((8, 32, 96, 96)).astype(np.float32)
    wd = (rng.standard_normal((32, 1, 3, 1)) * rng.standard_normal((32, 1, 1, 3))).astype(
        np.float32)
    x1 = rng.standard_normal((4, 16, 4096)).astype(np.float32)
    w1 = rng.standard_normal((16, 16, 7)).astype(np.float32)
    return {"2d": (x, w, 1, 1), "depthwise": (xd, wd, 32, 1), "1d": (x1, w1, 1, 3)}


CONV_PROBLEMS = _conv_problems()


def _conv_call(op, algorithm, x, w, groups, padding):
    """The call of `op` (with an output the size of x: `padding` is half the kernel)."""
    args = dict(padding=padding, groups=groups, algorithm=algorithm)
    if op == "forward":
        return lambda: fastconv.conv(x, w, **args)
    gy = np.ones((x.shape[0], w.shape[0]) + x.shape[2:], np.float32)
    if op == "grad_input":
        return lambda: fastconv.conv_grad_input(gy, w, x.shape, **args)
    return lambda: fastconv.conv_grad_kernel(x, gy, w.shape, **args)


@pytest.mark.parametrize("problem", sorted(CONV_PROBLEMS))
@pytest.mark.parametrize("op", ("forward", "grad_input", "grad_kernel"))
@pytest.mark.parametrize("algorithm", [a for a in fastconv.algorithms() if a != "reference"])
def test_convolution_releases_the_gil(probe, algorithm, op, problem):
    call = _conv_call(op, algorithm, *CONV_PROBLEMS[problem])
    try:
        call()
    except fastconv.NotSupportedError as exc:
        pytest.skip(f"{algorithm} does not take this problem: {exc}")
    _check(probe, call)


# --- pooling ----------------------------------------------------------------------------------

def _pooling_calls():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 32, 96, 96)).astype(np.float32)
    y, idx = P.max_pool(x, 2, return_indices=True)
    gy = np.ones(y.shape, np.float32)
    ya = P.avg_pool(x, 3, 2, 1)
    gya = np.ones(ya.shape, np.float32)
    g1 = np.ones(x.shape[:2], np.float32)
    gad = np.ones(x.shape[:2] + (5, 7), np.float32)
    gc = np.ones((16, 8) + x.shape[2:], np.float32)
    plan_max, plan_avg = P.plan("max", x.shape, 2), P.plan("avg", x.shape, 3, 2, 1)
    return {
        "max_pool": lambda: P.max_pool(x, 2, return_indices=True),
        "max_pool_grad_input": lambda: P.max_pool_grad_input(gy, x, 2, indices=idx),
        "avg_pool": lambda: P.avg_pool(x, 3, 2, 1),
        "avg_pool_grad_input": lambda: P.avg_pool_grad_input(gya, x.shape, 3, 2, 1),
        "plan max forward": lambda: plan_max.forward(x, return_indices=True),
        "plan max grad_input": lambda: plan_max.grad_input(gy, indices=idx),
        "plan avg forward": lambda: plan_avg.forward(x),
        "plan avg grad_input": lambda: plan_avg.grad_input(gya),
        "lp_pool": lambda: P.lp_pool(x, 2, 3, 2, 1),
        "lp_pool_grad_input": lambda: P.lp_pool_grad_input(gya, x, 2, 3, 2, 1),
        "weighted_avg_pool": lambda: P.weighted_avg_pool(x, 3, 2, 1),
        "weighted_avg_pool_grad_input": lambda: P.weighted_avg_pool_grad_input(gya, x.shape, 3,
                                                                                2, 1),
        "adaptive_max_pool": lambda: P.adaptive_max_pool(x, (5, 7)),
        "adaptive_max_pool_grad_input": lambda: P.adaptive_max_pool_grad_input(gad, x, (5, 7)),
        "adaptive_avg_pool": lambda: P.adaptive_avg_pool(x, (5, 7)),
        "adaptive_avg_pool_grad_input": lambda: P.adaptive_avg_pool_grad_input(gad, x.shape,
                                                                                (5, 7)),
        "global_avg_pool": lambda: P.global_avg_pool(x),
        "global_avg_pool_grad_input": lambda: P.global_avg_pool_grad_input(g1, x.shape),
        "global_max_pool": lambda: P.global_max_pool(x),
        "global_max_pool_grad_input": lambda: P.global_max_pool_grad_input(g1, x),
        "channel_pool": lambda: P.channel_pool(x, 4),
        "channel_pool_grad_input": lambda: P.channel_pool_grad_input(gc, x, 4),
    }


POOLS = sorted(_pooling_calls())


def test_every_pooling_function_is_probed():
    assert {n for n in P.__all__ if n != "plan"} <= set(POOLS)


@pytest.fixture(scope="module")
def pooling_calls():
    return _pooling_calls()


@pytest.mark.parametrize("name", POOLS)
def test_pooling_releases_the_gil(probe, pooling_calls, name):
    _check(probe, pooling_calls[name])


# --- locally connected and tiled convolution, separable convolution ----------------------------

def _other_calls():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 8, 32, 32)).astype(np.float32)
    w_lc = rng.standard_normal((30, 30, 8, 8, 3, 3)).astype(np.float32)
    w_tiled = rng.standard_normal((2, 2, 8, 8, 3, 3)).astype(np.float32)
    gy = np.ones((16, 8, 30, 30), np.float32)
    xs = rng.standard_normal((4, 8, 64, 64)).astype(np.float32)
    factors = [rng.standard_normal((8, 8, 5)).astype(np.float32) for _ in range(2)]
    gys = np.ones((4, 8, 64, 64), np.float32)
    linear = nn.Linear(512, 256, seed=0)        # its products run on fastconv's pool (_matmul)
    features = rng.standard_normal((256, 512)).astype(np.float32)
    outputs = np.ones((256, 256), np.float32)
    relu, activations = nn.ReLU(), rng.standard_normal((16, 32, 96, 96)).astype(np.float32)
    conv = nn.Conv2d(8, 8, 3, padding=1, seed=0)      # its bias gradient runs on _elementwise
    return {
        "locally_connected": lambda: local.locally_connected(x, w_lc),
        "locally_connected_grad_input": lambda: local.locally_connected_grad_input(
            gy, w_lc, x.shape),
        "locally_connected_grad_kernel": lambda: local.locally_connected_grad_kernel(
            x, gy, w_lc.shape),
        "tiled_conv": lambda: local.tiled_conv(x, w_tiled),
        "tiled_conv_grad_input": lambda: local.tiled_conv_grad_input(gy, w_tiled, x.shape),
        "tiled_conv_grad_kernel": lambda: local.tiled_conv_grad_kernel(x, gy, w_tiled.shape),
        "tiled_conv by tile": lambda: local.tiled_conv(x, w_tiled, algorithm="im2col"),
        "separable_conv": lambda: fastconv.separable_conv(xs, factors, padding=2),
        "separable_conv_grad_input": lambda: fastconv.separable_conv_grad_input(
            gys, factors, xs.shape, padding=2),
        "separable_conv_grad_factors": lambda: fastconv.separable_conv_grad_factors(
            xs, gys, factors, padding=2),
        "nn.Linear forward": lambda: linear(features),
        "nn.Linear backward": lambda: (linear(features), linear.backward(outputs)),
        "nn.ReLU forward and backward": lambda: relu.backward(relu(activations)),
        "nn.Conv2d backward": lambda: (conv(xs), conv.backward(gys)),
        "low_rank_conv": lambda: fastconv.low_rank_conv(xs, np.einsum(
            "kca,kcb->kcab", *factors), rank=1, padding=2),
    }


OTHERS = sorted(_other_calls())


@pytest.fixture(scope="module")
def other_calls():
    return _other_calls()


@pytest.mark.parametrize("name", OTHERS)
def test_local_and_separable_release_the_gil(probe, other_calls, name):
    _check(probe, other_calls[name])


# --- the probe can fail -----------------------------------------------------------------------

def _libc(loader):
    try:
        return loader(None).usleep
    except (OSError, AttributeError, TypeError):
        pytest.skip("no C library with usleep to load through ctypes here")


def test_the_probe_sees_calls_that_keep_the_gil(probe):
    keeps = _libc(ctypes.PyDLL)                 # PyDLL keeps the GIL during the call
    assert probe.moves(lambda: keeps(20000)) == 0
    assert probe.moves(lambda: sum(i * i for i in range(300000))) == 0


def test_the_probe_sees_a_call_that_lets_the_gil_go(probe):
    lets_go = _libc(ctypes.CDLL)                # CDLL lets it go
    assert any(probe.moves(lambda: lets_go(20000)) for _ in range(ATTEMPTS))


def test_the_probe_fails_a_pooling_kernel_that_keeps_the_gil(probe, monkeypatch):
    """A max pool whose compiled kernel kept the GIL (here: a C sleep that keeps it, standing
    in for the kernel) is caught, although the NumPy calls around it may let the GIL go."""
    keeps = _libc(ctypes.PyDLL)

    def kernel_keeping_the_gil(*args):
        keeps(5000)

    monkeypatch.setattr(fastconv._pooling, "max_forward",
                        _Watched(kernel_keeping_the_gil, probe, "_pooling.max_forward"))
    x = np.zeros((8, 16, 32, 32), np.float32)
    held, working = probe.held_in_compiled_code(lambda: P.max_pool(x, 2))
    assert held == working == {"_pooling.max_forward"}
