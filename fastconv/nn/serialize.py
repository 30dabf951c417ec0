"""One file per model: an uncompressed ``.npz`` with every parameter and buffer plus a JSON
header (the architecture from the layers' recorded constructor arguments, and each array's shape,
dtype and SHA-256). ``load`` rebuilds the model from the header and refuses, with a `LoadError`,
a file that is not such a file, is truncated or corrupt, or does not match its header.

A file is untrusted input: ``load`` reads it with ``zipfile`` and ``numpy.lib.format`` directly
(never pickle), checks every size the file states against the file's real size before it reads or
allocates anything of that size, and rebuilds the layers under an allowance of as many values as
the file really holds (`_init.allowance`), so a forged header cannot make it allocate more.
"""
import hashlib
import io
import json
import math
import os
import reprlib
import zipfile

import numpy as np

from . import _init
from .module import Module, registered

FORMAT = "fastconv.nn"
VERSION = 1
HEADER = "__fastconv__"
MAX_DEPTH = 100             # nesting of the architecture (modules in lists in arguments ...)
MAX_NPY_HEADER = 10000      # bytes of one array's .npy header (NumPy's own default limit)
DTYPES = ("float32", "float64", "int64", "int32", "uint8", "bool")


class LoadError(ValueError):
    """A file that ``fastconv.nn.load`` cannot read as a model saved by ``save``: not such a
    file, truncated, corrupt, forged, or not matching the model it is loaded into."""


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


def _decode(value, depth):
    if depth > MAX_DEPTH:
        raise ValueError(f"the architecture is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, list):
        return [_decode(v, depth + 1) for v in value]
    if isinstance(value, dict):
        if set(value) == {"__module__"}:
            return _build(value["__module__"], depth + 1)
        if set(value) == {"__dict__"} and isinstance(value["__dict__"], dict):
            return {k: _decode(v, depth + 1) for k, v in value["__dict__"].items()}
        raise ValueError(f"malformed architecture entry {_short(value)}")
    return value


_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 120


def _short(value):
    """A bounded repr of a value read from a file (however large or deeply nested)."""
    return _repr.repr(value)


def _architecture(module):
    cfg = module.config()
    args = {k: _encode(v, f"{cfg['type']}({k}=...)") for k, v in cfg["args"].items()}
    return {"type": cfg["type"], "args": args, "varargs": cfg["varargs"]}


def architecture(module):
    """The JSON-able description ``save`` writes and ``build`` reads."""
    return _architecture(module)


def build(arch):
    """A freshly initialised model from an architecture description (ValueError if malformed)."""
    return _build(arch, 0)


def _build(arch, depth):
    if not (isinstance(arch, dict) and isinstance(arch.get("type"), str)
            and isinstance(arch.get("args"), dict)
            and isinstance(arch.get("varargs", []), list)
            and all(isinstance(n, str) for n in arch.get("varargs", []))):
        raise ValueError(f"malformed architecture: expected {{'type': str, 'args': dict, "
                         f"'varargs': [str]}}, got {_short(arch)}")
    cls = registered(arch["type"])
    args = {k: _decode(v, depth + 1) for k, v in arch["args"].items()}
    if args.get("seed", 0) is None:
        args["seed"] = 0                  # do not draw from the global generator when loading
    positional = []
    for name in arch.get("varargs", []):
        values = args.pop(name, [])
        if not isinstance(values, list):
            raise ValueError(f"malformed architecture: {arch['type']}'s *{name} must be a list, "
                             f"got {_short(values)}")
        positional.extend(values)
    try:
        return cls(*positional, **args)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"cannot rebuild {arch['type']} from the saved arguments "
                         f"{_short(args)}: {exc}") from None


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


# --- reading an untrusted file -------------------------------------------------------------------

def _members(f, size):
    """{member name without .npy: its bytes}, each member checked against the file's real size
    (stored, not encrypted, inside the file, all of them together no larger than it) before it is
    read."""
    with zipfile.ZipFile(f) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            raise LoadError("the archive lists a member twice")
        total = 0
        for info in infos:
            if not info.filename.endswith(".npy"):
                raise LoadError(f"unexpected member {info.filename!r} (save writes .npy arrays)")
            if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
                raise LoadError(f"member {info.filename!r} is compressed or encrypted (save "
                                "stores its arrays uncompressed)")
            end = info.header_offset + info.compress_size
            total += info.file_size
            if info.file_size != info.compress_size or end > size or total > size:
                raise LoadError(f"member {info.filename!r} declares {info.file_size} bytes "
                                f"({info.compress_size} stored at byte {info.header_offset}), "
                                f"which the file's {size} bytes cannot hold")
        return {info.filename[:-4]: zf.read(info) for info in infos}


