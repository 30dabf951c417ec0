"""Every ```python block of README.md runs as printed (issue 16, item 9).

Each block runs in a fresh namespace (a reader pastes one block at a time), in a temporary
current directory (a block may write a file), with its output captured. A block that needs an
optional package the test machine lacks (scikit-learn for the digits example, PyTorch for the
fastconv.torch example, dask for fastconv.dask) is skipped with the package's name; nothing else
is skipped.
"""
import contextlib
import io
import os
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = [(README.read_text()[:m.start()].count("\n") + 2, m.group(1))
          for m in re.finditer(r"```python\n(.*?)```", README.read_text(), re.S)]


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("line,code", BLOCKS, ids=[f"line{line}" for line, _ in BLOCKS])
def test_readme_block_runs_as_printed(line, code, tmp_path, monkeypatch):
    for package in ("sklearn", "torch", "dask"):
        if re.search(rf"^\s*(from|import) {package}\b", code, re.M):
            pytest.importorskip(package)
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "__readme__"})
    assert os.getcwd() == str(tmp_path)
