"""Encoder weights: the tensor names and shapes, random weights, and weight files.

:func:`load_weights` returns every weight tensor of an encoder spec as a float numpy
array, by name (:func:`weight_shapes` gives the names in order and their shapes; the
table is in ``attnflow.ir.spec``'s docstring). Linear weights are ``[out, in]`` as in
PyTorch's ``nn.Linear``::

    layers.{i}.attn.{q,k,v,out}.weight  [d_model, d_model]   .bias [d_model]
    layers.{i}.ln1.gamma, .beta          [d_model]            (beta: LayerNorm only)
    layers.{i}.ffn.up.weight             [d_ff, d_model]      .bias [d_ff]
    layers.{i}.ffn.down.weight           [d_model, d_ff]      .bias [d_model]
    layers.{i}.ln2.gamma, .beta          [d_model]
    final_norm.gamma, .beta              [d_model]            (only with final_norm: true)

``model.weights.source``:

* ``random``: tensor j of layer i (in the order above) comes from
  ``numpy.random.default_rng([seed, i, j])`` (the final norm from ``[seed, layers, j]``),
  so a layer's weights do not depend on how many layers there are. Linear weights and
  biases: N(0, std**2) with std = ``weights.std``, or 1/sqrt(in_features) of that layer
  when it is null; gamma: 1 + N(0, 0.1**2); beta: N(0, 0.1**2).
* ``file``: a numpy ``.npz`` archive (``numpy.savez``; float16, float32 or float64 arrays)
  or a ``.safetensors`` file (F16, BF16, F32 or F64 tensors). Extra tensors are ignored.
  The safetensors format is read here, not through the ``safetensors`` package (which is
  not a dependency, and whose numpy API cannot return BF16): an 8-byte little-endian
  header length n, n bytes of JSON mapping each tensor name to ``{"dtype", "shape",
  "data_offsets": [begin, end]}`` (byte offsets into the data that follows the header;
  an optional ``"__metadata__"`` entry is skipped), then the little-endian, row-major
  tensor data. Only the tensors the spec needs are read.

``model.weights.naming`` says which names the file uses: ``attnflow`` (the names above),
or a Hugging Face checkpoint's (``model.safetensors`` of the family; any prefix before the
names, e.g. ``bert.`` or ``transformer.``, is found from layer 0's first tensor; BERT's
TensorFlow-era ``LayerNorm.gamma`` / ``.beta`` are read for ``.weight`` / ``.bias``):

========== ============================================================================
naming     layer i's tensors (``.weight`` / ``.bias``; norms: ``.weight`` = gamma, ``.bias`` = beta)
========== ============================================================================
bert       ``encoder.layer.{i}.``: ``attention.self.{query,key,value}``,
           ``attention.output.dense``, ``attention.output.LayerNorm`` (ln1),
           ``intermediate.dense`` (up), ``output.dense`` (down), ``output.LayerNorm`` (ln2)
distilbert ``transformer.layer.{i}.``: ``attention.{q,k,v,out}_lin``, ``sa_layer_norm``,
           ``ffn.lin1``, ``ffn.lin2``, ``output_layer_norm``
vit        ``encoder.layer.{i}.``: ``attention.attention.{query,key,value}``,
           ``attention.output.dense``, ``layernorm_before`` (ln1), ``intermediate.dense``,
           ``output.dense``, ``layernorm_after`` (ln2); final norm ``layernorm``
gpt2       ``h.{i}.``: ``ln_1``, ``attn.c_attn`` (Conv1D ``[d, 3d]``: Q, K, V columns in
           that order, transposed here), ``attn.c_proj``, ``ln_2``, ``mlp.c_fc``,
           ``mlp.c_proj`` (Conv1D ``[in, out]``, transposed here); final norm ``ln_f``
========== ============================================================================

``naming: onnx`` goes with a ``.onnx`` model: the tensors come from the layer stack that
:mod:`attnflow.ir.onnx_frontend` recognises in its graph (``onnx_weights``), already in
attnflow's names and shapes (MatMul weights transposed to ``[out, in]``, fused Q/K/V
split, Gemm's alpha/beta/transB applied).

Every problem is one :class:`~attnflow.ir.spec.SpecError` line on field
``model.weights.path``: a missing file, a missing tensor (named, with the file), a tensor
of the wrong shape (name, expected and found shape), an unsupported dtype, non-finite
values, or a malformed file.
"""
from __future__ import annotations

import math
import os
import struct

import numpy as np

