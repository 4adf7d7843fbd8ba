"""Device variants of a design's RTL: the same design with its multipliers built from a
device's DSP primitives (``hdl.pipeline.primitives``), which is what synthesis for that
device should get (Yosys' ``synth_ecp5`` does not pack the pipeline registers into the
ECP5 MULT18X18D by itself), and a simulation model of those primitives so the variant is
verified bit- and cycle-exactly like the generic RTL.

``emit_variant(hw, out, "ecp5")`` writes ``out/ecp5/``:

* ``rtl/<top>.v``: the design with every partial product a ``MULT18X18D`` (A/B input
  and P output registers on CLK0: the two stages of ``pipeline.mul``'s product);
* ``sim/MULT18X18D.v``: a behavioural model of the primitive in the one configuration
  the design uses (our reading of the ECP5 sysDSP documentation: 18 x 18 -> 36 bits,
  signed or unsigned per SIGNEDA/SIGNEDB, each register on CLK0 enabled by CE0; the
  synchronous resets are tied low) for simulation only, never for synthesis;
* ``files.f``: both, the model after a ``// simulation model`` line, and the variant's
  memory init files (``hdl.emit.split_memories``), for ``run_tb.py --file-list
  ecp5/files.f``.
"""
from __future__ import annotations

from pathlib import Path

from .pipeline import DSP_BITS, primitives

VARIANTS = ("ecp5",)
SIM_MARK = "// simulation model (not for synthesis):"


def mult18x18d_model() -> str:
    """Verilog of the MULT18X18D model (ports one bit each, as the primitive's)."""
    n = DSP_BITS
    bits = lambda p, k: ", ".join(f"{p}{i}" for i in range(k))
    cat = lambda p, k: "{" + ", ".join(f"{p}{i}" for i in reversed(range(k))) + "}"
    regs = ("INPUTA", "INPUTB", "OUTPUT")
    params = "\n".join([f'  parameter GSR = "DISABLED",', f'  parameter RESETMODE = "SYNC",'] +
                       [f'  parameter REG_{r}_{f} = "{d}",' for r in regs
                        for f, d in (("CLK", "NONE"), ("CE", "CE0"), ("RST", "RST0"))])
    params = params.rstrip(",")
    return f"""// MULT18X18D: attnflow's behavioural model of the ECP5 sysDSP 18 x 18 multiplier, for
// simulating the ecp5 variant only (synthesis uses the primitive itself). Modelled: A and B
// (signed per SIGNEDA / SIGNEDB), the product P, and the A, B and P registers on CLK0 when
// their REG_*_CLK is "CLK0" (enabled by CE0, reset by RST0 synchronously); nothing else.
module MULT18X18D #(
{params}
) (
  input {bits("A", n)},
  input {bits("B", n)},
  input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK0, CE0, RST0,
  output {bits("P", 2 * n)}
);
  wire [{n - 1}:0] a = {cat("A", n)};
  wire [{n - 1}:0] b = {cat("B", n)};
  reg [{n - 1}:0] a_r = 0, b_r = 0;
  reg [{2 * n - 1}:0] p_r = 0;
  always @(posedge CLK0) begin
    if (RST0) begin
      a_r <= 0; b_r <= 0;
    end else if (CE0) begin
      a_r <= a; b_r <= b;
    end
  end
  wire [{n - 1}:0] a_q = REG_INPUTA_CLK == "NONE" ? a : a_r;
  wire [{n - 1}:0] b_q = REG_INPUTB_CLK == "NONE" ? b : b_r;
  wire signed [{n}:0] a_x = {{SIGNEDA & a_q[{n - 1}], a_q}};
  wire signed [{n}:0] b_x = {{SIGNEDB & b_q[{n - 1}], b_q}};
  wire signed [{2 * n + 1}:0] prod = a_x * b_x;
  always @(posedge CLK0) begin
    if (RST0) p_r <= 0;
    else if (CE0) p_r <= prod[{2 * n - 1}:0];
  end
  wire [{2 * n - 1}:0] p = REG_OUTPUT_CLK == "NONE" ? prod[{2 * n - 1}:0] : p_r;
  assign {cat("P", 2 * n)} = p;
endmodule
"""


def emit_variant(hw, out, kind: str) -> Path:
    """Write the ``kind`` variant of ``hw``'s RTL under ``out/kind`` (see the module
    docstring); returns that folder's ``files.f``."""
    from ..export import MEM_LINE
    from .emit import emit_verilog, write_rtl
    if kind not in VARIANTS:
        raise ValueError(f"variant {kind!r}; allowed: {', '.join(VARIANTS)}")
    folder = Path(out) / kind
    with primitives(kind):
        rtl, *mems = write_rtl(emit_verilog(hw), folder / "rtl" / f"{hw.name}.v")
    (folder / "sim").mkdir(parents=True, exist_ok=True)
    (folder / "sim" / "MULT18X18D.v").write_text(mult18x18d_model())
    listing = folder / "files.f"
    lines = [f"// {hw.name}, {kind} variant: multipliers as the device's DSP primitives",
             f"rtl/{hw.name}.v", SIM_MARK, "sim/MULT18X18D.v"]
    lines += [f"{MEM_LINE}rtl/{m.name}" for m in mems]
    listing.write_text("\n".join(lines) + "\n")
    return listing


def synthesis_files(listing) -> list[Path]:
    """The sources of a variant's ``files.f`` that synthesis reads: those before the
    simulation-model line."""
    listing = Path(listing)
    files = []
    for line in listing.read_text().splitlines():
        if line.strip() == SIM_MARK:
            break
        if line.strip() and not line.startswith("//"):
            files.append(listing.parent / line.strip())
    return files
