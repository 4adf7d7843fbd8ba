"""``attnflow verify DIR --inputs FILE``: re-simulate a build on user vectors and write
the testbench vectors for them (``tb/vectors_inputs.json``), so the RTL is checked on the
same values the golden model and the simulator used."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from .ir.spec import load_spec


def resimulate_on_inputs(out: Path, inputs_file: str):
    """The vectors file for ``inputs_file`` (a SpecError names a bad file), or None after
    one ``error:`` line when the simulation deadlocks or differs from the golden model."""
    from .api import prepare
    from .build import check_golden, vectors as make_vectors
    from .hdl.testbench import write_testbench
    spec = load_spec(out / "spec.yaml", [("inputs.file", os.path.abspath(inputs_file))])
    design = prepare(spec)
    result = design.simulate()
    if result.deadlock:
        print(f"error: {result.deadlock.describe()}", file=sys.stderr)
        return None
    mismatches = check_golden(design, result)
    if mismatches:
        print(f"error: {inputs_file}: the simulator differs from the golden model in "
              f"{mismatches} elements on these inputs", file=sys.stderr)
        return None
    path = write_testbench(out, make_vectors(result), vectors_name="vectors_inputs.json")
    print(f"[attnflow] inputs {inputs_file}: {result.total_cycles} cycles simulated, "
          f"golden mismatches 0; testbench vectors {path}")
    return path.resolve()
