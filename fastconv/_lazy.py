"""Modules loaded when first used, so that `import fastconv` stays quick.

SciPy's BLAS (which three compiled modules cimport) and `scipy.fft` cost a quarter of a second
to import, most of it `scipy.linalg`; a user who only pools or runs Winograd never needs them.
A `LazyModule` stands where the module would be bound and imports it on the first attribute
read; from then on the module's names sit in its own namespace, so later reads cost what a
module attribute costs.
"""
import importlib


class LazyModule:
    """`name`, imported on first use. Names set on the stand-in before that (a test's patch)
    win over the module's own."""

    def __init__(self, name):
        self.__dict__["_lazy_name"] = name

    def __getattr__(self, attr):
        module = importlib.import_module(self.__dict__["_lazy_name"])
        for key, value in vars(module).items():
            self.__dict__.setdefault(key, value)
        return getattr(module, attr)

    def __repr__(self):
        return f"<module {self.__dict__['_lazy_name']!r}, imported on first use>"
