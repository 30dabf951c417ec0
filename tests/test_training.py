"""fit, evaluate, predict, the layer report: training does what it says on small problems."""
import numpy as np
import pytest

import fastconv
from fastconv import nn


@pytest.fixture(autouse=True)
def one_thread(restore_settings):
    """These tests train for many small steps; their arithmetic does not depend on the threads."""
    fastconv.set_num_threads(1)


def _bars(rng, n=96):
    """Images with a vertical or a horizontal bar: a two-class problem a conv net learns fast."""
    x = rng.standard_normal((n, 1, 6, 6)).astype(np.float32) * 0.3
    y = rng.integers(0, 2, n)
    for i in range(n):
        j = rng.integers(1, 5)
        if y[i]:
            x[i, 0, :, j] += 2
        else:
            x[i, 0, j, :] += 2
    return x, y


def _net(seed=0):
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, seed=seed), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(36, 2, seed=seed + 1))


def test_fit_reduces_the_loss_and_learns(rng):
    x, y = _bars(rng)
    model = _net()
    before = nn.evaluate(model, x, y)
    history = nn.fit(model, (x, y), epochs=6, batch_size=16, optimizer=nn.Adam(model, lr=0.02),
                     validation=(x[:32], y[:32]), progress=False)
    after = nn.evaluate(model, x, y)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert after["loss"] < 0.5 * before["loss"]
    assert after["accuracy"] >= 0.95
    assert len(history["val_loss"]) == 6 and history.val_accuracy[-1] >= 0.9
    assert all(s > 0 for s in history["examples_per_second"])
    assert model.training                             # fit leaves the model in training mode


def test_fit_is_reproducible_with_a_seed(rng):
    x, y = _bars(rng, 48)
    runs = []
    for _ in range(2):
        model = _net(seed=3)
        nn.fit(model, (x, y), epochs=2, batch_size=8, optimizer=nn.SGD(model, lr=0.1, momentum=0.9),
               seed=7, progress=False)
        runs.append(model.state_dict())
    for name in runs[0]:
        np.testing.assert_array_equal(runs[0][name], runs[1][name])


def test_early_stopping_restores_the_best_weights(rng):
    x, y = _bars(rng, 64)
    xv, yv = _bars(rng, 32)
    model = _net()
    seen = []

    def remember(epoch, history):
        seen.append(model.state_dict())

    # a learning rate far too large: the validation loss soon stops improving
    history = nn.fit(model, (x, y), epochs=30, batch_size=8, optimizer=nn.SGD(model, lr=3.0),
                     validation=(xv, yv), early_stopping=2, progress=False, callback=remember)
    assert len(history["loss"]) < 30
    best = history["best_epoch"]
    assert history["val_loss"][best] == min(history["val_loss"])
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, seen[best][name])


def test_cosine_schedule_and_callback_stop(rng):
    x, y = _bars(rng, 32)
    model = _net()
    opt = nn.SGD(model, lr=0.1)
    lrs = []
    nn.fit(model, (x, y), epochs=4, batch_size=16, optimizer=opt, schedule="cosine", progress=False,
           callback=lambda e, h: lrs.append(opt.lr))
    np.testing.assert_allclose(lrs, [0.1 * 0.5 * (1 + np.cos(np.pi * e / 4)) for e in range(4)])
    history = nn.fit(model, (x, y), epochs=5, progress=False, callback=lambda e, h: e == 1)
    assert len(history["loss"]) == 2


def test_fit_with_mse_and_a_progress_bar(rng, capsys):
    x = rng.standard_normal((40, 1, 8)).astype(np.float32)
    target = np.zeros_like(x)
    target[:, :, 1:] = x[:, :, :-1]                     # a shift: the kernel (1, 0, 0) does it
    model = nn.Conv1d(1, 1, 3, padding=1, seed=0)
    history = nn.fit(model, (x, target), epochs=40, batch_size=10, loss=nn.MSELoss(),
                     optimizer=nn.Adam(model, lr=0.05), progress=True)
    assert history["accuracy"][0] is None
    assert history["loss"][-1] < 0.05 * history["loss"][0]
    err = capsys.readouterr().err
    assert "epoch 40/40" in err and "ex/s" in err and "loss" in err


def test_predict_and_evaluate_batches_agree_with_one_pass(rng):
    x, y = _bars(rng, 50)
    model = _net()
    whole = model.eval()(x)
    np.testing.assert_allclose(nn.predict(model, x, batch_size=7), whole, rtol=1e-6, atol=1e-6)
    scores = nn.evaluate(model, x, y, batch_size=7)
    expected = nn.CrossEntropyLoss()(whole, y)
    assert abs(scores["loss"] - expected) < 1e-5
    assert scores["accuracy"] == float((whole.argmax(1) == y).mean())


def test_bad_fit_arguments(rng):
    x, y = _bars(rng, 8)
    model = _net()
    with pytest.raises(ValueError, match="differ in length"):
        nn.fit(model, (x, y[:-1]), progress=False)
    with pytest.raises(TypeError, match="pair"):
        nn.fit(model, x, progress=False)
    with pytest.raises(TypeError, match="optimizer"):
        nn.fit(model, (x, y), optimizer="adam", progress=False)
    with pytest.raises(ValueError, match="schedule"):
        nn.fit(model, (x, y), schedule="linear", progress=False)


def test_layer_report_times_every_layer_and_leaves_the_model_alone(rng):
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Flatten(), nn.Linear(64, 2))
    x = rng.standard_normal((8, 1, 4, 4)).astype(np.float32)
    state = model.state_dict()
    rows = nn.layer_report(model, x, repeat=2)
    assert [r["name"] for r in rows] == ["Conv2d", "BatchNorm2d", "ReLU", "Flatten", "Linear"]
    assert rows[0]["algorithms"]["forward"] in fastconv.algorithms()
    assert rows[-1]["output"] == (8, 2)
    assert all(r["forward_s"] > 0 and r["backward_s"] > 0 for r in rows)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, state[name])
    assert not any(g.any() for g in model.gradients())
    table = nn.format_layer_report(rows)
    assert "Conv2d" in table and "total" in table
