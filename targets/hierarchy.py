"""Which part of an attnflow design a tool's cell or net name belongs to.

Amaranth writes one Verilog module per component, named by its place in the hierarchy
(``<top>.<instance>[.<submodule>...]``), and each template instance and channel of the
top is one instance named as in the HwGraph (templates by instance name, channels as
``ch_<channel>``). When Yosys flattens the design it keeps those names as prefixes
(``l0_lin_q0.acc``, ``$flatten\\l0_lin_q0.$abc$...``), so the first component of a
hierarchical name is the *owner*: the template instance or channel that holds the cell.
A name without a known first component belongs to the top itself (out of context, the
top *is* one template instance).

Net source attributes (``file.v:LINE.COL-LINE.COL``) locate a net in the Verilog; the
module declared around that line names its owner too.
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from pathlib import Path

_MODULE = re.compile(r"^module\s+(\\\S+|[A-Za-z_][A-Za-z0-9_$]*)\s*[(;]")
_SOURCE = re.compile(r"(?P<file>[^:|]+):(?P<line>\d+)\.\d+")


@dataclass(frozen=True)
class Hierarchy:
    """The module structure of an emitted design: its top, the top's first-level
    instances (template instances and channels) and where each module starts."""
    top: str
    children: frozenset
    files: frozenset               # basenames of the Verilog files read
    starts: tuple                  # ((file basename, first line, module name), ...) sorted

    @classmethod
    def of_verilog(cls, files, top: str, instances: bool = True) -> "Hierarchy":
        """``instances``: the top's children are the owners (a whole attnflow design);
        False: the top owns everything (one template instance emitted on its own, whose
        children are its own parts: sequencer, stores)."""
        starts, children, names = [], set(), set()
        for path in files:
            path = Path(path)
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                m = _MODULE.match(line)
                if m:
                    name = m.group(1).lstrip("\\")
                    starts.append((path.name, number, name))
                    names.add(path.name)
                    if name.startswith(top + "."):
                        children.add(name[len(top) + 1:].split(".")[0])
        return cls(top, frozenset(children if instances else ()), frozenset(names),
                   tuple(sorted(starts)))

    def owner(self, name: str) -> str:
        """The first-level instance a hierarchical cell or net name lies in, else the top."""
        first = first_component(name)
        return first if first in self.children else self.top

    def module_at(self, file: str, line: int) -> str | None:
        """The Verilog module whose text holds ``file``:``line`` (None: not a design file)."""
        base = Path(file).name
        if base not in self.files:
            return None
        i = bisect.bisect_right(self.starts, (base, line, "\uffff")) - 1
        if i < 0 or self.starts[i][0] != base:
            return None
        return self.starts[i][2]

    def owner_of_module(self, module: str) -> str:
        if module.startswith(self.top + "."):
            return module[len(self.top) + 1:].split(".")[0]
        return self.top

    def owners_of_sources(self, sources) -> list:
        """Owners of the design lines in ``sources`` (``file:line.col-...`` strings)."""
        out = []
        for text in sources:
            for m in _SOURCE.finditer(text):
                module = self.module_at(m.group("file"), int(m.group("line")))
                if module is not None:
                    owner = self.owner_of_module(module)
                    if owner not in out:
                        out.append(owner)
        return out


def first_component(name: str) -> str:
    """``l0_lin_q0.acc`` -> ``l0_lin_q0``; Yosys' flattened private names
    (``$flatten\\l0_qk0.\\seq.$abc$1``) -> ``l0_qk0``; a name without a dot -> itself."""
    text = name
    if text.startswith("$flatten"):
        text = text[len("$flatten"):]
    text = text.lstrip("\\")
    return text.split(".", 1)[0].lstrip("\\")
