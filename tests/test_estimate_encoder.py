"""Resource estimates of the encoder templates (``targets.estimate``), no synthesis.

One post-norm encoder layer, N = 8, d_model = 16, heads = 2 (d_head 8), d_ff = 32, every
linear folded (PE, SIMD) = (4, 4); s16.8 activations, s8.6 weights, s8.4 Q/K/V. The
expected figures are derived by hand from the HDL (templates/linear.py, norm.py,
activation.py, residual.py, wires.py) and Yosys' DSP48E2 split rules; the DSP and FF
figures equal Yosys 0.70 ``synth_xilinx`` of the same layer (measured per module), the
pipelined linears' FF within 4 (the Yosys counts are in the comments).
"""
from __future__ import annotations

import pytest

from attnflow.ir.encoder_golden import OPS, layer_plan
from attnflow.ir.spec import spec_from_dict
from attnflow.ir.weights import load_weights
from attnflow.mappers.encoder import map_encoder_layer
from attnflow.templates.linear import LinearParams
from attnflow.targets import estimate
from attnflow.mappers.catalog import facet
from attnflow.targets.estimate import Logic, rom_logic_bits, rom_register_bits, template_model

FOLD = {op: (4, 4) for op in OPS}


@pytest.fixture(scope="module")
def hw():
    s = spec_from_dict({"model": {"type": "encoder", "layers": 1, "d_model": 16, "heads": 2,
                                  "d_ff": 32, "seq_len": 8}})
    return map_encoder_layer(layer_plan(s, load_weights(s)), FOLD)


@pytest.fixture(scope="module")
def est(hw):
    return estimate(hw, "u280")


def _row(est, name):
    return next(r for r in est.rows if r.name == name)


def _fires(inst) -> int:
    """Firings per row of a row template: the extent of its 'f' loop (1 when unfolded)."""
    loops = dict(inst.contract.phases[0].loops)
    return loops.get("f", 1)


def test_every_encoder_template_has_a_model(hw, est):
    templates = {i.template for i in hw.instances.values()}
    assert {"linear", "layernorm", "activation", "residual_add", "fork", "concat"} <= templates
    for t in templates | {"rmsnorm"}:
        assert callable(facet(t, "resources"))
    assert not [n for r in est.rows for n in r.notes if "no resource model" in n]


def test_linear_q_head(hw, est):
    """lin_q0: K = 16 -> M = 8, PE = SIMD = 4: F = (8/4) * (16/4) = 8 firings a row."""
    inst = hw.instances["lin_q0"]
    p = LinearParams.of(inst)
    num = p.numerics
    assert (num.x.bits, num.w.bits, num.acc_bits, num.bias.bits, num.y.bits) == (16, 8, 29, 28, 8)
    row = _row(est, "lin_q0")
    # PE x SIMD = 16 products 16s x 8s: 1 DSP48E2 each
    assert row.dsp == 16
    assert row.mults == ["16 x x*w (16s * 8s): 1 DSP48E2 each"]
    # ROMs: F = 8 words of PE*SIMD*8 = 128 bits (M*K*8 weight bits); M/PE = 2 words of
    # PE*28 bias bits; read combinationally, so logic, no LUT RAM, no memory bits
    model = template_model(inst, hw)
    wrom, brom = model.mems
    assert (wrom.depth, wrom.width, wrom.rom) == (8, 128, True)
    assert wrom.depth * wrom.width == 8 * 16 * 8
    assert (brom.depth, brom.width) == (2, 4 * 28)
    assert row.mem_bits == 0 and row.lutram == 0
    # a 2-word ROM's bits are constants or copies (or inverses) of its one address bit;
    # the weight ROM's 128 columns hold 70 distinct functions of 3 address bits: a LUT
    # each (Yosys 0.70 synth_xilinx of this ROM alone: 70 LUTs)
    assert rom_logic_bits(brom.init, brom.width) == 0
    assert rom_logic_bits(wrom.init, wrom.width) == 70
    assert "weight ROM 8x128: ROM 8x128 as logic (70 LUT)" in row.memory
    # registers: x row 16 x 16 + 4 accumulators of 29 + 1 x 4 x 8 output row
    # + chunk (2) and group (1) counters + sequencer i (3), f (3), phase (1): 414; the 12
    # pipeline stages (templates.linear.stage_plan: read 1, products 2, tree 2,
    # accumulation, round, saturate, 4 of padding; mult 1, shift 10): the x chunk (4 x 16)
    # and the weight ROM's 89 distinct non-constant columns, twice each (the read register
    # and the products' operand registers), 16 products of 24 bits, the 4 trees (2 x 25 +
    # 26 bits each), the bias ROM register (one column not an address copy), rounding
    # 4 x (29 + 1 - 10), saturation and padding 4 x 8 x 5, fire, last chunk, group and
    # staged valid 12 stages each, first chunk 5.
    # Yosys 0.70 synth_xilinx of l0_lin_q0 of the same layer (benchmarks/synth_modules.py):
    # 1706 FF
    stages = 2 * 64 + 2 * 89 + 16 * 24 + 4 * 76 + 1 + 4 * 20 + 32 * 5 + 4 * 12 + 5
    assert row.ff == 414 + stages == 1702


