"""Every instruction-set level of every hand-vectorised kernel set (direct, winograd, fft,
depthwise, blocked, im2col's packed GEMM, pointwise's GEMM with A in place) that
this machine can run, chosen by the one override (FASTCONV_KERNEL_LEVEL) in a fresh interpreter.

The broad shape coverage of each set at each level is in its own file (test_direct.py,
test_winograd.py, test_fft.py: ``test_every_kernel_set_matches_the_reference``, which lowers one
set through its own variable); this file checks the dispatch they share (src/_cpu_level.h): one
override moves every set, each reports the level forced and runs at that level's vector width,
and the three operations of each set still match the reference there, in both precisions, on a
few odd shapes with stride and dilation where the set takes them.
"""
import os
import subprocess
import sys

import pytest

import fastconv
from fastconv import (_blocked, _depthwise, _direct, _fft, _im2col, _kernel_level, _pointwise,
                      _winograd)

SETS = {"direct": _direct, "winograd": _winograd, "fft": _fft, "depthwise": _depthwise,
        "im2col": _im2col, "blocked": _blocked, "pointwise": _pointwise}
BEST = min(module.kernel_level() for module in SETS.values())

# Odd sizes, asymmetric padding, stride and dilation where the set supports them.
CASES = {
    "direct": [((2, 3, 11, 13), (5, 3, 3, 2), dict(stride=(2, 1), dilation=(1, 2), padding=1)),
               ((1, 2, 37), (3, 2, 5), dict(padding="same"))],
    "winograd": [((2, 3, 13, 11), (4, 3, 3, 3), dict(padding=((2, 0), (1, 1)))),
                 ((1, 5, 6, 19), (2, 5, 3, 3), dict(padding=1)),
                 ((2, 5, 37), (3, 5, 3), dict(padding=((4, 0),), dilation=2))],     # 1-D
    "depthwise": [((2, 3, 11, 13), (6, 1, 3, 2), dict(stride=(2, 1), dilation=(1, 2), padding=1,
                                                        groups=3)),
                  ((1, 4, 37), (4, 1, 5), dict(padding="same", groups=4))],
    "fft": [((1, 2, 19, 23), (3, 2, 5, 4), dict(stride=2, dilation=(1, 2), padding=(2, 1))),
            ((2, 3, 7, 9, 8), (2, 3, 3, 2, 3), dict(padding=1))],
    # the packed GEMM's forward and input gradient (grad_input_panels): output channels and
    # positions off its tile's edges, groups
    "im2col": [((2, 6, 11, 13), (26, 3, 3, 2), dict(stride=(2, 1), dilation=(1, 2), padding=1,
                                                    groups=2)),
               ((3, 5, 41), (37, 5, 4), dict(padding="same"))],
    # blocked: forward and grad_kernel at any geometry, grad_input at stride 1; 19 and 38 output
    # channels (19 per group) fill one or two vectors and part of the next at every level; an
    # 11-wide kernel is cut into several register tiles of the kernel gradient
    "blocked": [((2, 3, 11, 13), (19, 3, 3, 2), dict(stride=(2, 1), dilation=(1, 2), padding=1),
                 ("forward", "grad_kernel")),
                ((1, 4, 9, 14), (38, 2, 5, 3), dict(padding=(2, 0), groups=2)),
                ((2, 2, 37), (5, 2, 5), dict(padding="same")),
                ((2, 2, 6, 30), (20, 2, 2, 11), dict(padding=(0, 5)), ("forward", "grad_kernel")),
                # grad_input by columns (FASTCONV_BLOCKED_GI=columns below): whole channel
                # blocks at every level, stride with dilation along it
                ((2, 16, 9, 11), (6, 16, 2, 2), dict(stride=2, padding=1), ("grad_input",)),
                ((2, 32, 23), (5, 32, 3), dict(stride=2, dilation=2, padding=1),
                 ("grad_input",)),
                # grad_kernel by positions (forced by the ":positions" suffix): rows of 21 and
                # 23 outputs (a partial last vector at every level), the width's stride of 3
                ((2, 3, 9, 21), (6, 3, 3, 3), dict(padding=1), ("grad_kernel:positions",)),
                ((2, 2, 70), (5, 2, 4), dict(stride=3, dilation=2, padding=2),
                 ("grad_kernel:positions",)),
                # the minibatch as the lanes (":batch"): 19 samples, a part-filled last block
                # at every level and dtype
                ((19, 3, 7, 9), (6, 3, 3, 2), dict(padding=1, dilation=(1, 2)),
                 ("forward:batch", "grad_input:batch", "grad_kernel:batch")),
                ((19, 4, 23), (6, 2, 3), dict(groups=2, stride=2, padding=2),
                 ("forward:batch", "grad_kernel:batch")),
                # along planes (":planes"): rows of 2-3 vectors at every level (the last one
                # overlapping), a stride's phases, 7 output channels (a tile of 3 and one of 4)
                ((2, 3, 7, 37), (7, 3, 3, 3), dict(padding=1, stride=(1, 2)), ("forward:planes",)),
                ((1, 2, 3, 5, 19), (5, 2, 2, 3, 3), dict(padding=1), ("forward:planes",))],
    # pointwise: output channels past a block of the tile's rows (15 a group), positions past
    # its panels
    "pointwise": [((2, 6, 7, 9), (30, 3, 1, 1), dict(groups=2)),
                  ((3, 13, 41), (7, 13, 1), {})],
}

