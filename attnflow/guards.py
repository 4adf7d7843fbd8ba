"""Entry checks shared by the commands: problems found deep in the numerics or on the
file system, turned into the promised one line (``error: <source>: <field>: <what>``).

* :func:`numerics_errors` -- the width checks of the integer datapath (``formats.prob_frac:
  the datapath needs 69-bit intermediates ...``) raise ``ValueError("<field>: <what>")``
  (or ``"<template>: <field>: <what>"``); inside this context they become SpecErrors on
  that field, as the attention-head path already reports them.
* :func:`output_folder` -- ``build -o DIR`` checked before anything is computed: DIR is
  not a file, not under a file, writable, and its name is not too long.
* :class:`OneLineParser`, :func:`seed`, :func:`not_empty` -- command-line usage errors
  on one line with exit 2, a negative ``--stall-seed``, empty arguments.
"""
from __future__ import annotations

import argparse
import errno
import os
import re
from contextlib import contextmanager
from pathlib import Path

from .ir.spec import SpecError

__all__ = ["OneLineParser", "not_empty", "numerics_errors", "output_folder", "seed"]

_FIELD_MESSAGE = re.compile(
    r"^(?:[a-z_]+: )?((?:model|formats|hardware|schedule|inputs)(?:\.[A-Za-z0-9_]+)+): (.+)$",
    re.DOTALL)


@contextmanager
def numerics_errors(spec):
    """Turn a numerics ``ValueError`` that names a spec field into a SpecError on it; any
    other exception passes unchanged (it is a bug, not a bad spec)."""
    try:
        yield
    except SpecError:
        raise
    except ValueError as e:
        m = _FIELD_MESSAGE.match(str(e))
        if m is None:
            raise
        raise SpecError(spec.source, m.group(1), m.group(2)) from None


def output_folder(path) -> None:
    """Refuse (SpecError on ``-o``) an output folder that cannot be created or written."""
    text = str(path)
    if not text:
        raise SpecError("<command line>", "-o", "the output folder name is empty")
    p = Path(text)
    for part in p.parts:
        if len(os.fsencode(part)) > 255:
            raise SpecError("<command line>", "-o", f"a folder name of {len(part)} characters "
                                                    "is too long for the file system (255 bytes)")
    if p.exists() and not p.is_dir():
        raise SpecError("<command line>", "-o", f"{p} is a file, not a folder; give a folder "
                                                "(it is created if missing)")
    parent = p
    while not parent.exists():
        if parent.is_symlink():
            raise SpecError("<command line>", "-o", f"{parent} is a dangling symbolic link")
        parent = parent.parent
    if not parent.is_dir():
        raise SpecError("<command line>", "-o", f"{parent} is a file, so {p} cannot be "
                                                "created under it")
    if not os.access(parent, os.W_OK | os.X_OK):
        what = "is not writable" if parent == p else f"cannot be created: {parent} is not writable"
        raise SpecError("<command line>", "-o", f"{p} {what}")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        why = os.strerror(e.errno) if e.errno else str(e)
        if e.errno == errno.ENAMETOOLONG:
            why = "the path is too long for the file system"
        raise SpecError("<command line>", "-o", f"cannot create {p}: {why}") from None


# ----------------------------------------------------------------------------- command line

class OneLineParser(argparse.ArgumentParser):
    """argparse with usage errors as the promised single line, exit 2:
    ``error: attnflow build: the following arguments are required: -o/--output``
    (``--help`` still prints the usage)."""

    def error(self, message):
        line = " ".join(f"{self.prog}: {message}".split())
        self.exit(2, f"error: {line} (see {self.prog} --help)\n")


def seed(text: str) -> int:
    """argparse type of a random seed: an integer >= 0."""
    try:
        value = int(text, 10)
    except ValueError:
        value = -1
    if value < 0 or len(text) > MAX_SEED_DIGITS:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


#: longest seed accepted (numpy seeds any non-negative integer; 40 digits ~ 2**128)
MAX_SEED_DIGITS = 40


def not_empty(what: str, value) -> None:
    """Refuse an empty command-line argument by name (``--target ''``, a spec ``''``)."""
    if value is not None and not str(value).strip():
        raise SpecError("<command line>", what, "is empty; give a value")
