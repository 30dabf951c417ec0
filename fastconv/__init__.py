"""fastconv: fast CPU convolution and its gradients for NumPy users.

Chapter 9 of *Deep Learning* (Goodfellow, Bengio, Courville) as software. The functional API is
in docs/CONTRACT.md: ``conv`` (eq. 9.7/9.8), ``conv_grad_kernel`` (eq. 9.11), ``conv_grad_input``
(eq. 9.13), ``conv_transpose`` (eq. 9.14), the chooser (``algorithms``, ``choose``, ``explain``)
and the thread and workspace settings.
"""
try:
    from . import _openmp_info
except ImportError as exc:  # pragma: no cover - only the unbuilt source tree gets here
    raise ImportError(
        "fastconv's compiled core is missing: this is probably the source folder, not the installed "
        "package. Install it (`pip install .`) and run from another directory, or build in place "
        "(`python setup.py build_ext --inplace`)."
    ) from exc

from . import _kernel_level
_kernel_level.apply_override()      # before any kernel runs: FASTCONV_KERNEL_LEVEL
from . import _malloc  # noqa: F401  (freed arrays' memory kept for the next ones: see there)

from ._config import get_num_threads, get_workspace_limit, set_num_threads, set_workspace_limit
from ._registry import NotSupportedError, algorithms
from ._autotune import clear_autotune_cache, get_autotune, set_autotune
from ._safety_net import get_strict_choice, set_strict_choice
from ._functional import (choose, conv, conv1d, conv2d, conv3d, conv_grad_input, conv_grad_kernel,
                          conv_transpose, explain)
from ._prepared import ConvPlan, plan
from . import _algorithms  # noqa: F401  (registers the algorithms)
from . import _measure  # noqa: F401  (the measuring floor: registers itself with the registry)
from ._calibrate import calibrate
from . import reference
from . import local, pooling
from .separable import (low_rank_conv, separable_conv, separable_conv_grad_factors,
                        separable_conv_grad_input)

__version__ = "0.1.0"

# fastconv.nn and fastconv.features (which brings in scipy.optimize) load when first used: an
# `import fastconv` for a convolution does not pay for them.
_LAZY = ("features", "nn")


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'fastconv' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))

__all__ = [
    "conv", "conv1d", "conv2d", "conv3d", "conv_grad_input", "conv_grad_kernel", "conv_transpose",
    "algorithms", "choose", "explain", "plan", "ConvPlan", "NotSupportedError", "reference",
    "calibrate", "set_autotune", "get_autotune", "clear_autotune_cache",
    "set_strict_choice", "get_strict_choice",
    "set_num_threads", "get_num_threads", "set_workspace_limit", "get_workspace_limit",
    "separable_conv", "separable_conv_grad_input", "separable_conv_grad_factors", "low_rank_conv",
]
