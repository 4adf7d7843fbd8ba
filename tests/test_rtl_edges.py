"""Edge sizes through the whole flow: N = 1 and d = 1 (one-iteration loops, one-row
memories) must still emit lint-clean Verilog that matches the simulator."""
import pytest

from attnflow.build import build, stall_schedule, vectors
from attnflow.hdl.testbench import run_testbench, write_testbench

from helpers import spec


@pytest.mark.rtl
@pytest.mark.parametrize("variant", ["naive", "online"])
def test_single_token_single_dim(variant, tmp_path):
    design, result, summary = build(spec(variant, 1, 1), tmp_path, progress=lambda s: None)
    assert summary["golden_mismatches"] == 0
    assert run_testbench(tmp_path).ok
    res = design.simulate(stall_schedule(design.spec, 2))
    path = write_testbench(tmp_path, vectors(design, res), vectors_name="vectors_stall2.json")
    tb = run_testbench(tmp_path, vectors=path)
    assert tb.ok, tb.message
