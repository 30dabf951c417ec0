"""save/load: one file, a bitwise round trip, and clear refusals of bad files."""
import numpy as np
import pytest

from fastconv import nn


def _model():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=((1, 0), (0, 1)), seed=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Parallel([nn.Conv2d(4, 2, 1, seed=2), nn.MaxPool2d(3, stride=1, padding=1)]),
        nn.Residual(nn.Conv2d(6, 6, 3, padding="same", padding_mode="replicate", seed=3)),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Dropout(0.1), nn.Linear(24, 3, seed=4),
    )


def _trained(rng):
    model = _model()
    x = rng.standard_normal((6, 1, 6, 6)).astype(np.float32)
    y = rng.integers(0, 3, 6)
    opt = nn.Adam(model, lr=0.01)
    for _ in range(2):
        nn.train_step(model, x, y, nn.CrossEntropyLoss(), opt)
    return model, x


def test_round_trip_is_bitwise(tmp_path, rng):
    model, x = _trained(rng)
    path = tmp_path / "model.fcnn"
    nn.save(model, path)
    assert path.exists() and len(list(tmp_path.iterdir())) == 1        # one file, name as given
    loaded = nn.load(path)
    assert repr(loaded) == repr(model)
    for (name, a), (name2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert name == name2 and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(nn.predict(loaded, x), nn.predict(model, x))


@pytest.mark.parametrize("ndim", [1, 3])
def test_round_trip_other_layers_and_float64(tmp_path, rng, ndim):
    conv, pool, convt, local, tiled = {
        1: (nn.Conv1d, nn.AvgPool1d, nn.ConvTranspose1d, nn.LocallyConnected1d, nn.TiledConv1d),
        3: (nn.Conv3d, nn.AvgPool3d, nn.ConvTranspose3d, nn.LocallyConnected3d, nn.TiledConv3d)}[ndim]
    size = (8, 6, 4)[:ndim]
    model = nn.Sequential(conv(2, 3, 3, padding=1, bias="location", input_size=size),
                          nn.LeakyReLU(0.2), pool(2), convt(3, 2, 2, stride=2),
                          tiled(2, 2, 1, tiles=2), local(2, 1, 1, input_size=size),
                          nn.Maxout(1)).to(np.float64)
    path = tmp_path / "m.npz"
    nn.save(model, path)
    loaded = nn.load(path)
    assert all(p.dtype == np.float64 for p in loaded.parameters())
    x = rng.standard_normal((2, 2) + size)
    np.testing.assert_array_equal(loaded(x), model(x))


def test_load_into_an_existing_model_and_mismatch(tmp_path, rng):
    model, _ = _trained(rng)
    path = tmp_path / "m.npz"
    nn.save(model, path)
    fresh = _model()
    nn.load(path, model=fresh)
    np.testing.assert_array_equal(fresh[0].weight, model[0].weight)
    other = nn.Sequential(nn.Conv2d(1, 5, 3))
    with pytest.raises(ValueError, match="does not match"):
        nn.load(path, model=other)
    with pytest.raises(ValueError, match="missing"):
        other.load_state_dict(model.state_dict())


def test_truncated_corrupt_and_foreign_files_are_refused(tmp_path, rng):
    model, _ = _trained(rng)
    path = tmp_path / "m.npz"
    nn.save(model, path)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable fastconv model"):
        nn.load(truncated)
    corrupt = tmp_path / "corrupt.npz"
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF                     # inside the stored weights
    corrupt.write_bytes(bytes(flipped))
    with pytest.raises(ValueError):
        nn.load(corrupt)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.zeros(3))
    with pytest.raises(ValueError, match="fastconv"):
        nn.load(foreign)
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(ValueError):
        nn.load(text)


def test_tampered_weights_fail_the_checksum(tmp_path, rng):
    """A file whose arrays were replaced (valid zip, valid header) is refused."""
    import json
    import zipfile
    model, _ = _trained(rng)
    path = tmp_path / "m.npz"
    nn.save(model, path)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    original = arrays["a/0.weight"]
    arrays["a/0.weight"] = original + 1
    tampered = tmp_path / "tampered.npz"
    with open(tampered, "wb") as f:
        np.savez(f, **arrays)
    assert zipfile.is_zipfile(tampered)
    with pytest.raises(ValueError, match="checksum"):
        nn.load(tampered)
    header = json.loads(bytes(arrays["__fastconv__"]).decode())
    header["architecture"]["type"] = "NoSuchLayer"
    arrays["a/0.weight"] = original
    arrays["__fastconv__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    with open(tampered, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(ValueError, match="unknown layer type"):
        nn.load(tampered)


def test_save_refuses_what_it_cannot_describe(tmp_path):
    with pytest.raises(TypeError, match="Module"):
        nn.save(object(), tmp_path / "x.npz")
