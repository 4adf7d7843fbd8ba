"""User-given input vectors: ``inputs: {file: x.npy | x.npz}`` in a spec (or ``--inputs``).

The file replaces the random inputs of ``inputs: {seed, range}`` for every view of the
design: the golden model, the simulator and (through the simulator's vectors) the
testbench. One array per input stream of the design:

* an attention head (``model.type: attention_head``): a ``.npz`` with arrays ``q``, ``k``
  and ``v``, each ``(seq_len, head_dim)``; a decode head takes the same full-sequence Q
  and uses its last ``decode`` rows;
* an encoder/decoder (``model.type: encoder``): the input X, ``(seq_len, d_model)``, as a
  ``.npy`` or as array ``x`` of a ``.npz``.

Float arrays hold real values: they are rounded to the stream's format (round half up,
as ``ir.numerics.quantize``) and must lie in the format's representable range
``[min_value - lsb/2, max_value + lsb/2)``. Integer arrays hold the stored fixed-point
integers themselves (value = integer * 2**-frac) and must lie in
``[-2**(bits-1), 2**(bits-1) - 1]``. Anything else (bool, complex, object, NaN/inf) is
refused. Every problem is one ``SpecError`` line naming the file and what was expected.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .numerics import quantize
from .spec import SpecError
from .types import FixedFormat

FIELD = "inputs.file"
SUFFIXES = (".npy", ".npz")


def expected_streams(spec, x_fmt: FixedFormat | None = None) -> dict:
    """Input stream name -> (shape, format) the design reads, in stream order (an
    encoder's input in ``x_fmt``, its calibrated format, else ``formats.act``)."""
    m, f = spec.model, spec.formats
    if m.type == "encoder":
        return {"x": ((m.seq_len, m.d_model), x_fmt or f.act)}
    shape = (m.seq_len, m.head_dim)
    return {"q": (shape, f.q), "k": (shape, f.k), "v": (shape, f.v)}


def _describe(streams: dict) -> str:
    return ", ".join(f"{name} {tuple(shape)} in {fmt}" for name, (shape, fmt) in streams.items())


def _read(path: Path, streams: dict) -> dict:
    """name -> raw array from the .npy/.npz at ``path``."""
    want = _describe(streams)
    if path.suffix.lower() not in SUFFIXES:
        raise SpecError(str(path), FIELD, f"must be a .npy or .npz file; expected {want}")
    if not path.is_file():
        raise SpecError(str(path), FIELD, f"file not found; expected {want}")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise SpecError(str(path), FIELD, f"cannot read it as {path.suffix.lower()}: "
                                          f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
                                          f"; expected {want}") from None
    if isinstance(data, np.ndarray):
        if len(streams) != 1:
            raise SpecError(str(path), FIELD, f"a .npy holds one array, the design has "
                                              f"{len(streams)} input streams: give a .npz "
                                              f"with arrays {want}")
        return {next(iter(streams)): data}
    with data:
        names = list(data.files)
        missing = [n for n in streams if n not in names]
        extra = [n for n in names if n not in streams]
        if missing or extra:
            what = "; ".join(x for x in (
                f"missing {', '.join(missing)}" if missing else "",
                f"unknown {', '.join(extra)}" if extra else "") if x)
            raise SpecError(str(path), FIELD, f"arrays {', '.join(names) or '(none)'}: {what}; "
                                              f"expected {want}")
        try:
            return {n: data[n] for n in streams}
        except ValueError as e:  # object arrays need pickle
            raise SpecError(str(path), FIELD, f"{e}; expected {want}") from None


def _stored(path: Path, name: str, arr: np.ndarray, shape: tuple, fmt: FixedFormat,
            label: str, saturate: bool = False) -> np.ndarray:
    """The stored integers of one stream, after checking shape, dtype and range
    (``saturate``: real values beyond the format saturate instead: a calibrated format)."""
    where = f"array {name!r}" if label == "npz" else "the array"
    if arr.shape != tuple(shape):
        raise SpecError(str(path), FIELD, f"{where} has shape {arr.shape}, expected "
                                          f"{tuple(shape)} ({name} in {fmt})")
    if arr.dtype.kind in "iu":
        ints = arr.astype(np.int64)
        bad = (ints < fmt.min_int) | (ints > fmt.max_int)
        lo, hi = fmt.min_int, fmt.max_int
        unit = f"stored integers of {fmt}"
    elif arr.dtype.kind == "f":
        vals = arr.astype(np.float64)
        if not np.isfinite(vals).all():
            raise SpecError(str(path), FIELD, f"{where} holds NaN or inf; expected finite "
                                              f"values of {fmt}")
        lo, hi = fmt.min_value, fmt.max_value
        # holds(): rounds to a representable integer
        bad = (vals < lo - fmt.lsb / 2) | (vals >= hi + fmt.lsb / 2)
        if saturate:
            bad = np.zeros_like(bad)
        unit = f"real values of {fmt}"
        ints = quantize(vals, fmt)
    else:
        raise SpecError(str(path), FIELD, f"{where} has dtype {arr.dtype}; expected float "
                                          f"(real values) or integer (stored integers of {fmt})")
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise SpecError(str(path), FIELD, f"{where}: element [{', '.join(map(str, idx))}] = "
                                          f"{arr[idx].item()!r} is outside [{lo:g}, {hi:g}], the "
                                          f"{unit} ({name})")
    return ints


def load_user_inputs(spec, x_fmt: FixedFormat | None = None) -> dict:
    """Stream name -> stored integers (int64, the stream's shape) from ``spec.inputs.file``
    (an encoder's X in ``x_fmt`` when given: the stack's calibrated input format)."""
    path = Path(spec.inputs.file)
    streams = expected_streams(spec, x_fmt)
    raw = _read(path, streams)
    label = path.suffix.lower().lstrip(".")
    return {name: _stored(path, name, raw[name], shape, fmt, label, calibrated(spec))
            for name, (shape, fmt) in streams.items()}


def calibrated(spec) -> bool:
    """True when the input format comes from a calibration run: real input values beyond
    it saturate (as every calibrated tensor does) and the report counts them."""
    return spec.model.type == "encoder" and spec.quantization.activations == "calibrated"


def saturated_inputs(spec, x_fmt: FixedFormat) -> int:
    """How many real values of ``inputs.file`` lie beyond ``x_fmt`` (0 for integers)."""
    if not spec.inputs.file:
        return 0
    arr = _read(Path(spec.inputs.file), expected_streams(spec, x_fmt))["x"]
    if arr.dtype.kind != "f":
        return 0
    return int(np.count_nonzero((arr < x_fmt.min_value - x_fmt.lsb / 2)
                                | (arr >= x_fmt.max_value + x_fmt.lsb / 2)))


def read_hidden_states(path, seq_len: int, d_model: int, field: str) -> np.ndarray:
    """Real hidden states for a calibration run: a float ``.npy`` (or array ``x`` of a
    ``.npz``) of shape (seq_len, d_model) or (samples, seq_len, d_model) -> float64
    (samples, seq_len, d_model). One SpecError line on ``field`` for anything else."""
    path = Path(path)
    want = f"real hidden states ({seq_len}, {d_model}) or (samples, {seq_len}, {d_model})"
    if path.suffix.lower() not in SUFFIXES:
        raise SpecError(str(path), field, f"must be a .npy or .npz file of {want}")
    if not path.is_file():
        raise SpecError(str(path), field, f"file not found; expected {want}")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.ndarray):
            with data:
                if "x" not in data.files:
                    raise SpecError(str(path), field, f"no array 'x' in the .npz; expected "
                                                      f"{want}")
                data = data["x"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise SpecError(str(path), field, f"cannot read it: {str(e).splitlines()[0] if str(e) else type(e).__name__}; "
                                          f"expected {want}") from None
    if data.dtype.kind != "f":
        raise SpecError(str(path), field, f"the array has dtype {data.dtype}; expected {want} "
                                          "as floats")
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3 or data.shape[1:] != (seq_len, d_model) or not len(data):
        raise SpecError(str(path), field, f"the array has shape {data.shape}; expected {want}")
    if not np.isfinite(data).all():
        raise SpecError(str(path), field, "the array holds NaN or inf; expected finite values")
    return data.astype(np.float64)
