"""fastconv on dask arrays: convolution, pooling and small networks over larger-than-memory data.

``conv``, ``conv_transpose``, the pools, ``filter_bank``/``gabor`` and ``apply_network`` take a
dask array (N, C, *spatial), chunked along the batch and spatial axes, and return a lazy dask
array equal (to float rounding) to the NumPy call on the whole array, for any chunking. Each
block reads a halo from its neighbours (the window's extent less one, split by the padding); the
padding applies at the true edges of the array only. The channel axis is kept whole. See
`fastconv.dask._overlap` for the geometry and the thread rule inside a task.

Needs the optional dependencies: ``pip install "fastconv[dask]"``. ``import fastconv`` never
imports dask.
"""
try:
    import dask.array as _dask_array
except ImportError as exc:       # pragma: no cover - only without dask
    raise ImportError('fastconv.dask needs dask[array] (and distributed for a cluster): '
                      'pip install "fastconv[dask]"') from exc

from fastconv.dask._conv import conv, conv_transpose, filter_bank, gabor
from fastconv.dask._pooling import (avg_pool, channel_pool, global_avg_pool, global_max_pool,
                                    lp_pool, max_pool, weighted_avg_pool)
from fastconv.dask._network import apply_network, receptive_field
from fastconv.dask._overlap import task_threads

del _dask_array

__all__ = ["conv", "conv_transpose", "filter_bank", "gabor", "max_pool", "avg_pool", "lp_pool",
           "weighted_avg_pool", "global_avg_pool", "global_max_pool", "channel_pool",
           "apply_network", "receptive_field", "task_threads"]
