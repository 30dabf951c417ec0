"""The chooser sweep (bench/sweep.py, fastconv/_sweep.py): its problems are valid and a run
reports a pick, the fastest algorithm and the summary for every pair."""
import os

import numpy as np
import pytest

import fastconv
from fastconv import _sweep, _sweep_problems


def test_every_problem_is_a_valid_call():
    problems = _sweep_problems.all_problems()
    assert len(problems) >= 100
    assert {p.network for p in problems} >= {"resnet18", "mobilenetv2", "c3d", "tcn", "wav2vec",
                                             "unet", "lenet", "image", "random"}
    assert {p.ndim for p in problems} == {1, 2, 3}
    for p in problems:
        g = {k: v for k, v in p.geometry.items() if k != "padding_mode"}
        assert fastconv.choose(p.x_shape, p.w_shape, **g) in fastconv.algorithms(), p


def test_a_small_sweep_reports_every_pair():
    lines = []
    assert _sweep.main(["--networks", "tcn", "--quick", "--dtypes", "float32", "--rounds", "1",
                        "--budget", "0.001"], out=lines.append) == 0
    rows = [line for line in lines if line.startswith("| tcn")]
    assert len(rows) == 3, lines
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[4] in fastconv.algorithms() and cells[6] in fastconv.algorithms()
        assert float(cells[5]) >= 1.0 and float(cells[7]) >= 1.0
    assert any(line.startswith("model: within 1.15x on") for line in lines)
    assert any(line.strip().startswith("net: within 1.15x on") for line in lines)


def test_the_sweep_leaves_the_choice_strict_as_it_found_it():
    problem = _sweep_problems.network_problems(quick=True)[0]
    before = fastconv.get_strict_choice()
    row = _sweep.measure(problem, "forward", "float32", rounds=1, budget=0.001)
    assert fastconv.get_strict_choice() == before
    assert row["model_ratio"] >= 1.0 and np.isfinite(row["net_ratio"])
    assert set(row["predicted"]) == set(row["times"])


def test_the_autotune_column_tunes_in_a_private_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTCONV_CACHE_DIR", str(tmp_path))
    lines = []
    assert _sweep.main(["--networks", "tcn", "--quick", "--dtypes", "float32", "--ops",
                        "forward", "--rounds", "1", "--budget", "0.001", "--autotune"],
                       out=lines.append) == 0
    rows = [line for line in lines if line.startswith("| tcn")]
    assert len(rows) == 1, lines
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[8] in fastconv.algorithms() and float(cells[9]) >= 1.0
    assert any(line.strip().startswith("tuned: within 1.15x on") for line in lines)
    assert not fastconv.get_autotune()
    assert list(tmp_path.iterdir()) == []          # nothing written to the user's cache
    assert os.environ["FASTCONV_CACHE_DIR"] == str(tmp_path)


def test_an_unknown_network_is_named_in_the_error(capsys):
    with pytest.raises(SystemExit):
        _sweep.main(["--networks", "tcn,resnet", "--quick"], out=lambda line: None)
    err = capsys.readouterr().err
    assert "'resnet'" in err and "resnet18" in err


def test_the_summary_of_no_rows_says_so():
    assert _sweep.summary([], "model_ratio") == "model: no problems"


def test_the_sweep_checks_a_forced_algorithms_support_once_a_problem(monkeypatch):
    """Inside supports_checked_once (the sweep's timing), a forced algorithm's supports() runs on
    its first call of a problem only, as "auto" checks its pick; outside, every call; a problem
    it refuses is refused every time; kernel-value checks (supports_weights) run every call."""
    from fastconv import _registry
    direct = _registry.registered()["direct"]
    original = direct.supports
    checks, weight_checks = [], []
    refuse = {"now": False}

    def supports(spec, op):
        checks.append(op)
        return (False, "refused") if refuse["now"] else original(spec, op)

    def supports_weights(spec, op, w):
        weight_checks.append(op)
        return True, ""
    monkeypatch.setattr(direct, "supports", supports)
    monkeypatch.setattr(direct, "supports_weights", supports_weights, raising=False)
    x, w = np.ones((1, 2, 9, 9)), np.ones((3, 2, 3, 3))
    y = fastconv.conv(x, w, algorithm="reference")
    for _ in range(3):
        np.testing.assert_allclose(fastconv.conv(x, w, algorithm="direct"), y)
    assert len(checks) == 3 and len(weight_checks) == 3
    checks.clear(), weight_checks.clear()
    with _registry.supports_checked_once():
        for _ in range(3):
            np.testing.assert_allclose(fastconv.conv(x, w, algorithm="direct"), y)
        fastconv.conv(np.ones((1, 2, 8, 8)), w, algorithm="direct")      # another problem
        assert len(checks) == 2 and len(weight_checks) == 4
        refuse["now"] = True
        for _ in range(2):
            with pytest.raises(fastconv.NotSupportedError, match="refused"):
                fastconv.conv(x[:, :, :7], w, algorithm="direct")
        assert len(checks) == 4
    checks.clear()
    with pytest.raises(fastconv.NotSupportedError):     # outside again: checked every call
        fastconv.conv(x, w, algorithm="direct")
    assert len(checks) == 1
