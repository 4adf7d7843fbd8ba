"""Which design names the emitted Verilog can carry.

A spec's ``name`` becomes the top module's name, the prefix of every generated file
(``rtl/<name>.v``, Verilator's ``V<name>...`` sources) and of the testbench. It must not
be a Verilog / SystemVerilog keyword (Verilator parses the emitted Verilog as
SystemVerilog, so ``logic`` or ``bit`` are refused too), nor the name of a port of the
top level, and it is limited to :data:`MAX_NAME_LENGTH` characters (file names).
"""
from __future__ import annotations

__all__ = ["MAX_NAME_LENGTH", "SV_KEYWORDS", "TOP_PORTS", "name_problem"]

#: longest design name (Verilator adds ~60 characters to it in its file names)
MAX_NAME_LENGTH = 64

#: the ports of every emitted top level: clock, reset and the stream names (each as
#: ``<stream>__valid`` / ``__ready`` / ``__payload``) of the head and the stacks
TOP_PORTS = frozenset({"clk", "rst", "q", "k", "v", "o", "x", "y"})

#: IEEE 1800-2017 (SystemVerilog) reserved keywords, which include all of IEEE 1364-2005
SV_KEYWORDS = frozenset("""
accept_on alias always always_comb always_ff always_latch and assert assign assume
automatic before begin bind bins binsof bit break buf bufif0 bufif1 byte case casex casez
cell chandle checker class clocking cmos config const constraint context continue cover
covergroup coverpoint cross deassign default defparam design disable dist do edge else end
endcase endchecker endclass endclocking endconfig endfunction endgenerate endgroup
endinterface endmodule endpackage endprimitive endprogram endproperty endspecify
endsequence endtable endtask enum event eventually expect export extends extern final
first_match for force foreach forever fork forkjoin function generate genvar global
highz0 highz1 if iff ifnone ignore_bins illegal_bins implements implies import incdir
include initial inout input inside instance int integer interconnect interface
intersect join join_any join_none large let liblist library local localparam logic
longint macromodule matches medium modport module nand negedge nettype new nexttime nmos
nor noshowcancelled not notif0 notif1 null or output package packed parameter pmos
posedge primitive priority program property protected pull0 pull1 pulldown pullup
pulsestyle_ondetect pulsestyle_onevent pure rand randc randcase randsequence rcmos real
realtime ref reg reject_on release repeat restrict return rnmos rpmos rtran rtranif0
rtranif1 s_always s_eventually s_nexttime s_until s_until_with scalared sequence
shortint shortreal showcancelled signed small soft solve specify specparam static string
strong strong0 strong1 struct super supply0 supply1 sync_accept_on sync_reject_on table
tagged task this throughout time timeprecision timeunit tran tranif0 tranif1 tri tri0
tri1 triand trior trireg type typedef union unique unique0 unsigned until until_with
untyped use uwire var vectored virtual void wait wait_order wand weak weak0 weak1 while
wildcard wire with within wor xnor xor
""".split())


def name_problem(name: str) -> str | None:
    """Why ``name`` (already an identifier) cannot name a design, or None."""
    if len(name) > MAX_NAME_LENGTH:
        return (f"{len(name)} characters long; at most {MAX_NAME_LENGTH} (it names the "
                "generated files)")
    if name in TOP_PORTS:
        return (f"{name!r} is the name of a port of the top level "
                f"({', '.join(sorted(TOP_PORTS))}); choose another name")
    if name in SV_KEYWORDS:
        return f"{name!r} is a Verilog/SystemVerilog keyword; choose another name"
    return None
