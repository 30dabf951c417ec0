"""Tensors in and out of fastconv's NumPy kernels: checked views going in, ``from_numpy`` coming out.

A CPU tensor of float16/32/64 is handed to fastconv as ``tensor.detach().numpy()``: a view of the
same memory, whatever its strides. fastconv then reads a C-contiguous tensor in place and copies
only what it must (a non-contiguous tensor, float16, a dtype mismatch between x and w, a padding
mode other than zeros). Results come back through ``torch.from_numpy``, which wraps the array
fastconv allocated without copying it.

Refused, naming the argument: anything that is not a tensor (TypeError), a tensor that is not on
the CPU -- CUDA, meta, ... -- (ValueError: fastconv has CPU kernels only), a sparse tensor and a
dtype other than float16/float32/float64 (TypeError). float16 follows fastconv's functional API:
it is computed in float32 and the result is float32; its gradients come back in float16.
"""
import numpy as np
import torch

ACCEPTED_DTYPES = (torch.float16, torch.float32, torch.float64)


def check_tensor(t, name):
    """TypeError/ValueError naming `name` unless `t` is a strided CPU tensor of an accepted dtype."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise ValueError(f"{name} must be a CPU tensor (fastconv.torch runs fastconv's CPU "
                         f"kernels), got a tensor on device {str(t.device)!r}; move it with "
                         f"{name}.cpu() or use torch.nn's layers on that device")
    if t.layout != torch.strided:
        raise TypeError(f"{name} must be a dense (strided) tensor, got layout {t.layout}; "
                        f"convert it with {name}.to_dense()")
    if t.dtype not in ACCEPTED_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64 (float16 is computed in "
                        f"float32), got {t.dtype}")
    return t


def as_array(t, name="x"):
    """The NumPy view of the checked CPU tensor `t`: the same memory, no copy (a tensor with a
    pending negation bit is resolved first, which copies)."""
    return check_tensor(t, name).detach().resolve_neg().numpy()


def as_arrays(tensors, names):
    """as_array of each, None kept as None."""
    return [None if t is None else as_array(t, n) for t, n in zip(tensors, names)]


def to_tensor(a, dtype=None):
    """``torch.from_numpy`` of fastconv's result (no copy), cast to `dtype` if given (a gradient
    goes back in its input's dtype). An array torch cannot wrap (read-only, negative strides) is
    copied first."""
    a = np.asarray(a)
    if not a.flags.writeable or any(s < 0 for s in a.strides):
        a = a.copy()
    t = torch.from_numpy(a)
    return t if dtype is None or t.dtype == dtype else t.to(dtype)

