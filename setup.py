"""Build the Cython core of fastconv.

Portable by default: ``-O3`` and OpenMP when the compiler has it (a serial build otherwise, with a
warning). GCC and clang (``CC=clang``; Apple's clang with libomp installed) both build it; on
x86-64 the hand-vectorised kernels are compiled for AVX-512, AVX2 and the build's own target and
picked at run time (src/_cpu_level.h). Opt-in switches, read from the environment:

* ``FASTCONV_NATIVE=1``  adds ``-march=native`` (binaries then only run on this kind of CPU);
* ``FASTCONV_DEBUG=1``   turns Cython's bounds/wraparound checks back on and builds with ``-O0 -g``;
* ``FASTCONV_ONLY=_a,_b`` builds only those modules (for working on one kernel; not for installs).

The extensions compile in parallel (one job per core; ``build_ext -j N`` sets another count).

``-ffast-math`` is never used: it would break the NaN/Inf propagation the contract promises.
"""
import glob
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("FASTCONV_DEBUG") == "1"
NATIVE = os.environ.get("FASTCONV_NATIVE") == "1"

# Every Cython directive in one place (docs/STYLE.md); FASTCONV_DEBUG=1 turns the checks back on.
DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
    "nonecheck": DEBUG,
    "embedsignature": True,
}

# Every src/_*.pyx is one extension module, fastconv._name.
MODULES = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join("src", "_*.pyx")))
if os.environ.get("FASTCONV_ONLY"):
    MODULES = [m for m in MODULES if m in os.environ["FASTCONV_ONLY"].split(",")]


def _compiler_command():
    """The compiler command setuptools will run, as a list: CC may carry a launcher or flags
    (``ccache gcc``, ``gcc -m64``), so it is split as the shell would split it."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shlex.split(cc)


# The ways a compiler may take OpenMP, tried in order: GCC and LLVM clang take -fopenmp; Apple's
# clang only passes it to the preprocessor and needs libomp (Homebrew's or MacPorts') linked.
OPENMP_FLAGS = [(["-fopenmp"], ["-fopenmp"])]
if sys.platform == "darwin":
    OPENMP_FLAGS.append((["-Xpreprocessor", "-fopenmp"], ["-lomp"]))


def _openmp_flags():
    """(compile flags, link flags) that build a tiny OpenMP program with the compiler
    setuptools will use, or None if none does (the build is then serial)."""
    cc = _compiler_command()
    if not cc or shutil.which(cc[0]) is None:
        return None
    src = textwrap.dedent("""
        #include <omp.h>
        int main(void) { int n = 0;
        #pragma omp parallel reduction(+:n)
          n += 1;
          return omp_get_max_threads() > 0 ? 0 : 1; }
    """)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as f:
            f.write(src)
        for compile_flags, link_flags in OPENMP_FLAGS:
            cmd = cc + compile_flags + [path, "-o", os.path.join(tmp, "probe")] + link_flags
            if subprocess.run(cmd, capture_output=True).returncode == 0:
                return compile_flags, link_flags
    return None


def _flags():
    # Release builds carry no debug information (-g0 overrides Python's own -g): the modules
    # were five times larger with it and took longer to compile.
    compile_args = ["-O0", "-g"] if DEBUG else ["-O3", "-g0"]
    link_args = []
    if NATIVE:
        compile_args.append("-march=native")
    openmp = _openmp_flags()
    if openmp is not None:
        compile_args += openmp[0]
        link_args += openmp[1]
    else:
        sys.stderr.write("fastconv: the compiler has no OpenMP; building the kernels serial.\n")
    return compile_args, link_args


# The C headers, Cython declarations and included Cython sources the modules use: a change to
# any of them rebuilds.
DEPENDS = sorted(glob.glob(os.path.join("src", "*.h")) + glob.glob(os.path.join("src", "*.pxd"))
                 + glob.glob(os.path.join("src", "*.pxi")))


class BuildExt(build_ext):
    """Cythonize, probe the compiler and compile when the build runs (not when setup.py is
    imported: pip's "getting requirements" then costs nothing), the modules in parallel on every
    core, each saying what it does."""

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

    def run(self):
        import numpy
        from Cython.Build import cythonize
        compile_args, link_args = _flags()
        for ext in self.extensions:
            ext.include_dirs.append(numpy.get_include())
            ext.extra_compile_args = compile_args
            ext.extra_link_args = link_args
        sys.stderr.write(f"fastconv: compiling {len(self.extensions)} extension modules on "
                         f"{self.parallel} parallel job(s) (about a minute on 2 cores)\n")
        generated = cythonize(self.extensions, compiler_directives=DIRECTIVES,
                              include_path=["src"], nthreads=self.parallel)
        sources = {ext.name: ext.sources for ext in generated}
        for ext in self.extensions:     # setuptools' own Extension objects, now on the C files
            ext.sources = sources[ext.name]
        super().run()

    def build_extension(self, ext):
        sys.stderr.write(f"fastconv: compiling {ext.name}\n")
        super().build_extension(ext)


EXTENSIONS = [
    Extension(
        f"fastconv.{name}",
        [f"src/{name}.pyx"],
        include_dirs=["src"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
        depends=DEPENDS,
    )
    for name in MODULES
]

setup(ext_modules=EXTENSIONS, cmdclass={"build_ext": BuildExt})
