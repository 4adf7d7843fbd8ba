import math

import numpy as np
import pytest

from attnflow.ir.numerics import exp2_table, exp_neg, recip, requant, saturate, quantize
from attnflow.ir.types import FixedFormat


def test_requant_rounds_half_up_and_shifts_left():
    assert [requant(x, 1) for x in (-3, -2, -1, 0, 1, 2, 3)] == [-1, -1, 0, 0, 1, 1, 2]
    assert requant(5, 0) == 5 and requant(5, -2) == 20
    arr = np.array([-3, 3], dtype=np.int64)
    assert requant(arr, 1).tolist() == [-1, 2]


def test_saturate_and_quantize():
    f = FixedFormat(8, 4)
    assert saturate(300, f) == 127 and saturate(-300, f) == -128
    assert quantize([0.03125, -0.03125, 100.0], f).tolist() == [1, 0, 127]


@pytest.mark.parametrize("sf,pf", [(8, 15), (6, 10), (10, 20)])
def test_exp_neg_error_bound(sf, pf):
    """e^-z in pf fractional bits. z*log2(e) is rounded to sf fractional bits (relative
    error <= ln2 * 2^-(sf+1)), the ROM word is rounded (0.5 LSB), the shift floors (1 LSB)."""
    z = np.arange(0, 40 << sf, 7, dtype=np.int64)
    got = exp_neg(z, sf, pf)
    ref = 2.0 ** pf * np.exp(-z / 2.0 ** sf)
    bound = ref * math.log(2) * 2.0 ** -(sf + 1) * 1.001 + 1.5
    assert np.all(np.abs(got - ref) <= bound)
    assert exp_neg(0, sf, pf) == 1 << pf            # exp(0) is exactly one
    assert np.all(np.diff(got) <= 0)               # monotone
    # the scalar path equals the vector path
    assert [exp_neg(int(x), sf, pf) for x in z[:50]] == got[:50].tolist()


def test_exp_table_is_rom_of_2_pow_minus_frac():
    t = exp2_table(8, 15)
    assert len(t) == 256 and t[0] == 1 << 15
    assert t[128] == round(2 ** 15 * 2 ** -0.5)


def test_recip_is_floor_division():
    l = np.array([1, 3, 32768, 32769, 1 << 20], dtype=np.int64)
    assert recip(l, 36).tolist() == [(1 << 36) // int(x) for x in l]
    assert recip(7, 10) == math.floor(1024 / 7)
