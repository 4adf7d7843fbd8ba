"""Size guards and the simulation budget (attnflow.limits): huge sizes and near-zero
stall probabilities end in one line (exit 2) within seconds, never a MemoryError or a hang."""
import os
import time

import numpy as np
import pytest

from attnflow import limits
from attnflow.cli import main
from attnflow.sim.engine import max_occupancy, occupancy_bins, occupancy_series
from attnflow.sim.schedule import CycleBudgetExceeded, ReadyPattern

HEAD, ENC = "examples/sdpa_online.yaml", "examples/encoder_tiny.yaml"
MEM = "the limit is 16 GiB (raise it with --max-memory)"
CYC = "the cycle budget is 1e+09 (raise it with --max-cycles)"


def one_error(capsys, argv) -> str:
    start = time.monotonic()
    assert main(argv) == 2
    assert time.monotonic() - start < 20
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err[len("error: "):-1]


@pytest.mark.parametrize("argv,message", [
    (["sim", HEAD, "--set", "model.head_dim=1000000000"],
     f"{HEAD}: model.head_dim: 1000000000 needs about 2.33 TiB of Q, K, V inputs and outputs "
     f"(N = 32, d = 1000000000); {MEM}"),
    (["sim", ENC, "--set", "model.d_model=1000000000"],
     f"{ENC}: model.d_model: 1000000000 needs about 111 EiB of weights (8e+18 values: 2 "
     f"layer(s), d_model 1000000000, d_ff 256); {MEM}"),
    (["sim", ENC, "--set", "model.d_model=18446744073709551616"],
     f"{ENC}: model.d_model: 18446744073709551616 needs about 4.4e+40 B of weights (2.72e+39 "
     f"values: 2 layer(s), d_model 18446744073709551616, d_ff 256); {MEM}"),
    (["sim", ENC, "--set", "model.seq_len=1000000000"],
     f"{ENC}: model.seq_len: 1000000000 needs about 29.8 TiB of activations in the golden "
     f"model (N = 1000000000 x 256 per layer); {MEM}"),
    (["sim", HEAD, "--set", "schedule.input_gap_prob=0.5",
      "--set", "schedule.input_gap_max=1000000000"],
     f"{HEAD}: schedule.input_gap_max: 1000000000 makes the simulation take at least 8e+09 cycles "
     f"(32 tokens on input q with gaps of up to 1000000000 cycles at probability 0.5); {CYC}"),
    (["sim", HEAD, "--set", "schedule.output_ready_prob=1e-9"],
     f"{HEAD}: schedule.output_ready_prob: 1e-09 makes the simulation take at least 3.2e+10 "
     f"cycles (32 tokens on output o ready on 1e-09 of the cycles); {CYC}"),
    (["sim", HEAD, "--set", "schedule.output_ready_prob=1e-300"],
     f"{HEAD}: schedule.output_ready_prob: 1e-300 makes the simulation take at least "
     f"3.2e+301 cycles (32 tokens on output o ready on 1e-300 of the cycles); {CYC}"),
    (["sim", ENC, "--set", "schedule.output_ready_prob=1e-9"],
     f"{ENC}: schedule.output_ready_prob: 1e-09 makes the simulation take at least 3.2e+10 "
     f"cycles (32 tokens on output y ready on 1e-09 of the cycles); {CYC}"),
    (["sim", ENC, "--set", "schedule.output_ready_prob=1e-300"],
     f"{ENC}: schedule.output_ready_prob: 1e-300 makes the simulation take at least "
     f"3.2e+301 cycles (32 tokens on output y ready on 1e-300 of the cycles); {CYC}"),
    (["sim", HEAD, "--set", "schedule.output_ready_prob=5e-324"],
     f"{HEAD}: schedule.output_ready_prob: 5e-324 makes the simulation take at least "
     f"over 1e+308 cycles (32 tokens on output o ready on 5e-324 of the cycles); {CYC}"),
])
def test_reproducers_end_in_one_line(capsys, argv, message):
    assert one_error(capsys, argv) == message


def test_fifo_depth_refused_before_rtl_emission(capsys, tmp_path):
    msg = one_error(capsys, ["build", HEAD, "-o", str(tmp_path / "b"),
                             "--set", "hardware.fifo_depths.s=1000000000"])
    # 1e9 entries x (16 B + 18 bits / 8) = 1.85e10 B
    assert msg == (f"{HEAD}: hardware.fifo_depths.s: 1000000000 needs about 17 GiB of FIFO "
                   f"storage for channel s (depth 1000000000 x 18 bits) in the RTL emitter; {MEM}")
    assert not (tmp_path / "b" / "rtl").exists()


