"""Issue 17, item 7: ``nn.load`` on corrupt and forged files gives one documented exception.

Before: a ``.npy`` file raised TypeError; single-bit flips escaped as NotImplementedError,
RuntimeError or tokenize.TokenError; malformed header entries raised KeyError or TypeError;
deeply nested JSON raised RecursionError; a header declaring ``Linear(100000, 100000)`` beside
tiny arrays made load try a 74.5 GiB allocation; a 4 KB file whose .npy header declares 1e10
floats raised MemoryError. Now each is ``nn.LoadError`` (a ValueError) with a reason, and nothing
is allocated from a size the file states before it is checked against the file's real size.
"""
import io
import json
import os
import struct
import subprocess
import sys
import tracemalloc
import zipfile

import numpy as np
import pytest

import fastconv
from fastconv import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))


def _small():
    return nn.Sequential(nn.Conv2d(1, 2, 3, seed=1), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(),
                         nn.Dropout(0.1), nn.Linear(8, 3, seed=2))


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "small.npz"
    nn.save(_small(), path)
    return path


def _contents(path):
    """The header (a dict) and the arrays, read independently of fastconv's reader."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(bytes(arrays.pop("__fastconv__")).decode())
    return header, arrays


def _forge(path, header, arrays, header_text=None):
    blob = (json.dumps(header) if header_text is None else header_text).encode()
    with open(path, "wb") as f:
        np.savez(f, __fastconv__=np.frombuffer(blob, np.uint8), **arrays)
    return path


def test_load_error_is_a_value_error_and_exported():
    assert issubclass(nn.LoadError, ValueError)
    assert "LoadError" in nn.__all__
    assert "LoadError" in nn.load.__doc__


def test_every_sampled_single_bit_flip_loads_or_raises_load_error(saved, tmp_path):
    """About one bit in twenty, spread over the zip structure, the JSON header and the arrays (a
    fixed hash picks them): each flipped file gives a model or LoadError, nothing else."""
    data = saved.read_bytes()
    bits = [b for b in range(8 * len(data)) if (b * 2654435761) % 97 < 5]
    assert len(bits) > 1500
    flipped = tmp_path / "flipped.npz"
    outcomes = {"model": 0, "LoadError": 0}
    for bit in bits:
        corrupt = bytearray(data)
        corrupt[bit // 8] ^= 1 << (bit % 8)
        flipped.write_bytes(bytes(corrupt))
        try:
            model = nn.load(flipped)
        except nn.LoadError as exc:
            assert str(exc), f"bit {bit}: LoadError without a message"
            outcomes["LoadError"] += 1
        except Exception as exc:              # noqa: BLE001 -- the assertion names what escaped
            pytest.fail(f"flipping bit {bit} (byte {bit // 8}) raised {type(exc).__name__}: {exc}")
        else:
            assert isinstance(model, nn.Module)
            outcomes["model"] += 1
    assert outcomes["LoadError"] > len(bits) // 2, outcomes


def test_a_npy_file_is_refused(tmp_path):
    path = tmp_path / "weights.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(nn.LoadError, match=r"\.npy"):
        nn.load(path)


@pytest.mark.parametrize("content", [b"", b"hello", b"PK\x03\x04" + b"\x00" * 40, b"\x93NUMPY"])
def test_foreign_bytes_are_refused(tmp_path, content):
    path = tmp_path / "x.npz"
    path.write_bytes(content)
    with pytest.raises(nn.LoadError):
        nn.load(path)


def test_a_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        nn.load(tmp_path / "missing.npz")


@pytest.mark.parametrize("change", [
    lambda h: h.pop("arrays"),
    lambda h: h.pop("architecture"),
    lambda h: h.__setitem__("arrays", ["a list"]),
    lambda h: h["arrays"].__setitem__("0.weight", "not a dict"),
    lambda h: h["arrays"]["0.weight"].pop("sha256"),
    lambda h: h["architecture"].pop("type"),
    lambda h: h["architecture"].pop("args"),
    lambda h: h["architecture"].__setitem__("args", [1, 2]),
    lambda h: h["architecture"].__setitem__("varargs", "layers"),
    lambda h: h["architecture"].__setitem__("varargs", [7]),
    lambda h: h["architecture"].__setitem__("type", ["Sequential"]),
    lambda h: h["architecture"]["args"].__setitem__("layers", {"__module__": 3}),
    lambda h: h["architecture"]["args"].__setitem__("layers", [{"__module__": {}}]),
    lambda h: h["architecture"]["args"].__setitem__("layers", [{"__dict__": []}]),
    lambda h: h["architecture"]["args"].__setitem__(
        "layers", [{"__module__": {"type": "Linear", "args": {"self": 1}}}]),
    lambda h: h["architecture"]["args"].__setitem__(
        "layers", [{"__module__": {"type": "Conv2d", "args": {"in_channels": 1e400}}}]),
    lambda h: h["architecture"]["args"]["layers"][0]["__module__"]["args"].__setitem__(
        "kernel_size", {"__dict__": {"a": 1}}),
    lambda h: h["architecture"]["args"]["layers"][0]["__module__"]["args"].__setitem__(
        "dtype", "float16"),
    lambda h: h.__setitem__("version", [1]),
])
def test_malformed_header_entries_are_refused(saved, tmp_path, change):
    header, arrays = _contents(saved)
    change(header)
    path = _forge(tmp_path / "forged.npz", header, arrays)
    with pytest.raises(nn.LoadError):
        nn.load(path)


@pytest.mark.parametrize("depth", [150, 10**5])
def test_deeply_nested_json_is_refused(saved, tmp_path, depth):
    """150 levels: valid JSON, beyond the architecture's nesting limit; 100000: beyond JSON's."""
    header, arrays = _contents(saved)
    text = json.dumps(header).replace('"p": 0.1', '"p": ' + "[" * depth + "0.1" + "]" * depth)
    assert text != json.dumps(header)
    path = _forge(tmp_path / "nested.npz", header, arrays, header_text=text)
    with pytest.raises(nn.LoadError, match="nested"):
        nn.load(path)


def _with_layer(saved, tmp_path, layer):
    """The small model's file with its last layer's architecture replaced by `layer` (type, args);
    the arrays and their recorded shapes stay the small ones."""
    header, arrays = _contents(saved)
    header["architecture"]["args"]["layers"][-1]["__module__"] = {
        "type": layer[0], "args": layer[1], "varargs": []}
    return _forge(tmp_path / "forged.npz", header, arrays)


@pytest.mark.parametrize("layer", [
    ("Linear", {"in_features": 3000, "out_features": 3000, "seed": 0}),
    ("Linear", {"in_features": 3000, "out_features": 3000, "init": "he", "seed": None}),
    ("BatchNorm1d", {"num_features": 5_000_000}),
    ("Conv2d", {"in_channels": 1, "out_channels": 1, "kernel_size": 1, "bias": "location",
                "input_size": [3000, 3000], "init": "glorot", "seed": 0}),
])
def test_a_layer_larger_than_the_stored_arrays_is_refused_before_it_is_allocated(saved, tmp_path,
                                                                                 layer):
    """Each of these layers would create 9M to 20M values (72 MB or more in float64) where the
    file holds 51: load must refuse while its traced memory stays small."""
    path = _with_layer(saved, tmp_path, layer)
    tracemalloc.start()
    try:
        with pytest.raises(nn.LoadError, match="more than"):
            nn.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"load allocated {peak / 2**20:.0f} MiB for a file of 5 KB"


_HUGE_LAYER = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, resource.RLIM_INFINITY))
from fastconv import nn
try:
    nn.load(sys.argv[1])
except nn.LoadError as exc:
    print("LoadError", exc)
"""


