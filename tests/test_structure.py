"""The shape of the house (issue 15): no import cycle among fastconv's modules, no long files.

Read from the source with ``ast``, so these hold whatever is imported at run time: an import
inside a function counts as much as one at the top of a module (a lazy import that only dodges a
cycle is still the cycle). Measurement sits on a floor above the model (_calibrate, _measure,
benchmark above _registry, _calibration, _autotune); these tests keep it there.
"""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "fastconv"
SOURCES = ROOT / "src"
MAX_LINES = 600



def _modules():
    """{dotted name: path} of every Python module of the package."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _compiled():
    """Dotted names of the compiled modules (src/*.pyx build fastconv.<stem>)."""
    return {f"fastconv.{path.stem}" for path in SOURCES.glob("*.pyx")}


def _imports(name, path, modules, compiled):
    """The fastconv modules `name` imports, anywhere in its file."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1] + ([node.module] if node.module else [])
                base = ".".join(base)
            else:
                base = node.module or ""
            # `from X import y`: the module X.y where there is one, else a name defined in X
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules | compiled
                       else base for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in modules)
    found.discard(name)
    return found


def import_graph():
    modules = _modules()
    compiled = set(_compiled())
    return {name: _imports(name, path, set(modules), compiled) for name, path in modules.items()}


def find_cycle(graph):
    """One cycle of `graph` ({node: successors}) as a list of nodes, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for succ in sorted(graph.get(node, ())):
            if state.get(succ) == "open":
                return stack[stack.index(succ):] + [succ]
            if succ not in state:
                cycle = visit(succ)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_lazy_and_relative_imports():
    graph = import_graph()
    assert "fastconv._registry" in graph["fastconv._functional"]
    assert "fastconv._algorithms.im2col" in graph["fastconv._algorithms"]
    assert "fastconv._sweep" in graph["fastconv.__main__"]      # imported inside a function


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("low, high", [
    ("fastconv._calibration", "fastconv._calibrate"),
    ("fastconv._calibration", "fastconv._functional"),
    ("fastconv._registry", "fastconv._measure"),
    ("fastconv._registry", "fastconv._calibrate"),
    ("fastconv._registry", "fastconv._functional"),
    ("fastconv._autotune", "fastconv._registry"),
    ("fastconv._registry", "fastconv.benchmark"),
    ("fastconv._timing", "fastconv._config"),
    ("fastconv._validate", "fastconv._registry"),
])
def test_measurement_stays_above_the_model(low, high):
    """`low` does not reach `high` through any chain of imports."""
    graph, seen, todo = import_graph(), set(), [low]
    while todo:
        node = todo.pop()
        assert node != high, f"{low} imports {high} (through the modules it imports)"
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))


def _source_files():
    for folder in (PACKAGE, SOURCES):
        for pattern in ("*.py", "*.pyx", "*.pxi", "*.pxd", "*.h"):
            yield from folder.rglob(pattern)


def test_no_source_file_is_too_long():
    long = {}
    for path in _source_files():
        lines = len(path.read_text().splitlines())
        name = path.relative_to(ROOT).as_posix()
        if lines > MAX_LINES:
            long[name] = lines
    assert not long, f"files above {MAX_LINES} lines (split them): {long}"


def test_import_fastconv_leaves_the_heavy_parts_unloaded():
    """`import fastconv` does not load fastconv.nn, fastconv.features, SciPy's linalg, fft or
    optimize, or the compiled modules that cimport SciPy's BLAS (issue 16, item 5); they load on
    first use (fastconv.nn, `from fastconv import features`, the first im2col or FFT call)."""
    import subprocess
    import sys
    code = ("import sys, fastconv\n"
            "heavy = sorted(m for m in sys.modules if m.startswith(('fastconv.nn', "
            "'fastconv.features', 'scipy.optimize', 'scipy.linalg', 'scipy.fft', "
            "'fastconv._im2col', 'fastconv._winograd', 'fastconv._local')))\n"
            "assert not heavy, heavy\n"
            "import numpy as np\n"
            "x = np.random.rand(1, 2, 40, 40)\n"
            "for name in ('im2col', 'fft', 'winograd'):\n"
            "    fastconv.conv(x, np.random.rand(3, 2, 3, 3), algorithm=name)\n"
            "fastconv.local.locally_connected(x[:, :, :4, :4], np.random.rand(3, 3, 3, 2, 2, 2))\n"
            "assert 'scipy.linalg' in sys.modules and 'scipy.fft' in sys.modules\n"
            "assert fastconv.nn.Conv2d and fastconv.features.gabor_bank\n"
            "from fastconv import nn, features\n"
            "print('ok')\n")
    import fastconv
    home = pathlib.Path(fastconv.__file__).resolve().parent.parent    # the fastconv under test
    env = dict(__import__("os").environ, PYTHONPATH=str(home))
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(home), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
