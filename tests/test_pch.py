"""run_tb.py drops Verilator's precompiled headers after a run and, for a rerun of the
same RTL and options, puts back empty stand-ins with the old times (make then reuses the
compiled model); a different key leaves them out so make rebuilds them."""
import json
import os

from attnflow.hdl.tb_files.run_tb import (PCH_MARKER, drop_precompiled_headers,
                                          restore_header_stamps)


def _gch(d, name, size, mtime):
    p = d / name
    p.write_bytes(b"x" * size)
    os.utime(p, (mtime, mtime))
    return p


def test_drop_then_restore_same_key(tmp_path):
    _gch(tmp_path, "Vtop__pch.h.fast.gch", 1000, 1_700_000_000)
    _gch(tmp_path, "Vtop__pch.h.slow.gch", 2000, 1_700_000_005)
    drop_precompiled_headers(tmp_path, "k1")
    assert not list(tmp_path.glob("*.gch"))
    assert json.loads((tmp_path / PCH_MARKER).read_text()) == {
        "key": "k1", "mtimes": {"Vtop__pch.h.fast.gch": 1_700_000_000,
                                "Vtop__pch.h.slow.gch": 1_700_000_005}}
    restore_header_stamps(tmp_path, "k1")
    fast = tmp_path / "Vtop__pch.h.fast.gch"
    assert fast.read_bytes() == b"" and fast.stat().st_mtime == 1_700_000_000
    assert (tmp_path / "Vtop__pch.h.slow.gch").stat().st_mtime == 1_700_000_005
    assert not (tmp_path / PCH_MARKER).exists()
    # after the rerun the stand-ins are dropped again and remembered with the same times
    drop_precompiled_headers(tmp_path, "k1")
    assert json.loads((tmp_path / PCH_MARKER).read_text())["mtimes"][
        "Vtop__pch.h.fast.gch"] == 1_700_000_000


def test_other_key_rebuilds(tmp_path):
    _gch(tmp_path, "Vtop__pch.h.fast.gch", 10, 1_700_000_000)
    drop_precompiled_headers(tmp_path, "k1")
    restore_header_stamps(tmp_path, "k2")
    assert not list(tmp_path.glob("*.gch")) and not (tmp_path / PCH_MARKER).exists()