def test_linear_out_up_down(est):
    # the stages as in lin_q0 (shift 6: rounding 4 x 24, 4 x 25 for lin_down; y 16 bits;
    # a group counter of 2 or 3 bits carried 12 stages); weight / bias ROM registers:
    # their distinct non-constant columns that are not address copies
    stages = 2 * 64 + 16 * 24 + 4 * 76 + 64 * 5 + 3 * 12 + 5
    # lin_out 16 -> 16: F = 4 * 4 = 16; output row 3 groups of 4 x 16 bits registered
    # (Yosys 0.70 synth_xilinx of l0_lin_out: 2092 FF)
    assert _row(est, "lin_out").ff == (256 + 4 * 29 + 3 * 4 * 16 + 2 + 2 + 3 + 4 + 1
                                       + stages + 2 * 103 + 12 + 4 * 24 + 2 * 12) == 2091
    # lin_up 16 -> 32: F = 8 * 4 = 32; lin_down 32 -> 16: F = 4 * 8, x row 32 x 16 bits,
    # accumulators of 30 bits (K = 32) (Yosys: l0_lin_up 2413 FF, l0_lin_down 2346 FF)
    assert _row(est, "lin_up").ff == (256 + 4 * 29 + 7 * 4 * 16 + 2 + 3 + 3 + 5 + 1
                                      + stages + 2 * 108 + 54 + 4 * 24 + 3 * 12) == 2413
    assert _row(est, "lin_down").ff == (512 + 4 * 30 + 3 * 4 * 16 + 3 + 2 + 3 + 5 + 1
                                        + stages + 2 * 97 + 12 + 4 * 25 + 2 * 12) == 2345
    for name in ("lin_out", "lin_up", "lin_down"):
        assert _row(est, name).dsp == 16


def test_layernorm(hw, est):
    num = hw.instances["ln1"].param("numerics")
    assert (num.sum_bits, num.cn_bits, num.inv_bits) == (21, 20, 19)
    row = _row(est, "ln1")
    # 16 squares x*x (16s x 16s: 1); S1**2 (21s x 21s: B 17 + 4 bits: 2);
    # 16 cn*inv (20s x 19u -> 20 x 20: 2); 16 x gamma (40s x 13-bit positive constant
    # -> 40 x 14: A 17 + 23 bits: 2); D * X and D * S2 (D = 16) are shifts
    assert row.dsp == 16 + 2 + 16 * 2 + 16 * 2 == 82
    assert any(m.startswith("16 x D*x (16s * const 16): shift") for m in row.mults)
    assert row.ff == 4                                   # the sequencer only: i, phase
    assert row.mem_bits == 0 and row.lutram == 0


def test_activation_gelu(hw, est):
    inst = hw.instances["act"]
    num = inst.param("numerics")
    assert num.kind == "poly"                            # s16.8 input: polynomial GELU
    assert (num.mt_bits, num.s_bits, num.gate_bits) == (10, 20, 17)
    fires = _fires(inst)
    lanes = 32 // fires
    row = _row(est, "act")
    # per lane (hdl.pipeline.mul: 18 x 18 pieces): mt*mt (10u x 10u) 1 DSP48E2, s * M
    # (20u = 17u + 3u pieces x 14u const) 2, x*h (16s x 17u) 1
    assert row.dsp == 4 * lanes
    # the pipeline per lane (ACT_STAGES = 13): x held 9 stages (input, |x|, mt*mt 2,
    # s, s*M 3, x*H's operand) 144, |x| 16, mt 10 (both operands), mt**2 20, s and its
    # operand register 2 x 20, s*M's two partial products and their sum 50 (bits 16..33
    # read), H 17, x*H 18 (bits 15..32 read), the rounding 18, the saturation 16, the
    # padding 1 x 16; the constant M 1; the firing and the staged valid 13 each
    pipeline = 144 + 16 + 10 + 20 + 40 + 50 + 17 + 18 + 18 + 16 + 16
    if fires == 1:
        assert row.ff == 3 + 1 + lanes * pipeline + 1 + 13   # sequencer: i, phase
    else:
        # sequencer i, f, phase; the chunk counter steps with f (Yosys merges them); the x
        # row (32 x 16) but its chunk 0 (never read), its load and shift flags; fires - 1
        # registered output chunks
        seq = 3 + (fires - 1).bit_length() + 1
        assert row.ff == (seq + 512 - 512 // fires + 2 + (fires - 1) * lanes * 16
                          + lanes * pipeline + 1 + 2 * 13)
        if fires == 32:     # one lane (Yosys 0.70 synth_xilinx of that layer: 1395 FF)
            assert row.ff == 9 + 496 + 2 + 496 + 392 == 1395


