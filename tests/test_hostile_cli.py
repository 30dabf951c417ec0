"""Issue 17, item 9: the command line answers a user's mistake with one line and status 2.

Before, ``python -m fastconv explain --shape 1,1,8 1,1,30`` (and bad channel counts, groups,
``--padding 1,1``, ``--padding x``, a zero stride, an unknown dtype) printed a traceback and
exited with status 1; a closed pipe (``| head``) left a BrokenPipeError report on stderr.
"""
import os
import subprocess
import sys

import pytest

import fastconv
from fastconv.__main__ import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))

MISTAKES = [
    (["explain", "--shape", "1,1,8", "1,1,30"], "kernel"),
    (["explain", "--shape", "1,3,8,8", "4,2,3,3"], "channels"),
    (["explain", "--shape", "1,3,8,8", "4,3,3,3", "--groups", "2"], "groups"),
    (["explain", "--shape", "1,1,8,8", "1,1,3,3", "--padding", "x"], "--padding"),
    (["explain", "--shape", "1,1,8,8", "1,1,3,3", "--padding", "1,1,1"], "padding"),
    (["explain", "--shape", "1,1,8,8", "1,1,3,3", "--padding", "-1"], "padding"),
    (["explain", "--shape", "1,1,8", "1,1,3", "--stride", "0"], "stride"),
    (["explain", "--shape", "1,1,8", "1,1,3", "--stride", "x"], "--stride"),
    (["explain", "--shape", "1,1,8", "1,1,3", "--stride", str(2**70)], "stride"),
    (["explain", "--shape", "1,1,8", "1,1,3", "--dilation", "0"], "dilation"),
    (["explain", "--shape", "1,1,8", "1,1,3", "--dtype", "float16"], "dtype"),
    (["explain", "--shape", "1,1,8,8,8,8", "1,1,3,3,3,3"], "dimensions"),
    (["explain", "--shape", f"1,1,{2**70}", "1,1,3"], "x_shape"),
    (["explain", "--shape", "a,b", "1,1,3"], "--shape"),
    (["explain", "--shape", "1,1,8"], "--shape"),
    (["explain", "--x", "1,1,8"], "--shape"),
    (["demo", "no-such-demo"], "no-such-demo"),
    (["no-such-command"], "no-such-command"),
    (["tour", "--out", os.path.join(os.sep, "no-such-folder", "edges.png")], "no-such-folder"),
]


def _one_error_line(stderr, word):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{stderr}"
    assert lines[0].startswith("fastconv: error: "), lines[0]
    assert word in lines[0], f"{word!r} not named in {lines[0]!r}"


@pytest.mark.parametrize("argv,word", MISTAKES, ids=[" ".join(a)[:60] for a, _ in MISTAKES])
def test_a_mistake_is_one_line_and_status_2(argv, word, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    _one_error_line(captured.err, word)


def _run(*argv, **kwargs):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    kwargs.setdefault("stdout", subprocess.PIPE)
    return subprocess.run([sys.executable, "-m", "fastconv", *argv], env=env, cwd=ROOT,
                          stderr=subprocess.PIPE, text=True, timeout=120, **kwargs)


@pytest.mark.parametrize("argv,word", [MISTAKES[0], MISTAKES[1], MISTAKES[3]])
def test_the_issue_s_cases_from_a_shell(argv, word):
    done = _run(*argv)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    _one_error_line(done.stderr, word)


def test_per_dimension_padding_and_stride_are_understood():
    done = _run("explain", "--shape", "1,1,8,8", "1,1,3,3", "--padding", "1,1", "--stride", "2,1")
    assert done.returncode == 0, done.stderr
    assert "chosen" in done.stdout and done.stderr == ""


def test_a_closed_pipe_ends_quietly():
    """stdout is a pipe whose reader has already gone (as after ``| head`` has read its lines)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = _run("explain", "--shape", "8,64,56,56", "64,64,3,3", stdout=write_end)
    finally:
        os.close(write_end)
    assert done.stderr == "", done.stderr
    assert done.returncode == 141       # 128 + SIGPIPE, as a shell reports it
