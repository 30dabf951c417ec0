"""fastconv keeps freed arrays' memory for the next ones (glibc): after `import fastconv`, a loop
that allocates and frees the same 2 MB arrays faults no pages in after its first rounds; the
opt-out and glibc's own variables leave glibc's defaults. Counted in page faults
(``ru_minflt``), in fresh interpreters, never timed."""
import os
import subprocess
import sys

import pytest

import fastconv
from fastconv import _malloc

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")

_LOOP = """
import resource, numpy as np
import fastconv
print(fastconv._malloc.applied)
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):                          # warm: the heap grows to the loop's size once
    a = np.ones((32, 16, 999), np.float32); b = np.ones_like(a); del a, b
start = faults()
for _ in range(50):
    a = np.ones((32, 16, 999), np.float32); b = np.ones_like(a); del a, b
print(faults() - start)
"""


def _run(env_extra):
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
    env = {k: v for k, v in os.environ.items()
           if k != _malloc.ENV and not k.startswith("MALLOC_")}
    env.update(env_extra, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", _LOOP], env=env, cwd=root, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    applied, faults = done.stdout.split()
    return applied == "True", int(faults)


def test_freed_arrays_are_reused_without_page_faults():
    if not _malloc.applied:
        pytest.skip("not glibc (or the thresholds were left to the environment)")
    applied, faults = _run({})
    assert applied
    # 100 arrays of 2 MB, each 512 pages if mapped afresh: reused, a handful at most
    assert faults < 500, faults


@pytest.mark.parametrize("env", [{_malloc.ENV: "0"}, {"MALLOC_TRIM_THRESHOLD_": "1048576"}])
def test_the_opt_out_and_glibcs_own_variables_are_respected(env):
    applied, _ = _run(env)
    assert not applied
