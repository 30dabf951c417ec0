"""One file per model: an uncompressed ``.npz`` with every parameter and buffer plus a JSON
header (the architecture from the layers' recorded constructor arguments, and each array's shape,
dtype and SHA-256). ``load`` rebuilds the model from the header and refuses, with a ValueError,
a file that is not such a file, is truncated or corrupt, or does not match its header."""
import hashlib
import json
import os
import zipfile

import numpy as np

from .module import Module, registered

FORMAT = "fastconv.nn"
VERSION = 1
HEADER = "__fastconv__"


def _encode(value, where):
    if isinstance(value, Module):
        return {"__module__": _architecture(value)}
    if isinstance(value, np.random.Generator):
        return None                      # the weights are in the file; the seed no longer matters
    if isinstance(value, (list, tuple)):
        return [_encode(v, where) for v in value]
    if isinstance(value, dict):
        return {"__dict__": {str(k): _encode(v, where) for k, v in value.items()}}
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return np.dtype(value).name
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot save {where}: its value {value!r} ({type(value).__name__}) has no "
                    "JSON form")


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if "__module__" in value:
            return build(value["__module__"])
        if "__dict__" in value:
            return {k: _decode(v) for k, v in value["__dict__"].items()}
        raise ValueError(f"malformed architecture entry {value!r}")
    return value


def _architecture(module):
    cfg = module.config()
    args = {k: _encode(v, f"{cfg['type']}({k}=...)") for k, v in cfg["args"].items()}
    return {"type": cfg["type"], "args": args, "varargs": cfg["varargs"]}


def architecture(module):
    """The JSON-able description ``save`` writes and ``build`` reads."""
    return _architecture(module)


def build(arch):
    """A freshly initialised model from an architecture description."""
    try:
        cls = registered(arch["type"])
        args = {k: _decode(v) for k, v in arch["args"].items()}
        varargs = arch.get("varargs", [])
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed architecture: {exc!r}") from None
    if args.get("seed", 0) is None:
        args["seed"] = 0                  # do not draw from the global generator when loading
    positional = []
    for name in varargs:
        positional.extend(args.pop(name, []))
    try:
        return cls(*positional, **args)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot rebuild {arch['type']} from the saved arguments {args}: {exc}") from None


def _digest(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def save(model, path):
    """Write the model (architecture, weights, buffers) to one file at ``path`` exactly."""
    if not isinstance(model, Module):
        raise TypeError(f"model must be a fastconv.nn.Module, got {type(model).__name__}")
    state = model.state_dict()
    header = {
        "format": FORMAT, "version": VERSION, "architecture": _architecture(model),
        "arrays": {name: {"shape": list(a.shape), "dtype": a.dtype.str, "sha256": _digest(a)}
                   for name, a in state.items()},
    }
    blob = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    arrays = {f"a/{name}": a for name, a in state.items()}
    with open(os.fspath(path), "wb") as f:
        np.savez(f, **{HEADER: blob}, **arrays)


def _read(path):
    try:
        with np.load(os.fspath(path), allow_pickle=False) as data:
            files = set(data.files)
            if HEADER not in files:
                raise ValueError("no fastconv header")
            header = json.loads(bytes(data[HEADER]).decode("utf-8"))
            arrays = {name[2:]: data[name] for name in files if name.startswith("a/")}
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a readable fastconv model file (truncated, corrupt or "
                         f"another format): {exc}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{path} is not a fastconv model file (header format "
                         f"{header.get('format') if isinstance(header, dict) else header!r})")
    if header.get("version") != VERSION:
        raise ValueError(f"{path} has format version {header.get('version')}, this fastconv reads "
                         f"version {VERSION}")
    listed = header.get("arrays", {})
    if set(listed) != set(arrays):
        raise ValueError(f"{path}: the arrays in the file {sorted(arrays)} do not match its header "
                         f"{sorted(listed)}")
    for name, meta in listed.items():
        a = arrays[name]
        if list(a.shape) != meta["shape"] or a.dtype.str != meta["dtype"] or _digest(a) != meta["sha256"]:
            raise ValueError(f"{path}: array {name!r} does not match its recorded shape, dtype or "
                             "checksum (the file is corrupt)")
    return header, arrays


def load(path, model=None):
    """The model saved at ``path``; or load its weights into ``model``, which must match."""
    header, arrays = _read(path)
    if model is None:
        model = build(header["architecture"])
        dtypes = {a.dtype for a in arrays.values() if a.dtype.kind == "f"}
        own = {p.dtype for p in model.parameters()}
        if len(dtypes) == 1 and own and own != dtypes:
            model.to(dtypes.pop())
    own = dict(model.named_parameters())
    own.update(model.named_buffers())
    if set(own) != set(arrays):
        raise ValueError(f"{path} does not match the model: missing {sorted(set(own) - set(arrays))}, "
                         f"unexpected {sorted(set(arrays) - set(own))}")
    for name, a in arrays.items():
        if own[name].shape != a.shape or own[name].dtype != a.dtype:
            raise ValueError(f"{path}: {name!r} is {a.dtype}{a.shape} in the file but "
                             f"{own[name].dtype}{own[name].shape} in the model")
    model.load_state_dict(arrays)
    return model