def _array(name, data):
    """The array stored as .npy bytes, its declared shape and dtype checked against the bytes
    actually there before anything is allocated (a view of `data`, never a pickle)."""
    fp = io.BytesIO(data)
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp, MAX_NPY_HEADER)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp, MAX_NPY_HEADER)
    else:
        raise LoadError(f"array {name!r} has .npy format version {version}, save writes 1.0")
    if dtype.name not in DTYPES or dtype.hasobject or dtype.fields or dtype.subdtype:
        raise LoadError(f"array {name!r} has dtype {dtype}, expected one of {DTYPES}")
    if any(not isinstance(n, int) or n < 0 for n in shape):
        raise LoadError(f"array {name!r} declares the shape {shape}")
    count = math.prod(shape)
    if count * dtype.itemsize != len(data) - fp.tell():
        raise LoadError(f"array {name!r} declares {count} {dtype} values, but the file holds "
                        f"{len(data) - fp.tell()} bytes for it")
    flat = np.frombuffer(data, dtype, count, fp.tell())
    return flat.reshape(shape, order="F" if fortran else "C")


def _parse(path):
    """The header (a dict) and the arrays of the file at `path`; LoadError if it is not a
    well-formed fastconv model file. OSError (missing, a directory, ...) passes through."""
    with open(os.fspath(path), "rb") as f:
        size = os.fstat(f.fileno()).st_size
        magic = f.read(6)
        f.seek(0)
        if magic == b"\x93NUMPY":
            raise LoadError("it is a single .npy array; fastconv.nn.save writes an .npz archive "
                            "of the architecture and every array")
        try:
            members = _members(f, size)
            if HEADER not in members:
                raise LoadError("no fastconv header (not a file written by fastconv.nn.save)")
            arrays = {name: _array(name, data) for name, data in members.items()}
            blob = arrays.pop(HEADER)
            if blob.dtype != np.uint8 or blob.ndim != 1:
                raise LoadError(f"the header is {blob.dtype}{blob.shape}, expected bytes")
            header = json.loads(blob.tobytes().decode("utf-8"))
        except (LoadError, MemoryError):
            raise
        except RecursionError:
            raise LoadError("its header is nested too deeply") from None
        except Exception as exc:
            # zipfile, numpy.lib.format and json name a corrupt byte in a dozen ways (BadZipFile,
            # NotImplementedError, tokenize.TokenError, UnicodeDecodeError, ...): one answer.
            raise LoadError(f"corrupt ({type(exc).__name__}: {exc})") from exc
    if not all(name.startswith("a/") for name in arrays):
        raise LoadError(f"unexpected members {sorted(n for n in arrays if not n.startswith('a/'))}")
    return header, {name[2:]: a for name, a in arrays.items()}


def _check_header(header, arrays):
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise LoadError(f"not a fastconv model file (header format "
                        f"{_short(header.get('format') if isinstance(header, dict) else header)})")
    if header.get("version") != VERSION:
        raise LoadError(f"format version {_short(header.get('version'))}, this fastconv reads "
                        f"version {VERSION}")
    listed = header.get("arrays")
    if not isinstance(listed, dict) or not isinstance(header.get("architecture"), dict):
        raise LoadError("the header lacks its 'arrays' or 'architecture' entry")
    if set(listed) != set(arrays):
        raise LoadError(f"the arrays in the file {_short(sorted(arrays))} do not match its header "
                        f"{_short(sorted(listed))}")
    for name, meta in listed.items():
        a = arrays[name]
        if not (isinstance(meta, dict) and meta.get("shape") == list(a.shape)
                and meta.get("dtype") == a.dtype.str and meta.get("sha256") == _digest(a)):
            raise LoadError(f"array {name!r} does not match its recorded shape, dtype or checksum "
                            "(the file is corrupt)")


def load(path, model=None):
    """The model saved at ``path``; or load its weights into ``model``, which must match.

    Raises ``fastconv.nn.LoadError`` (a ValueError) for every file that is not an intact file
    written by ``save`` -- another format (a ``.npy``, a foreign ``.npz``, text), truncated,
    corrupt, forged (sizes beyond the file's, an architecture that does not match the arrays),
    or not matching ``model`` -- with a message saying why; OSError when it cannot be opened.
    It never unpickles, and never allocates from a size the file states before checking it
    against the file's real size.
    """
    try:
        header, arrays = _parse(path)
        _check_header(header, arrays)
    except LoadError as exc:
        raise LoadError(f"{path} is not a readable fastconv model file: {exc}") from exc.__cause__
    if model is None:
        try:
            with _init.allowance(sum(a.size for a in arrays.values())):
                model = _build(header["architecture"], 0)
        except MemoryError:
            raise
        except Exception as exc:
            # A layer given forged arguments may fail in any way: all of them are one answer.
            reason = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            raise LoadError(f"{path}: {reason}") from exc
        dtypes = {a.dtype for a in arrays.values() if a.dtype.kind == "f"}
        own = {p.dtype for p in model.parameters()}
        if len(dtypes) == 1 and own and own != dtypes:
            model.to(dtypes.pop())
    own = dict(model.named_parameters())
    own.update(model.named_buffers())
    if set(own) != set(arrays):
        raise LoadError(f"{path} does not match the model: missing "
                        f"{_short(sorted(set(own) - set(arrays)))}, unexpected "
                        f"{_short(sorted(set(arrays) - set(own)))}")
    for name, a in arrays.items():
        if own[name].shape != a.shape or own[name].dtype != a.dtype:
            raise LoadError(f"{path}: {name!r} is {a.dtype}{a.shape} in the file but "
                            f"{own[name].dtype}{own[name].shape} in the model")
    model.load_state_dict(arrays)
    return model
