"""Heavy backpressure: the output is ready 1 cycle in 25 while rows finish every 12
cycles, so stalls reach back to the head of the pipeline (the score stage blocks on a
full channel); the RTL must still match every bit and cycle."""
import numpy as np
import pytest

from attnflow.api import prepare
from attnflow.build import build, vectors
from attnflow.hdl.testbench import run_testbench, write_testbench
from attnflow.ir.spec import ScheduleSpec

from helpers import spec

HARSH = ScheduleSpec(seed=11, input_gap_prob=0.5, input_gap_max=6, output_ready_prob=0.04)


@pytest.mark.parametrize("variant", ["naive", "online"])
def test_backpressure_reaches_the_pipeline_in_sim(variant):
    # the online head's output channel is normalize's pipeline + 1 deep (31 tokens), more
    # than its 12 rows: 2 slots make the output's stalls reach normalize
    design = prepare(spec(variant, 12, 2, *(["hardware.fifo_depths.o=2"]
                                           if variant == "online" else [])))
    res = design.simulate(HARSH)
    blocked = {p.name: p.blocked for p in res.process_stats() if not p.name.startswith("<")}
    assert blocked["qk"] > 0 and blocked["pv" if variant == "naive" else "norm"] > 0, blocked
    assert np.array_equal(res.outputs["o"]["x"], design.golden())


@pytest.mark.rtl
@pytest.mark.parametrize("variant", ["naive", "online"])
def test_backpressure_rtl(variant, tmp_path):
    design, _, _ = build(spec(variant, 12, 2), tmp_path, progress=lambda s: None)
    res = design.simulate(HARSH)
    path = write_testbench(tmp_path, vectors(res), vectors_name="vectors_harsh.json")
    tb = run_testbench(tmp_path, vectors=path)
    assert tb.ok, tb.message
