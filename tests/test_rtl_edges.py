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
    path = write_testbench(tmp_path, vectors(res), vectors_name="vectors_stall2.json")
    tb = run_testbench(tmp_path, vectors=path)
    assert tb.ok, tb.message


@pytest.mark.rtl
def test_one_deep_channels(tmp_path):
    """Depth-1 channels (throttled, not deadlocked) emit lint-clean RTL that matches."""
    design, result, summary = build(spec("online", 6, 2, "hardware.fifo_depths.s=1",
                                         "hardware.fifo_depths.ol=1"),
                                    tmp_path, progress=lambda s: None)
    assert summary["golden_mismatches"] == 0
    assert result.total_cycles > 6 * 6 + 6 + 9       # slower than full rate
    tb = run_testbench(tmp_path)
    assert tb.ok, tb.message