from .readers import NOT_FOUND, ReadError, file_problem, json_load
from .spec import WEIGHT_NAMINGS, EncoderSpec, Spec, SpecError

__all__ = ["weight_shapes", "load_weights", "random_weights", "read_npz", "read_safetensors",
           "tensor_names", "hf_sources", "NAMINGS", "GAMMA_STD", "BETA_STD"]

FIELD = "model.weights.path"
#: spread of random norm parameters: gamma = 1 + N(0, GAMMA_STD**2), beta = N(0, BETA_STD**2)
GAMMA_STD = 0.1
BETA_STD = 0.1

#: safetensors dtype -> (numpy little-endian dtype, item size); BF16 is widened by hand
_ST_DTYPES = {"F16": ("<f2", 2), "F32": ("<f4", 4), "F64": ("<f8", 8), "BF16": ("<u2", 2)}
_NPZ_DTYPES = ("float16", "float32", "float64")
_DTYPES_ALLOWED = "float16, float32, float64 (safetensors: F16, BF16, F32, F64)"
_MAX_HEADER = 100 << 20


def _layer_tensors(m: EncoderSpec) -> list[tuple[str, tuple[int, ...]]]:
    """(suffix, shape) of one layer's tensors, in the documented order."""
    d, f = m.d_model, m.d_ff
    out: list[tuple[str, tuple[int, ...]]] = []
    for proj in ("q", "k", "v", "out"):
        out += [(f"attn.{proj}.weight", (d, d)), (f"attn.{proj}.bias", (d,))]
    out += _norm_tensors(m, "ln1")
    out += [("ffn.up.weight", (f, d)), ("ffn.up.bias", (f,)),
            ("ffn.down.weight", (d, f)), ("ffn.down.bias", (d,))]
    out += _norm_tensors(m, "ln2")
    return out


def _norm_tensors(m: EncoderSpec, prefix: str) -> list[tuple[str, tuple[int, ...]]]:
    names = [(f"{prefix}.gamma", (m.d_model,))]
    if m.norm == "layernorm":
        names.append((f"{prefix}.beta", (m.d_model,)))
    return names


def weight_shapes(model: EncoderSpec) -> dict[str, tuple[int, ...]]:
    """Every weight tensor of ``model`` -> its shape, in the documented order."""
    shapes = {f"layers.{i}.{suffix}": shape
              for i in range(model.layers) for suffix, shape in _layer_tensors(model)}
    if model.final_norm:
        shapes.update(_norm_tensors(model, "final_norm"))
    return shapes


def _shape_text(shape) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


# ----------------------------------------------------------------------------- random

def _random_tensor(rng: np.random.Generator, suffix: str, shape, std: float | None):
    if suffix.endswith(".gamma"):
        return 1.0 + rng.normal(0.0, GAMMA_STD, shape)
    if suffix.endswith(".beta"):
        return rng.normal(0.0, BETA_STD, shape)
    return rng.normal(0.0, std, shape)


def random_weights(model: EncoderSpec) -> dict[str, np.ndarray]:
    """The weights of ``model.weights.source: random`` (see the module docstring)."""
    w = model.weights
    out: dict[str, np.ndarray] = {}
    groups = [(i, f"layers.{i}.", _layer_tensors(model)) for i in range(model.layers)]
    if model.final_norm:
        groups.append((model.layers, "", _norm_tensors(model, "final_norm")))
    for i, prefix, tensors in groups:
        for j, (suffix, shape) in enumerate(tensors):
            fan_in = model.d_ff if suffix.startswith("ffn.down") else model.d_model
            std = w.std if w.std is not None else 1.0 / math.sqrt(fan_in)
            rng = np.random.default_rng([w.seed, i, j])
            out[prefix + suffix] = _random_tensor(rng, suffix, shape, std)
    return out


# ----------------------------------------------------------------------------- files

class _FileProblem(Exception):
    """A problem in a weights file; turned into a SpecError by load_weights."""