def test_the_issue_s_linear_100000_by_100000_is_refused(saved, tmp_path):
    """The issue's case, in a child held to 4 GiB of address space: a regression is a
    MemoryError there, not an exhausted machine."""
    path = _with_layer(saved, tmp_path, ("Linear", {"in_features": 100000,
                                                    "out_features": 100000}))
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", _HUGE_LAYER, str(path)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "LoadError" in done.stdout and "more than" in done.stdout, done.stdout


def _zip(members):
    """An archive of stored members {name: bytes}, as np.savez writes them."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _npy(array, shape=None):
    """An array's .npy bytes, optionally with a header that declares another shape."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    data = buffer.getvalue()
    if shape is not None:
        old = repr(array.shape).encode()
        new = repr(shape).encode()
        data = data.replace(old, new.ljust(len(old)) if len(new) <= len(old) else new, 1)
        start = data.index(b"{")
        length = data.index(b"\n", start) + 1 - start
        data = data[:8] + struct.pack("<H", length) + data[10:]
    return data


def test_an_array_declaring_1e10_floats_in_a_4_kb_file_is_refused(saved, tmp_path):
    header, arrays = _contents(saved)
    blob = np.frombuffer(json.dumps(header).encode(), np.uint8)
    members = {"__fastconv__.npy": _npy(blob)}
    members.update({f"{k}.npy": _npy(v) for k, v in arrays.items()})
    members["a/0.weight.npy"] = _npy(arrays["a/0.weight"], shape=(10**10,))
    path = tmp_path / "declares.npz"
    path.write_bytes(_zip(members))
    assert path.stat().st_size < 8192
    tracemalloc.start()
    try:
        with pytest.raises(nn.LoadError, match="declares 10000000000"):
            nn.load(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20


def test_a_member_claiming_more_bytes_than_the_file_has_is_refused(saved, tmp_path):
    """The central directory's sizes of the first member raised to 2**31 - 1."""
    data = bytearray(saved.read_bytes())
    entry = data.index(b"PK\x01\x02")
    data[entry + 20:entry + 28] = struct.pack("<II", 2**31 - 1, 2**31 - 1)
    path = tmp_path / "claims.npz"
    path.write_bytes(bytes(data))
    with pytest.raises(nn.LoadError):
        nn.load(path)


def test_a_truncated_npy_header_is_refused(saved, tmp_path):
    """An unbalanced .npy header (NumPy's parser raised tokenize.TokenError on it)."""
    header, arrays = _contents(saved)
    members = {"__fastconv__.npy": _npy(np.frombuffer(json.dumps(header).encode(), np.uint8))}
    members.update({f"{k}.npy": _npy(v) for k, v in arrays.items()})
    bad = bytearray(members["a/0.weight.npy"])
    end = bad.index(b"}")
    bad[end] = ord(" ")
    bad[bad.index(b"(")] = ord("(")
    bad[bad.index(b")")] = ord(" ")
    members["a/0.weight.npy"] = bytes(bad)
    path = tmp_path / "token.npz"
    path.write_bytes(_zip(members))
    with pytest.raises(nn.LoadError):
        nn.load(path)


def test_compressed_and_pickled_members_are_refused(saved, tmp_path):
    header, arrays = _contents(saved)
    blob = np.frombuffer(json.dumps(header).encode(), np.uint8)
    compressed = tmp_path / "compressed.npz"
    np.savez_compressed(compressed, __fastconv__=blob, **arrays)
    with pytest.raises(nn.LoadError, match="compressed"):
        nn.load(compressed)
    pickled = tmp_path / "pickled.npz"
    objects = dict(arrays, **{"a/0.weight": np.array([object()] * 18, dtype=object)})
    with open(pickled, "wb") as f:
        np.savez(f, __fastconv__=blob, **objects)
    with pytest.raises(nn.LoadError, match="dtype"):
        nn.load(pickled)


def test_a_mismatching_model_is_a_load_error(saved):
    with pytest.raises(nn.LoadError, match="does not match"):
        nn.load(saved, model=nn.Sequential(nn.Linear(2, 2)))


def test_an_intact_file_still_round_trips(saved):
    model = nn.load(saved)
    expected = _small()
    for (name, a), (name2, b) in zip(model.state_dict().items(), expected.state_dict().items()):
        assert name == name2
        np.testing.assert_array_equal(a, b)
