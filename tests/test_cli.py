"""Issue 16, items 6-8: the command line lists the demos, ends quietly on a closed pipe, has
``fastconv calibrate`` (progress, summary, warnings) and ``fastconv cache``; the demos write into
one named folder. Through ``main(argv)`` where that suffices, in a subprocess where the process's
own exit matters. No assertion about a time."""
import os
import subprocess
import sys

import pytest

import fastconv
from fastconv import _autotune, _cachefiles, _calibrate, _calibration, demos
from fastconv.__main__ import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache directory; the calibration in memory is forgotten before and after."""
    monkeypatch.setenv("FASTCONV_CACHE_DIR", str(tmp_path / "cache"))
    _calibration.reset()
    yield tmp_path / "cache"
    _calibration.reset()


def _run(*argv, cwd=ROOT, **kwargs):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    kwargs.setdefault("stdout", subprocess.PIPE)
    return subprocess.run([sys.executable, "-m", "fastconv", *argv], env=env, cwd=cwd,
                          stderr=subprocess.PIPE, text=True, timeout=300, **kwargs)


# item 6 ------------------------------------------------------------------------------------------

def test_demo_without_a_name_lists_the_demos(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    for name in demos.available():
        assert f"  {name} " in out
    assert "``" not in out and demos.out_dir(None) in out


@pytest.mark.parametrize("argv", [[], ["explain"], ["demo"], ["calibrate"], ["cache"], ["tour"]])
def test_help_texts_have_no_rst_backticks(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "`" not in out and "usage: fastconv" in out


@pytest.mark.parametrize("name", ["digits", "features"])
def test_demo_help_texts_have_no_rst_backticks(name, capsys):
    with pytest.raises(SystemExit):
        demos.run(name, ["--help"])
    out = capsys.readouterr().out
    assert "`" not in out and "--out" in out and demos.DEFAULT_OUT in out


@pytest.mark.parametrize("option,value", [("--stride", "2,1"), ("--padding", "1,2"),
                                          ("--dilation", "1,2"), ("--padding", "same")])
def test_per_axis_geometry(option, value, capsys):
    assert main(["explain", "--shape", "1,2,9,9", "2,2,3,3", option, value]) == 0
    assert "chosen" in capsys.readouterr().out


def test_per_axis_values_must_match_the_dimensions(capsys):
    with pytest.raises(SystemExit) as info:
        main(["explain", "--shape", "1,2,9,9", "2,2,3,3", "--stride", "2,1,1"])
    assert info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "stride" in lines[0]


def test_one_thread_is_singular():
    source = open(os.path.join(ROOT, "fastconv", "__main__.py"), encoding="utf-8").read()
    assert "get_num_threads()} threads" not in source


# item 7 ------------------------------------------------------------------------------------------

def test_calibrate_reports_progress_and_a_summary(cache, capsys):
    assert main(["calibrate", "--quick"]) == 0
    captured = capsys.readouterr()
    progress = captured.err.strip().splitlines()
    assert progress and progress[0].startswith("[1/1] timing float32 x (1, 2, 12, 12)")
    out = captured.out
    assert "calibrated in" in out and "scale" in out and "overhead" in out
    assert f"saved to {cache / _calibration.FILE_NAME}" in out
    data = _calibration.current()
    for name, ops in data["factors"].items():
        for op in ops:
            assert any(line.split()[:2] == [name, op] for line in out.splitlines())
    assert (cache / _calibration.FILE_NAME).exists()


def test_calibrate_is_silent_without_a_callback(cache, capsys):
    seen = []
    data = fastconv.calibrate(quick=True, save=False)
    assert capsys.readouterr() == ("", "")
    fastconv.calibrate(quick=True, save=False, progress=lambda *a: seen.append(a))
    assert seen == [(0, 1, _calibrate.describe("float32", *_calibrate.QUICK_PROBLEMS[0]))]
    assert data["noise"]["measurements"] >= len(data["noise"]["noisy"])
    assert not (cache / _calibration.FILE_NAME).exists()


def _data(factors, measurements=10, noisy=()):
    return {"seconds": 1.0, "threads": 1, "cpu": "test", "factors": factors,
            "noise": {"measurements": measurements, "noisy": [list(n) for n in noisy]}}


def test_summary_warns_about_capped_scales():
    lines = _calibrate.summary(_data({"direct": {"forward": {"float32": [_calibrate.MAX_FACTOR, 0.0],
                                                             "float64": [1.2, 1e-5]}},
                                      "fft": {"forward": {"float32": [0.125, 0.0]}}}))
    assert "1 thread on" in lines[0]
    rows = [line for line in lines if line.startswith("  direct") or line.startswith("  fft")]
    assert len(rows) == 3 and sum(line.endswith("cap") for line in rows) == 2
    warnings = [line for line in lines if line.startswith("WARNING")]
    assert len(warnings) == 1 and "2 scales hit the cap" in warnings[0]
    assert "busy" in warnings[0] and "quiet" in warnings[0]


def test_summary_warns_about_noisy_repeats():
    noisy = [("direct", "forward", "float32 x (1, 1, 8, 8) w (1, 1, 3, 3)", 2.5)] * 3
    lines = _calibrate.summary(_data({"direct": {"forward": {"float32": [1.0, 0.0]}}}, 10, noisy))
    assert any(line.startswith("  direct") and line.endswith("noisy 3") for line in lines)
    warnings = [line for line in lines if line.startswith("WARNING")]
    assert len(warnings) == 1 and "3 of 10 measurements" in warnings[0] and "quiet" in warnings[0]
    quiet = _calibrate.summary(_data({"direct": {"forward": {"float32": [1.0, 0.0]}}}, 100, noisy))
    assert not any(line.startswith("WARNING") for line in quiet)


def test_calibrate_from_a_shell(tmp_path):
    env_dir = tmp_path / "cache"
    done = subprocess.run([sys.executable, "-m", "fastconv", "calibrate", "--quick"],
                          env=dict(os.environ, FASTCONV_CACHE_DIR=str(env_dir),
                                   PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")),
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "timing" in done.stderr and "calibrated in" in done.stdout
    assert (env_dir / _calibration.FILE_NAME).exists()


def test_the_cache_files_are_fastconv_s_own():
    assert set(_cachefiles.FILE_NAMES) == {_calibration.FILE_NAME, _autotune.FILE_NAME}


def test_cache_shows_and_clears_only_fastconv_s_files(cache, capsys):
    assert main(["cache"]) == 0
    assert f"cache directory: {cache} (not created yet)" in capsys.readouterr().out
    cache.mkdir()
    for name in ("calibration.json", "calibration.json.lock", "autotune.json",
                 "autotune.json.abc123.tmp", "someone-else.json", "notes.txt"):
        (cache / name).write_text("{}")
    assert [os.path.basename(p) for p, _ in _cachefiles.files()] == [
        "autotune.json", "autotune.json.abc123.tmp", "calibration.json", "calibration.json.lock"]
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert f"cache directory: {cache}\n" in out and "calibration.json " in out
    assert "2 bytes" in out and "someone-else" not in out
    assert main(["cache", "--clear"]) == 0
    assert f"removed 4 files from {cache}" in capsys.readouterr().out
    assert sorted(os.listdir(cache)) == ["notes.txt", "someone-else.json"]


def test_clear_removes_an_emptied_directory(cache):
    fastconv.calibrate(quick=True)
    assert _cachefiles.files()
    assert len(_cachefiles.clear()) >= 1
    assert not cache.exists() and _cachefiles.files() == []


# item 8 ------------------------------------------------------------------------------------------

def test_demos_write_into_fastconv_output_by_default(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert demos.run("segment", ["--quick", "--steps", "1"]) == 0
    folder = tmp_path / demos.DEFAULT_OUT
    assert f"  wrote {folder / 'segment_steps.png'}\n" in capsys.readouterr().out
    assert os.listdir(tmp_path) == [demos.DEFAULT_OUT]
    assert (folder / "segment_steps.png").stat().st_size > 100


def test_out_is_printed_as_an_absolute_path(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert demos.run("segment", ["--quick", "--steps", "1", "--out", "pictures"]) == 0
    assert f"  wrote {tmp_path / 'pictures' / 'segment_steps.png'}\n" in capsys.readouterr().out


def test_gitignore_covers_the_default_folder():
    repository = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # not the installed copy
    lines = open(os.path.join(repository, ".gitignore"), encoding="utf-8").read().splitlines()
    assert f"{demos.DEFAULT_OUT}/" in lines