def read_npz(path: str, names) -> dict[str, tuple[str, tuple[int, ...], object]]:
    """name -> (dtype text, shape, loader) for the ``names`` present in the .npz file."""
    if not _is_zip(path):
        raise _FileProblem(f"cannot read {path} as a numpy .npz archive: not a zip file")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise _FileProblem(f"cannot read {path} as a numpy .npz archive: {e}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise _FileProblem(f"{path} holds a single array, not a .npz archive of named arrays")
    found = {}
    with archive:
        present = set(archive.files)
        for name in names:
            if name not in present:
                continue
            try:
                arr = archive[name]
            except ValueError:  # object arrays need pickle, which we never allow
                found[name] = ("object", (), None)
                continue
            found[name] = (str(arr.dtype), tuple(arr.shape), arr)
    return found


def _natural(v) -> bool:
    """A JSON integer >= 0 (``true`` is not a size)."""
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _is_zip(path: str) -> bool:
    """The file starts like a zip archive (or a single .npy array, reported by the caller)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) in (b"PK\x03\x04", b"PK\x05\x06", b"\x93NUM")
    except OSError:
        return True     # let numpy report it


def _safetensors_header(f, path: str, size: int) -> tuple[dict, int]:
    raw = f.read(8)
    if len(raw) < 8:
        raise _FileProblem(f"{path} is not a safetensors file: shorter than its 8-byte header length")
    (n,) = struct.unpack("<Q", raw)
    if n > min(size - 8, _MAX_HEADER):
        raise _FileProblem(f"{path} is not a safetensors file: header length {n} exceeds the file")
    try:
        header = json_load(f.read(n).decode("utf-8"))
    except (UnicodeDecodeError, ReadError) as e:
        raise _FileProblem(f"{path} is not a safetensors file: its header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise _FileProblem(f"{path} is not a safetensors file: its header is not a JSON object")
    return header, 8 + n


def read_safetensors(path: str, names) -> dict[str, tuple[str, tuple[int, ...], object]]:
    """name -> (dtype text, shape, loader) for the ``names`` present in the file; the
    loader reads the tensor (float64) when called."""
    try:
        size = os.path.getsize(path)
        f = open(path, "rb")
    except OSError as e:
        raise _FileProblem(f"cannot read {path}: {e.strerror or e}") from None
    with f:
        header, data_start = _safetensors_header(f, path, size)
        found = {}
        for name in names:
            info = header.get(name)
            if info is None or name == "__metadata__":
                continue
            bad = f"{path} is not a valid safetensors file: entry {name!r}"
            if not isinstance(info, dict):
                raise _FileProblem(f"{bad} is not a JSON object")
            dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
            if (not isinstance(shape, list) or not all(_natural(s) for s in shape)
                    or not isinstance(offsets, list) or len(offsets) != 2
                    or not all(_natural(o) for o in offsets)):
                raise _FileProblem(f"{bad} needs an integer shape and two data_offsets")
            shape = tuple(shape)
            if dtype not in _ST_DTYPES:
                found[name] = (str(dtype), shape, None)
                continue
            np_dtype, item = _ST_DTYPES[dtype]
            begin, end = offsets
            if not 0 <= begin <= end or data_start + end > size:
                raise _FileProblem(f"{bad} has data_offsets {offsets} outside the file")
            if end - begin != item * math.prod(shape):
                raise _FileProblem(f"{bad}: data_offsets {offsets} hold {end - begin} bytes, "
                                   f"{dtype} {_shape_text(shape)} needs {item * math.prod(shape)}")
            f.seek(data_start + begin)
            arr = np.frombuffer(f.read(end - begin), dtype=np_dtype).reshape(shape)
            if dtype == "BF16":  # the top half of a float32
                arr = (arr.astype(np.uint32) << 16).view(np.float32)
            found[name] = (dtype, shape, arr)
    return found


def tensor_names(path: str) -> list[str]:
    """The tensor names in a .npz or .safetensors file, in file order."""
    if path.lower().endswith(".npz"):
        if not _is_zip(path):
            raise _FileProblem(f"cannot read {path} as a numpy .npz archive: not a zip file")
        try:
            archive = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise _FileProblem(f"cannot read {path} as a numpy .npz archive: {e}") from None
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise _FileProblem(f"{path} holds a single array, not a .npz archive of named "
                               "arrays")
        with archive:
            return list(archive.files)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            header, _ = _safetensors_header(f, path, size)
    except OSError as e:
        raise _FileProblem(f"cannot read {path}: {e.strerror or e}") from None
    return [k for k in header if k != "__metadata__"]


#: naming -> (layer stem with {i}, attnflow suffix stem -> checkpoint stem, final norm)
_HF_LINEAR = {
    "bert": ("encoder.layer.{i}.", {
        "attn.q": "attention.self.query", "attn.k": "attention.self.key",
        "attn.v": "attention.self.value", "attn.out": "attention.output.dense",
        "ln1": "attention.output.LayerNorm", "ffn.up": "intermediate.dense",
        "ffn.down": "output.dense", "ln2": "output.LayerNorm"}, None),
    "distilbert": ("transformer.layer.{i}.", {
        "attn.q": "attention.q_lin", "attn.k": "attention.k_lin", "attn.v": "attention.v_lin",
        "attn.out": "attention.out_lin", "ln1": "sa_layer_norm", "ffn.up": "ffn.lin1",
        "ffn.down": "ffn.lin2", "ln2": "output_layer_norm"}, None),
    "vit": ("encoder.layer.{i}.", {
        "attn.q": "attention.attention.query", "attn.k": "attention.attention.key",
        "attn.v": "attention.attention.value", "attn.out": "attention.output.dense",
        "ln1": "layernorm_before", "ffn.up": "intermediate.dense", "ffn.down": "output.dense",
        "ln2": "layernorm_after"}, "layernorm"),
    "gpt2": ("h.{i}.", {
        "attn.out": "attn.c_proj", "ln1": "ln_1", "ffn.up": "mlp.c_fc",
        "ffn.down": "mlp.c_proj", "ln2": "ln_2"}, "ln_f"),
}
#: weights.naming values (the spec's list; every one but attnflow has a table above)
NAMINGS = WEIGHT_NAMINGS
assert set(_HF_LINEAR) == set(NAMINGS[1:]) - {"onnx"}


def hf_sources(model: EncoderSpec, naming: str) -> dict[str, tuple[str, tuple[int, ...], object]]:
    """attnflow tensor name -> (checkpoint name without prefix, its shape in the file,
    extract: file array -> the attnflow tensor) for a ``naming`` other than attnflow."""
    stem, table, final = _HF_LINEAR[naming]
    if model.final_norm and final is None:
        raise ValueError(f"a {naming} checkpoint has no norm after the last layer; set "
                         f"model.final_norm: false, or a naming with one "
                         f"({', '.join(k for k, v in _HF_LINEAR.items() if v[2])})")
    d = model.d_model
    shapes = weight_shapes(model)
    out = {}
    for name, shape in shapes.items():
        head, kind = name.rsplit(".", 1)          # e.g. layers.0.attn.q, weight
        suffix = {"gamma": "weight", "beta": "bias"}.get(kind, kind)
        if head == "final_norm":
            out[name] = (f"{final}.{suffix}", shape, None)
            continue
        _, i, key = head.split(".", 2)
        prefix = stem.format(i=i)
        if naming == "gpt2" and key in ("attn.q", "attn.k", "attn.v"):
            col = ("attn.q", "attn.k", "attn.v").index(key)
            sl = slice(col * d, (col + 1) * d)
            if kind == "weight":
                out[name] = (prefix + "attn.c_attn.weight", (d, 3 * d),
                             lambda a, sl=sl: a[:, sl].T)
            else:
                out[name] = (prefix + "attn.c_attn.bias", (3 * d,), lambda a, sl=sl: a[sl])
        elif naming == "gpt2" and kind == "weight" and not key.startswith("ln"):
            out[name] = (prefix + f"{table[key]}.weight", shape[::-1], lambda a: a.T)
        else:
            out[name] = (prefix + f"{table[key]}.{suffix}", shape, None)
    return out


def _legacy_norm_name(name: str, present: set) -> str:
    """``name``, or its TensorFlow-era form (``...LayerNorm.gamma`` / ``.beta`` for
    ``.weight`` / ``.bias``, as in Google's converted BERT checkpoints) when only that is
    in the file."""
    for new, old in ((".weight", ".gamma"), (".bias", ".beta")):
        if name not in present and "LayerNorm" in name and name.endswith(new):
            legacy = name[:-len(new)] + old
            if legacy in present:
                return legacy
    return name


def _checkpoint_prefix(path: str, names: list[str], anchor: str, naming: str) -> str:
    """The prefix before the checkpoint names (``bert.``, ``transformer.``, or none), from
    the tensor that ends with ``anchor`` (layer 0's first tensor)."""
    hits = [k for k in names if k == anchor or k.endswith("." + anchor)]
    if len(hits) == 1:
        return hits[0][:len(hits[0]) - len(anchor)]
    if not hits:
        seen = ", ".join(repr(k) for k in names[:3]) or "no tensors"
        raise _FileProblem(f"no tensor named {anchor!r} (or ending in '.{anchor}') in {path} "
                           f"for weights.naming {naming} (the file holds {seen}"
                           f"{', ...' if len(names) > 3 else ''}); set model.weights.naming "
                           f"to the file's naming, one of: "
                           f"{', '.join(n for n in NAMINGS if n != 'onnx')}")
    raise _FileProblem(f"{len(hits)} tensors in {path} end in {anchor!r} "
                       f"({', '.join(repr(h) for h in hits[:3])}): more than one model in "
                       f"the file")


def _checked_shapes(spec: Spec, weights: dict, shapes: dict) -> dict[str, np.ndarray]:
    for name, shape in shapes.items():
        got = weights.get(name)
        if got is None or tuple(got.shape) != shape:
            raise SpecError(spec.source, FIELD, f"tensor {name!r}: expected {_shape_text(shape)}, "
                            f"the ONNX stack gives "
                            f"{'none' if got is None else _shape_text(got.shape)}")
    return {name: weights[name] for name in shapes}


def load_weights(spec: Spec) -> dict[str, np.ndarray]:
    """Every weight tensor of the encoder ``spec`` -> a float array of its documented
    shape (float64; float32 for a file's float16/BF16/float32 tensors, whose values it
    holds exactly), from ``model.weights`` (random or file). Raises SpecError on field
    ``model.weights.path`` (one line) for anything wrong with the file."""
    model = spec.model
    if not isinstance(model, EncoderSpec):
        raise SpecError(spec.source, "model.type", "weights exist only for model.type encoder")
    if model.weights.source == "random":
        return random_weights(model)

    def fail(message: str):
        raise SpecError(spec.source, FIELD, message)

    path = model.weights.path
    shapes = weight_shapes(model)
    problem = file_problem(path)
    if problem == NOT_FOUND:
        fail(f"file not found: {path}")
    if problem:
        fail(f"{path} {problem}")
    if model.weights.naming == "onnx":
        from .onnx_frontend import onnx_weights
        return _checked_shapes(spec, onnx_weights(path, model), shapes)
    reader = read_npz if path.lower().endswith(".npz") else read_safetensors
    naming = model.weights.naming
    # attnflow name -> (name in the file, its shape there, extract or None)
    sources = {n: (n, shape, None) for n, shape in shapes.items()}
    if naming != "attnflow":
        try:
            sources = hf_sources(model, naming)
        except ValueError as e:
            raise SpecError(spec.source, "model.final_norm", str(e)) from None
    try:
        if naming != "attnflow":
            first = sources[next(iter(shapes))][0]
            names = tensor_names(path)
            prefix = _checkpoint_prefix(path, names, first, naming)
            present = set(names)
            sources = {n: (_legacy_norm_name(prefix + f, present), shp, ex)
                       for n, (f, shp, ex) in sources.items()}
        found = reader(path, list(dict.fromkeys(f for f, _, _ in sources.values())))
    except _FileProblem as e:
        fail(str(e))
    missing = [f for f, _, _ in sources.values() if f not in found]
    if missing:
        missing = list(dict.fromkeys(missing))
        shape = next(shp for f, shp, _ in sources.values() if f == missing[0])
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        fail(f"tensor {missing[0]!r} {_shape_text(shape)} is missing from "
             f"{path}{more}" + (f" (weights.naming {naming})" if naming != "attnflow" else ""))
    allowed = _NPZ_DTYPES if reader is read_npz else tuple(_ST_DTYPES)

    def checked(name: str, shape) -> np.ndarray:
        dtype, got, arr = found[name]
        if arr is None or dtype not in allowed:
            fail(f"tensor {name!r} in {path} has unsupported dtype {dtype}; "
                 f"allowed: {_DTYPES_ALLOWED}")
        if got != shape:
            fail(f"tensor {name!r} in {path} has shape {_shape_text(got)}, "
                 f"expected {_shape_text(shape)}")
        # float16, BF16 and float32 widen exactly to float32 (half the memory of float64;
        # arithmetic promotes them to float64 exactly where they are used)
        arr = np.asarray(arr, dtype=np.float64 if arr.dtype == np.float64 else np.float32)
        if not np.isfinite(arr).all():
            fail(f"tensor {name!r} in {path} holds non-finite values (nan or inf)")
        return arr

    # a file tensor several of ours come from (GPT-2's c_attn: Q, K, V) is checked once
    arrays = {}
    for name, shape, _ in sources.values():
        if name not in arrays:
            arrays[name] = checked(name, shape)
    return {key: np.ascontiguousarray(extract(arrays[name])) if extract else arrays[name]
            for key, (name, _, extract) in sources.items()}