def test_max_memory_option_lowers_the_limit(capsys):
    msg = one_error(capsys, ["sim", HEAD, "--max-memory", "1M", "--set", "model.seq_len=512"])
    # 512 x 512 scores: 8 x 8 B x 512^2 + 2 x 8 B x 512 x 16 = 16908288 B
    assert msg == (f"{HEAD}: model.seq_len: 512 needs about 16.1 MiB of score matrices in the "
                   f"golden model (N x N = 512 x 512); the limit is 1 MiB (raise it with "
                   f"--max-memory)")


def test_run_past_the_budget_stops_with_how_far_it_got(capsys):
    # ready 0.1: at least 1056 cycles expected (1024 scores + 32 K/V rows), 1166 measured
    msg = one_error(capsys, ["sim", HEAD, "--set", "schedule.output_ready_prob=0.1",
                             "--max-cycles", "1070"])
    assert msg == (f"{HEAD}: --max-cycles: the simulation passed the cycle budget of 1070 "
                   f"cycles (the output ready pattern was needed up to cycle 1114; expected "
                   f"at least 1056); raise --max-cycles to run it to the end")
    assert main(["sim", HEAD, "--set", "schedule.output_ready_prob=0.1",
                 "--max-cycles", "1166"]) == 0
    assert "total cycles 1166 " in capsys.readouterr().out


def test_named_pipe_is_refused(capsys, tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    assert one_error(capsys, ["sim", str(fifo)]) == (
        f"{fifo}: <file>: a named pipe; give a spec file (.yaml or .json) or a Hugging Face "
        f"config folder")


@pytest.mark.parametrize("text,value", [("16G", 16 << 30), ("512MiB", 512 << 20),
                                        ("1e9", 10 ** 9), ("2k", 2048)])
def test_parse_size(text, value):
    assert limits.parse_size(text) == value


@pytest.mark.parametrize("text", ["", "-1", "0", "nan", "1Q", "inf"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError):
        limits.parse_size(text)


def test_occupancy_from_events_equals_the_per_cycle_series():
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(0, 40))
        push = np.sort(rng.choice(200, n, replace=False)) if n else np.zeros(0, int)
        pop = np.maximum.accumulate(push + rng.integers(0, 30, n)) + np.arange(n)
        pop = pop[:int(rng.integers(0, n + 1))]
        end, step = int(rng.integers(1, 400)), int(rng.integers(1, 50))
        series = occupancy_series(push, pop, end)
        lo, hi = occupancy_bins(push, pop, end, step)
        starts = np.arange(0, end, step)
        assert (lo == np.minimum.reduceat(series, starts)).all()
        assert (hi == np.maximum.reduceat(series, starts)).all()
        full = occupancy_series(push, pop)
        assert max_occupancy(list(push), list(pop)) == (int(full.max()) if n else 0)


def test_max_occupancy_of_events_out_of_order_equals_the_per_cycle_series():
    # times in order take a search per push; any other order the sorted events
    rng = np.random.default_rng(4)
    for _ in range(200):
        n = int(rng.integers(1, 30))
        push = rng.integers(0, 60, n)
        pop = rng.integers(0, 90, int(rng.integers(0, n + 1)))
        assert max_occupancy(push, pop) == max(0, int(occupancy_series(push, pop).max()))
    assert max_occupancy([0, 1, 2, 3], [4, 5]) == 4
    assert max_occupancy([3, 0, 1, 2], [5, 4]) == 4


def test_occupancy_of_a_huge_gap_costs_tokens_not_cycles():
    # two tokens 1e12 cycles apart: a per-cycle array would need 8 TB
    assert max_occupancy([0, 10 ** 12], [5, 10 ** 12 + 3]) == 1
    lo, hi = occupancy_bins([0, 10 ** 12], [5, 10 ** 12 + 3], 10 ** 12 + 10, 10 ** 11)
    assert lo.tolist() == [0] * 10 + [0] and hi.tolist() == [1] + [0] * 9 + [1]


def test_ready_pattern_bits_do_not_depend_on_how_they_are_drawn():
    a = ReadyPattern(0.3, np.random.SeedSequence(4))
    b = ReadyPattern(0.3, np.random.SeedSequence(4))
    a.first_ready(100_000)
    for t in range(0, 100_000, 997):
        b.first_ready(t)
    n = min(len(a.bits), len(b.bits))
    assert n > 99_000 and a.bits[:n] == b.bits[:n]
    ref = np.random.default_rng(np.random.SeedSequence(4)).random(4096) < 0.3
    assert a.as_string(4096) == "".join("1" if x else "0" for x in ref)


def test_ready_pattern_stops_at_its_limit():
    p = ReadyPattern(1e-12, np.random.SeedSequence(0))
    p.limit = 50_000
    with pytest.raises(CycleBudgetExceeded) as e:
        p.first_ready(0)
    assert e.value.limit == 50_000 and len(p.bits) <= 50_000