def test_residual_add(hw, est):
    inst = hw.instances["res1"]
    num = inst.param("numerics")
    # scale 1, same formats: both rescales are wires into 17-bit formats that never
    # saturate; the sum has 18 bits and saturates to s16.8
    assert (num.rescale_a.mult, num.rescale_a.shift, num.a_bits, num.sum_bits) == (1, 0, 17, 18)
    fires = _fires(inst)
    lanes = 16 // fires
    row = _row(est, "res1")
    assert row.dsp == 0 and row.mem_bits == 0
    # per lane: a 17-bit adder (16 significant bits + 1), the overflow check of the top
    # 3 bits (1 LUT) and 16 output LUTs; the sequencer: i counter (3 + 1), 5 gates
    datapath = lanes * (17 + 1 + 16)
    if fires == 1:
        assert row.lut == datapath + 3 + 1 + 5 == 553
        assert row.ff == 4
    else:
        # sequencer i, f, phase; rows a and b but their chunk 0, their load and shift
        # flags; fires - 1 output chunks
        seq = 3 + (fires - 1).bit_length() + 1
        assert row.ff == seq + 2 * (256 - 256 // fires) + 2 + (fires - 1) * lanes * 16
        if fires == 16:     # one lane (Yosys 0.70 synth_xilinx of that layer: 730 FF)
            assert row.ff == 730
        assert row.lut > datapath


def test_fork_and_concat_are_wires(hw, est):
    fk = _row(est, "fork_in")
    assert hw.instances["fork_in"].param("ways") == 7    # skip + q, k, v of 2 heads
    assert (fk.dsp, fk.mem_bits, fk.ff) == (0, 0, 4)
    assert fk.lut == 3 + 1 + 2 + 8                        # i counter, sequencer gates
    cc = _row(est, "concat")
    assert (cc.dsp, cc.mem_bits, cc.ff, cc.lut) == (0, 0, 4, 3 + 1 + 2 + 3)


def test_layer_totals(est):
    t = est.totals
    # 9 linears x 16 + 2 heads x (qk 10 + softmax 27 + normalize 32) + 2 layernorms x 82
    # + the activation's 3 per lane. The heads are pipelined (hdl.pipeline.mul: a DSP
    # block per partial product of 17-bit pieces): qk 8 q*k + the registered scale
    # product, 19s = 17u + 2s: 2; softmax z*log2e 18u: 1, l*e 19u = 17u + 2u: 2, 8 o*e 27s
    # = 17u + 10s: 2 each, 8 e*v: 1 each; normalize 8 o*r (17u + 10s) x (17u + 3u): 4 each
    act = _row(est, "act").dsp
    assert t["DSP"] == 9 * 16 + 2 * (10 + 27 + 32) + 2 * 82 + act
    # the heads' modules against Yosys 0.70 synth_xilinx (benchmarks/synth_modules.py's
    # machinery on this layer): node -> (DSP, LUT RAM, FF); LUT within 15 %
    measured = {"qk0": (10, 72, 745, 290), "vstore0": (0, 40, 141, 57),
                "softmax0": (27, 152, 3346, 1145), "norm0": (32, 128, 3114, 1710)}
    for name, (dsp, lutram, ff, lut) in measured.items():
        row = _row(est, name)
        assert (row.dsp, row.lutram, row.ff) == (dsp, lutram, ff), name
        assert 0.85 <= (row.lut + row.lutram) / lut <= 1.15, name
    assert t["BRAM"] == 0 and t["URAM"] == 0
    assert not [n for n in est.notes if "no resource model" in n]


def test_rom_logic_bits():
    # 4 words: bit 0 is address bit 0, bit 1 address bit 1, bit 2 constant 0
    assert rom_logic_bits([0, 1, 2, 3], 3) == 0
    # bit 0: 1,0,0,1 (XOR of the address bits: logic); bit 1 the same column (shared),
    # bit 2 its inverse (an INV cell)
    assert rom_logic_bits([3, 4, 4, 3], 3) == 1
    # a 1-word ROM is padded to 2 words (templates.linear._rom): its non-zero bits follow addr
    assert rom_logic_bits([5], 3) == 0


def test_rom_register_bits():
    # bits 0 and 1 copy the address bits, bit 2 is constant: no register
    assert rom_register_bits([0, 1, 2, 3], 3) == 0
    # bit 0 = bit 1 = 1,0,0,1 (one register), bit 2 its inverse 0,1,1,0 (a register of its own)
    assert rom_register_bits([3, 4, 4, 3], 3) == 2
    # an inverted address bit (1,0,1,0) is a register; a 1-word ROM pads to 2 words:
    # [5, 0]: bits 0 and 2 are both 1,0 (the inverted address: one register)
    assert rom_register_bits([1, 0, 1, 0], 1) == 1
    assert rom_register_bits([5], 3) == 1
    # [6, 1]: bit 0 is 0,1 (the address), bits 1 and 2 are 1,0 (one register)
    assert rom_register_bits(lambda: [6, 1], 3) == 1
    # columns wider than a byte, beyond 64 words: column b of word i is bit b % 5 of i * 7
    # (never an address bit: i * 7 mod 2 ** (k + 1) differs from i's bit k somewhere)
    words = [sum((((i * 7) >> (b % 5)) & 1) << b for b in range(40)) for i in range(100)]
    assert rom_register_bits(words, 40) == 5 - 1      # bit 0 of i * 7 is address bit 0


def test_logic_kinds():
    # a constant-operand adder: carry chain only on Xilinx, a LUT a bit on LUT4 flows
    assert Logic().add("addc", 20).luts("xilinx", 6) == 0
    assert Logic().add("addc", 20).luts("ice40", 4) == 20
    # a two-operand $macc is one adder; 5 operands of 29 bits (4 products + the accumulator)
    assert Logic().add("macc", 29, 1, 2).luts("xilinx", 6) == 29
    assert Logic().add("macc", 29, 1, 5).luts("xilinx", 6) == 29 + round(29 * 3 * (1 + 5 / 30))
    # an n:1 multiplexer: about a LUT6 per two data inputs, as ABC9 builds them (Yosys 0.70:
    # lin_q0's 64-bit 8:1 input select 192 LUTs, lin_down's 16:1 370)
    assert Logic().add("muxn", 64, 1, 8).luts("xilinx", 6) == 64 * 4
    assert Logic().add("muxn", 64, 1, 16).luts("xilinx", 6) == 64 * 8
    assert Logic().add("muxn", 64, 1, 4).luts("xilinx", 6) == 64


def _alone(inst, device="u280"):
    """The estimate row of one unfolded row-template instance (its model needs no graph)."""
    from attnflow.targets.devices import load_device
    from attnflow.targets.estimate import _row as row_of
    return row_of(inst.name, "template", inst.template, template_model(inst, None),
                  load_device(device))


def test_gelu_rom_and_relu_and_rmsnorm(hw):
    from attnflow.ir.numerics_norm import GeluNumerics, RescaleNumerics
    from attnflow.ir.types import FixedFormat
    from attnflow.templates.activation import ActivationParams
    from attnflow.templates.norm import NormParams
    s84, s168 = FixedFormat(8, 4), FixedFormat(16, 8)
    # GELU ROM s8.4 -> s8.4, 2 lanes: one 256 x 8 table per lane, read combinationally:
    # logic (Yosys 0.70 synth_xilinx: 26 LUT a table), no DSP, no LUT RAM
    act = ActivationParams(4, 2, "gelu", GeluNumerics(s84, s84, "rom")).instance("g")
    row = _alone(act)
    assert (row.dsp, row.lutram, row.mem_bits) == (0, 0, 0)
    assert row.memory == ["GELU ROM 256x8: 2 x ROM 256x8 as logic (56 LUT)"]
    # ReLU s16.8 -> s8.4, 4 lanes: x > 0 (6 LUT) and the AND (16), the rounding adder
    # (constant operand: carry chain only), 13-bit result saturated to 8 bits (2 + 8);
    # sequencer: a 2-bit row counter (2 + 1) and 4 gates
    relu = ActivationParams(4, 4, "relu", RescaleNumerics(s168, s84)).instance("r")
    row = _alone(relu)
    assert row.dsp == 0 and row.lut == 4 * (6 + 16 + 2 + 8) + 3 + 4
    # RMSNorm on the layer's LayerNorm numerics: no S1, so no S1**2 product
    ln = hw.instances["ln1"]
    num = ln.param("numerics")
    rms = NormParams.make(8, num, ln.param("gamma"), rms=True).instance("rms")
    assert rms.template == "rmsnorm"
    assert _alone(rms).dsp == 16 + 16 * 2 + 16 * 2
