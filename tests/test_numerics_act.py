"""The families' activations (``ir.numerics_act``): float references against the formulas
as transformers writes them (transcribed here), and the integer definitions against the
float references, with the error bounds the module states."""
from __future__ import annotations

import math

import numpy as np
import pytest

from attnflow.ir.numerics_act import (GATE_FRAC, GATE_RANGE, GateNumerics, activation_float,
                                      activation_rom, gate_golden, gate_table)
from attnflow.ir.types import FixedFormat as F

X = np.linspace(-9.0, 9.0, 7201)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


#: transformers' activations (activations.py), term for term
HF = {
    "gelu": lambda x: x * 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0))),
    "gelu_tanh": lambda x: 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi)
                                                    * (x + 0.044715 * np.power(x, 3.0)))),
    "gelu_fast": lambda x: 0.5 * x * (1.0 + np.tanh(x * 0.7978845608
                                                    * (1.0 + 0.044715 * x * x))),
    "quick_gelu": lambda x: x * _sigmoid(1.702 * x),
    "silu": lambda x: x * _sigmoid(x),
    "relu": lambda x: np.maximum(x, 0.0),
}


@pytest.mark.parametrize("fn", list(HF))
def test_float_reference_is_the_family_formula(fn):
    assert np.abs(activation_float(fn, X) - HF[fn](X)).max() < 1e-15


def test_the_tanh_forms_differ_from_the_erf_gelu_as_documented():
    diff = np.abs(activation_float("gelu_tanh", X) - activation_float("gelu", X))
    assert 4.5e-4 < diff.max() < 4.8e-4
    fast = np.abs(activation_float("gelu_fast", X) - activation_float("gelu_tanh", X)).max()
    assert 0 < fast < 1e-10


@pytest.mark.parametrize("fn", list(GATE_RANGE))
def test_gate_table_ends_are_exactly_zero_and_one(fn):
    t = gate_table(fn)
    assert t[0] == 0 and t[-1] == 1 << GATE_FRAC
    assert all(b >= a for a, b in zip(t, t[1:]))          # every gate rises
    assert len(t) == 2 * GATE_RANGE[fn] * 32 + 1


CASES = [  # (x, out): interpolated (frac above the step), exact samples, ROM-sized
    (F(16, 8), F(16, 8)), (F(16, 12), F(16, 12)), (F(12, 3), F(16, 8)), (F(16, 10), F(8, 4)),
]


@pytest.mark.parametrize("fn", [f for f in GATE_RANGE if f != "gelu"] + ["gelu"])
@pytest.mark.parametrize("x_fmt, out", CASES)
def test_table_method_within_its_bound(fn, x_fmt, out):
    """Every input pattern: |Y - f(x)| <= 0.5 LSB + |x| (h**2/8 max|g''| + 2**-16 + tail),
    bounded here by 0.5 LSB + |x| * 2e-4 over the whole input range."""
    num = GateNumerics(fn, x_fmt, out, "table")
    assert num.kind == "table" and not num.check()
    xi = np.arange(x_fmt.min_int, x_fmt.max_int + 1)
    x = xi / 2.0 ** x_fmt.frac
    y = gate_golden(xi, num) / 2.0 ** out.frac
    ref = np.clip(HF[fn](x), out.min_value, out.max_value)
    bound = 0.5 * out.lsb + np.abs(x) * 2e-4 + 1e-12
    assert (np.abs(y - ref) <= bound).all()
    stages = num.stages(xi)
    beyond = np.abs(x) >= GATE_RANGE[fn]
    assert set(np.unique(stages["h"][beyond])) <= {0, 1 << GATE_FRAC}   # exact ends


@pytest.mark.parametrize("fn", list(GATE_RANGE))
def test_rom_method_is_half_an_lsb(fn):
    x_fmt, out = F(10, 6), F(9, 5)
    num = GateNumerics(fn, x_fmt, out)
    assert num.kind == "rom"
    xi = np.arange(x_fmt.min_int, x_fmt.max_int + 1)
    ref = np.clip(HF[fn](xi / 64.0) * 32.0, out.min_int, out.max_int)
    assert np.abs(gate_golden(xi, num) - ref).max() <= 0.5
    assert len(activation_rom(fn, x_fmt, out)) == 1024


def test_gelu_tanh_table_is_much_closer_than_ibert():
    """At s16.12 the interpolated table is within 0.7 LSB of the tanh GELU on |x| <= 4."""
    num = GateNumerics("gelu_tanh", F(16, 12), F(16, 12))
    xi = np.arange(-4 * 4096, 4 * 4096 + 1)
    err = np.abs(gate_golden(xi, num) - HF["gelu_tanh"](xi / 4096.0) * 4096.0).max()
    assert err < 0.7


@pytest.mark.parametrize("make, message", [
    (lambda: GateNumerics("mish", F(8, 4), F(8, 4)), "fn must be one of gelu, gelu_tanh"),
    (lambda: GateNumerics("silu", F(8, 4), F(8, 4), "poly"), "method must be auto, rom or table"),
    (lambda: GateNumerics("silu", F(8, 4, False), F(8, 4)), "format x must be a signed"),
])
def test_bad_numerics_one_line(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_rom_method_refuses_wide_inputs():
    (field, msg), = GateNumerics("silu", F(12, 6), F(8, 4), "rom").check()
    assert field == "activation.method" and "at most 10 bits" in msg
