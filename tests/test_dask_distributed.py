"""fastconv.dask on a real distributed scheduler: 2 worker processes x 1 thread (issue 14, part 2).

One cluster per module (its start costs seconds); a few tests, one of them filtering a volume
larger than a worker's memory limit without a worker dying.
"""
import subprocess
import sys

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import fastconv  # noqa: E402
import fastconv.dask as fd  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       memory_limit="300MB", dashboard_address=None,
                                       silence_logs=40)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def test_conv_and_pool_equal_numpy_on_the_cluster(client):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 37, 29)).astype(np.float32)
    w = rng.standard_normal((4, 3, 5, 3)).astype(np.float32)
    xd = da.from_array(x, chunks=(1, 3, 9, 10))
    kw = dict(stride=2, padding="same", padding_mode="reflect", dilation=(1, 2))
    got = client.compute(fd.conv(xd, w, **kw)).result()
    np.testing.assert_allclose(got, fastconv.conv(x, w, **kw), rtol=0, atol=2e-4 * 10)
    pooled = client.compute(fd.max_pool(xd, 3, 2, 1)).result()
    np.testing.assert_array_equal(pooled, fastconv.pooling.max_pool(x, 3, 2, 1))


def test_tasks_use_one_thread_and_leave_the_process_setting_alone(client):
    def inside():
        from fastconv import _config
        before = fastconv.get_num_threads()
        with fd._overlap.limited(None):
            during = fastconv.get_num_threads()
        with _config.thread_limit(1):
            pass
        return fd.task_threads(), before, during, fastconv.get_num_threads()
    threads, before, during, after = client.submit(inside, pure=False).result()
    assert threads == 1 and during == 1 and after == before


def _worker_addresses(client):
    """The workers' addresses once both have reported (a worker that died and was restarted by
    its nanny comes back at another address). Counting the scheduler's list at one instant read
    0 once in a full CI run, right after the computation, where the two workers were the same
    before and after in every rerun."""
    client.wait_for_workers(2, timeout=60)
    return set(client.scheduler_info()["workers"])


def test_a_volume_larger_than_a_worker_memory_is_filtered(client):
    """~650 MB of float64 through workers of 300 MB each: made lazily, filtered, reduced."""
    before = _worker_addresses(client)
    x = da.ones((1, 1, 9000, 9000), chunks=(1, 1, 1500, 1500), dtype=np.float64)
    w = np.full((1, 1, 3, 3), 1.0 / 9)
    total = client.compute(fd.conv(x, w, padding="same").sum()).result()
    n = 9000          # each tap (dy, dx) meets (n - |dy|)(n - |dx|) inputs inside the zero padding
    assert total == pytest.approx((3 * n - 2) ** 2 / 9, rel=1e-9)
    assert len(before) == 2
    assert _worker_addresses(client) == before      # no worker died and was replaced


def test_import_fastconv_does_not_import_dask_and_a_missing_dask_says_what_to_install():
    import pathlib
    home = str(pathlib.Path(fastconv.__file__).resolve().parent.parent)
    code = ("import sys, fastconv\n"
            "assert not any(m == 'dask' or m.startswith('dask.') for m in sys.modules)\n"
            "sys.modules['dask'] = None\n"
            "try:\n"
            "    import fastconv.dask\n"
            "except ImportError as exc:\n"
            "    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=home, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'pip install "fastconv[dask]"' in done.stdout