_SCRIPT = """
import os, numpy as np, fastconv
from fastconv import _blocked, _depthwise, _direct, _im2col, _winograd, _fft, _kernel_level
from fastconv import _pointwise, reference
from fastconv._algorithms import blocked
from fastconv._geometry import make_spec
level = {level}
sets = {{"direct": _direct, "winograd": _winograd, "fft": _fft, "depthwise": _depthwise,
        "im2col": _im2col, "blocked": _blocked, "pointwise": _pointwise}}
for name, module in sets.items():
    assert module.kernel_level() == level, (name, module.kernel_level(), level)
assert _kernel_level.levels() == {{name: _kernel_level.NAMES[level] for name in sets}}
width = {{2: 64, 1: 32}}.get(level)
if width:                                     # level 0 is the build's own width
    assert _direct.lanes(4) * 4 == width and _winograd.lanes(8) * 8 == width
rng = np.random.default_rng(1)
for name, cases in {cases!r}.items():
    for xs, ws, kw, *ops in cases:
        ops = ops[0] if ops else ("forward", "grad_input", "grad_kernel")
        for dtype, tol in ((np.float32, 2e-4), (np.float64, 1e-9)):
            x = rng.standard_normal(xs).astype(dtype)
            w = rng.standard_normal(ws).astype(dtype)
            y = reference.conv(x, w, **kw)
            gy = rng.standard_normal(y.shape).astype(dtype)
            pairs = {{"forward": lambda: (fastconv.conv(x, w, algorithm=name, **kw), y),
                     "grad_input": lambda: (fastconv.conv_grad_input(gy, w, xs, algorithm=name,
                                                                     **kw),
                                            reference.conv_grad_input(gy, w, xs, **kw)),
                     "grad_kernel": lambda: (fastconv.conv_grad_kernel(x, gy, ws, algorithm=name,
                                                                       **kw),
                                             reference.conv_grad_kernel(x, gy, ws, **kw))}}
            for op in ops:
                op, _, path = op.partition(":")     # a path of blocked's, forced
                os.environ["FASTCONV_BLOCKED_GK"] = "positions" if path == "positions" else "auto"
                os.environ["FASTCONV_BLOCKED_BATCH"] = "batch" if path == "batch" else "auto"
                os.environ["FASTCONV_BLOCKED_PLANES"] = "planes" if path == "planes" else "auto"
                if path:
                    spec = make_spec(xs, ws, dtype=dtype, **kw)
                    taken = (blocked._by_batch(spec, op) if path == "batch"
                             else blocked._by_planes(spec) if path == "planes"
                             else blocked._by_positions(spec))
                    assert taken, (name, op, path, xs, ws, kw, dtype)
                got, want = pairs[op]()
                assert got.dtype == dtype, (name, op, got.dtype)
                err = np.abs(got - want).max()
                assert err <= tol * np.abs(want).max(), (name, level, op, xs, ws, kw, dtype, err)
print("ok")
"""


@pytest.mark.parametrize("level", [0, 1, 2])
def test_one_override_runs_every_set_at_that_level(level):
    """FASTCONV_KERNEL_LEVEL=<name> (read once, at import) puts every set at that level; the
    per-set variables are cleared so that only the one override acts."""
    if BEST < level:
        pytest.skip(f"this machine runs level {BEST} at best")
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
    env = {k: v for k, v in os.environ.items() if k not in _kernel_level.PER_SET_ENV}
    env.update({_kernel_level.ENV: _kernel_level.NAMES[level], "FASTCONV_IM2COL_GEMM": "packed",
                "FASTCONV_IM2COL_GI": "panels", "FASTCONV_BLOCKED_GI": "columns",
                "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")})
    code = _SCRIPT.format(level=level, cases=CASES)
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_every_set_runs_the_level_of_this_process():
    """Without an override the sets agree (one level query), and the name the cost models are
    keyed by is that level's."""
    levels = {name: module.kernel_level() for name, module in SETS.items()}
    if any(os.environ.get(var) for var in (_kernel_level.ENV,) + _kernel_level.PER_SET_ENV):
        pytest.skip("an override is set for this process")
    assert len(set(levels.values())) == 1, levels
    level = levels["direct"]
    if level > 0:
        assert _kernel_level.current() == _kernel_level.NAMES[level]
