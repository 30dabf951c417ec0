"""Benchmark session setup: one thread count for everyone, and the machine recorded in the JSON."""

import os
import platform
import sys

import pytest

# The repository runs pytest with --import-mode=importlib, which leaves sys.path alone, so the
# benchmark modules find their shared `cases` module through this folder explicitly.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cases import QUICK  # noqa: E402


def thread_count():
    """fastconv's thread count, or the CPUs this process may use when fastconv cannot say."""
    try:
        import fastconv

        return int(fastconv.get_num_threads())
    except (ImportError, AttributeError):
        return len(os.sched_getaffinity(0))


@pytest.fixture(scope="session")
def num_threads():
    """The thread count of the run; PyTorch is held to the same count as fastconv."""
    n = thread_count()
    try:
        import torch
    except ImportError:
        return n
    torch.set_num_threads(n)
    return n


def _cpu_model():
    from fastconv._cachefiles import cpu_model   # the name fastconv's own caches key on
    return cpu_model()


def _version(module_name):
    try:
        module = __import__(module_name)
    except ImportError:
        return None
    return getattr(module, "__version__", "unknown")


def _blas():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    keys = ("user_api", "internal_api", "prefix", "version", "num_threads", "architecture")
    return [{k: lib.get(k) for k in keys} for lib in threadpool_info()]


def environment():
    """What a reader needs to trust the numbers: CPU, cores, threads, BLAS, versions, mode."""
    info = {
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "threads": thread_count(),
        "quick": QUICK,
        "target_seconds": os.environ.get("FASTCONV_BENCH_SECONDS"),
        "versions": {
            name: _version(name)
            for name in ("fastconv", "numpy", "scipy", "torch", "pytest_benchmark")
        },
        "python": platform.python_version(),
        "blas": _blas(),
    }
    try:
        import fastconv

        info["workspace_limit"] = fastconv.get_workspace_limit()
    except (ImportError, AttributeError):
        pass
    return info


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["fastconv_bench"] = environment()
