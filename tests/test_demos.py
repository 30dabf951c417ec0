"""Each demo runs end to end in its --quick mode and prints what it promises."""
import numpy as np
import pytest

import fastconv
from fastconv import demos


@pytest.fixture(autouse=True)
def one_thread(restore_settings):
    """Quick runs of many small steps; the demos' arithmetic does not depend on the threads."""
    fastconv.set_num_threads(1)


def _run(name, tmp_path, capsys, *extra):
    assert demos.run(name, ["--quick", "--out", str(tmp_path), *extra]) == 0
    return capsys.readouterr().out


def test_digits(tmp_path, capsys):
    pytest.importorskip("sklearn")
    out = _run("digits", tmp_path, capsys)
    # the layer table names the algorithms "auto" picked (since blocked's minibatch lanes,
    # blocked for every convolution of this net)
    picks = [line.split()[-3] for line in out.splitlines() if line.startswith("Conv2d")]
    assert "test accuracy" in out and picks
    assert all(set(p.split("/")) <= set(fastconv.algorithms()) for p in picks), picks
    assert "Conv2d" in out and "fwd ms" in out and "epoch   2" in out
    assert (tmp_path / "digits_filters.png").stat().st_size > 100


def test_segment_reports_every_step(tmp_path, capsys):
    out = _run("segment", tmp_path, capsys, "--steps", "3")
    assert "step 1:" in out and "step 3:" in out
    assert (tmp_path / "segment_steps.png").exists()


def test_variable_size_reports_every_size(tmp_path, capsys):
    out = _run("variable-size", tmp_path, capsys, "--sizes", "12,16,24")
    for size in ("12x12", "16x16", "24x24"):
        assert size in out


def test_autoencoder(tmp_path, capsys):
    pytest.importorskip("sklearn")
    out = _run("autoencoder", tmp_path, capsys)
    assert "mean image (baseline)" in out and "autoencoder" in out


def test_audio_one_and_three_dimensions(tmp_path, capsys):
    out = _run("audio", tmp_path, capsys, "--no-png")
    assert "1-D test accuracy" in out and "3-D test accuracy" in out


def test_segment_network_gradients():
    """The recurrent network's hand-written backward through its shared U, V, W."""
    from fastconv import nn
    from fastconv.demos.segment import RecurrentSegmenter
    model = RecurrentSegmenter(hidden=3, steps=3, kernel_size=3, seed=0).to(np.float64)
    x = np.random.default_rng(0).standard_normal((2, 1, 5, 4))
    assert nn.gradcheck(model, x, n_coords=6) > 0


def test_data_generators_are_seeded():
    from fastconv.demos import audio, segment, variable_size
    for make in (lambda s: segment.make_images(4, 12, s), lambda s: variable_size.make_images(4, 10, s),
                 lambda s: audio.make_signals(4, s), lambda s: audio.make_volumes(4, s)):
        a, b, c = make(1), make(1), make(2)
        np.testing.assert_array_equal(a[0], b[0])
        assert not np.array_equal(a[0], c[0])


def test_a_custom_module_saves_and_loads(tmp_path):
    """The demo's own Module subclass is registered like the library's layers."""
    from fastconv import nn
    from fastconv.demos.segment import RecurrentSegmenter
    model = RecurrentSegmenter(hidden=4, steps=2, seed=3)
    nn.save(model, tmp_path / "segmenter.npz")
    loaded = nn.load(tmp_path / "segmenter.npz")
    assert loaded.steps == 2
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(loaded.eval()(x), model.eval()(x))


def test_through_the_command_line(tmp_path, capsys):
    from fastconv.__main__ import main
    assert main(["demo", "variable-size", "--quick", "--no-png", "--sizes", "16,20"]) == 0
    assert "20x20" in capsys.readouterr().out
