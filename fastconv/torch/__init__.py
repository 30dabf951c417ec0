"""fastconv inside PyTorch: autograd functions and ``torch.nn`` modules on fastconv's CPU kernels.

An optional part: ``import fastconv`` never imports torch; ``import fastconv.torch`` needs it
(``pip install "fastconv[torch]"``). Every ``import torch`` in this package is absolute and
finds the real PyTorch, not this module.

* Functions, differentiable in every tensor argument (``torch.autograd.gradcheck``-checked):
  ``conv`` (and ``conv1d/2d/3d``), ``conv_transpose``, ``locally_connected``, ``tiled_conv``,
  ``separable_conv``, with the arguments of their fastconv namesakes.
* Modules: ``Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d`` (drop-in for torch.nn's, state_dicts
  load both ways, plus ``algorithm=`` and every fastconv padding: "same" with a stride too),
  ``LocallyConnected1d/2d/3d``, ``TiledConv1d/2d/3d``, ``SeparableConv1d/2d/3d``.
* CPU tensors of float32/float64 (float16 is computed in float32 and returns float32, as in
  fastconv's functional API). A C-contiguous tensor is read in place (``as_array``) and the
  result wraps fastconv's array (``torch.from_numpy``): no copy. CUDA or meta tensors raise
  ValueError, other dtypes TypeError, each naming the argument.
"""
try:
    import torch    # absolute: the real PyTorch, never this package
except ImportError as exc:
    raise ImportError('fastconv.torch needs PyTorch, which is not installed: '
                      'pip install "fastconv[torch]"') from exc
del torch           # only checked for here; this package's namespace is fastconv's functions

from fastconv.torch._tensors import as_array
from fastconv.torch._functions import (conv, conv1d, conv2d, conv3d, conv_transpose,
                                       locally_connected, separable_conv, tiled_conv)
from fastconv.torch._modules import (Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d,
                                     ConvTranspose3d, LocallyConnected1d, LocallyConnected2d,
                                     LocallyConnected3d, SeparableConv1d, SeparableConv2d,
                                     SeparableConv3d, TiledConv1d, TiledConv2d, TiledConv3d)

__all__ = ["as_array", "conv", "conv1d", "conv2d", "conv3d", "conv_transpose",
           "locally_connected", "tiled_conv", "separable_conv",
           "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
           "LocallyConnected1d", "LocallyConnected2d", "LocallyConnected3d",
           "TiledConv1d", "TiledConv2d", "TiledConv3d",
           "SeparableConv1d", "SeparableConv2d", "SeparableConv3d"]
