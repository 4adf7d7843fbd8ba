"""Strict readers for every YAML and JSON file attnflow reads (specs, ``--set`` values,
device files, Hugging Face ``config.json``, safetensors headers).

Values are checked where they enter, so no later stage sees a number it cannot handle:

* YAML is read with the YAML 1.2 core schema: ``true``/``false`` are the booleans,
  ``010`` is not octal, ``1:30`` is not 90.  The YAML 1.1 forms PyYAML would read as
  numbers or booleans (``yes``/``no``/``on``/``off``, leading-zero and ``0b`` integers,
  ``1_000``, sexagesimal ``1:30``) are refused, with what to write instead, rather than
  silently read as strings.
* A key repeated in one mapping is refused (YAML and JSON); merge keys (``<<: *base``)
  work, and an explicit key overrides a merged one, as YAML defines.
* Non-finite numbers (``.nan``, ``.inf``, JSON ``NaN``/``Infinity``, ``1e400``) are refused.
* Integers are limited to :data:`MAX_INT_DIGITS` digits (Python's int-from-text limit
  would otherwise raise deep inside), nesting to :data:`MAX_DEPTH` levels, and what
  YAML aliases expand to, to :data:`MAX_NODES` nodes (a "billion laughs" file).

YAML problems are raised as ``yaml.YAMLError`` (with ``problem`` and ``problem_mark``,
as PyYAML's own), JSON problems as :class:`ReadError` (a ``ValueError``), so callers
keep one ``except`` each and put the message on one line.
"""
from __future__ import annotations

import json
import math
import os
import re
from typing import Any

import yaml
from yaml.constructor import ConstructorError

__all__ = ["MAX_DEPTH", "MAX_INT_DIGITS", "MAX_NODES", "NOT_FOUND", "ReadError",
           "file_problem", "json_load", "yaml_load", "yaml_problem"]

#: deepest nesting of mappings and lists in a file
MAX_DEPTH = 64
#: most digits of an integer written in a file
MAX_INT_DIGITS = 100
#: most nodes a YAML document may expand to once its aliases are followed
MAX_NODES = 100_000


class ReadError(ValueError):
    """A JSON text attnflow refuses; ``str(e)`` is one line without the file name."""


# ----------------------------------------------------------------------------- YAML

_YAML11_ONLY = "tag:attnflow,2026:yaml11"

#: YAML 1.1 plain scalars that PyYAML reads as a number or boolean and YAML 1.2 does not
#: (or reads differently), and what to write instead
_YAML11_FORMS = (
    (re.compile(r"^(?:yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF|y|Y|n|N)$"),
     "a YAML 1.1 boolean; write true or false (or quote it for text)"),
    (re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$"),
     "a YAML 1.1 base-60 number; write the number itself (or quote it for text)"),
    (re.compile(r"^[-+]?0b[0-1_]+$"),
     "a YAML 1.1 binary integer; write it in decimal (or quote it for text)"),
    (re.compile(r"^[-+]?0[0-9_]+$"),
     "an integer with a leading zero (YAML 1.1 reads it as octal); write it without the "
     "leading zero, or 0o... for octal (or quote it for text)"),
    (re.compile(r"^[-+]?(?:[0-9][0-9_]*_[0-9_]*|[0-9_]*_[0-9_]*\.[0-9_]*|[0-9]+\.[0-9_]*_[0-9_]*)"
                r"(?:[eE][-+]?[0-9]+)?$"),
     "a number with '_' separators (YAML 1.1 only); write it without them (or quote it "
     "for text)"),
)

_CORE_RESOLVERS = (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?(?:0|[1-9][0-9]*)|0o[0-7]+|0x[0-9a-fA-F]+)$",
     "-+0123456789"),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
     r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", "-+0123456789."),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:merge", r"^(?:<<)$", "<"),
)


def _digits_ok(text: str, mark) -> None:
    digits = len(text.lstrip("+-"))
    if digits > MAX_INT_DIGITS:
        raise ConstructorError(None, None, f"an integer of {digits} digits; at most "
                                           f"{MAX_INT_DIGITS} digits are read", mark)


class StrictLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema scalars, refusing repeated keys, non-finite
    numbers, over-long integers, deep nesting and alias bombs (see the module docstring)."""

    yaml_implicit_resolvers: dict = {}

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable key: let SafeLoader report it
                break
            if duplicate:
                raise ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node):
        text = self.construct_scalar(node)
        _digits_ok(text, node.start_mark)
        sign = -1 if text.startswith("-") else 1
        body = text.lstrip("+-")
        if body.startswith("0o"):
            return sign * int(body[2:], 8)
        if body.startswith("0x"):
            return sign * int(body[2:], 16)
        return sign * int(body)

    def construct_yaml_float(self, node):
        text = self.construct_scalar(node)
        value = float(text.replace(".inf", "inf").replace(".Inf", "inf").replace(".INF", "inf")
                      .replace(".nan", "nan").replace(".NaN", "nan").replace(".NAN", "nan"))
        if not math.isfinite(value):
            raise ConstructorError(None, None, f"{text} is not a finite number; give a finite "
                                               "number", node.start_mark)
        return value

    def construct_yaml_bool(self, node):
        return self.construct_scalar(node).lower() == "true"

    def construct_yaml11(self, node):
        text = self.construct_scalar(node)
        why = next(msg for rx, msg in _YAML11_FORMS if rx.match(text))
        raise ConstructorError(None, None, f"{text} is {why}", node.start_mark)

    def construct_document(self, node):
        _check_tree(node)
        return super().construct_document(node)


for _rx, _ in _YAML11_FORMS:
    StrictLoader.add_implicit_resolver(_YAML11_ONLY, _rx, list("-+0123456789yYnNoO"))
for _tag, _rx, _first in _CORE_RESOLVERS:
    StrictLoader.add_implicit_resolver(_tag, re.compile(_rx), list(_first))
StrictLoader.add_constructor("tag:yaml.org,2002:int", StrictLoader.construct_yaml_int)
StrictLoader.add_constructor("tag:yaml.org,2002:float", StrictLoader.construct_yaml_float)
StrictLoader.add_constructor("tag:yaml.org,2002:bool", StrictLoader.construct_yaml_bool)
StrictLoader.add_constructor(_YAML11_ONLY, StrictLoader.construct_yaml11)


def _check_tree(root) -> None:
    """Depth and alias-expanded size of a composed YAML node tree, without recursion."""
    sizes: dict[int, int] = {}
    stack = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        children = []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        if done:
            total = 1 + sum(sizes[id(c)] for c in children)
            if total > MAX_NODES:
                raise ConstructorError(None, None, f"the document expands to more than "
                                                   f"{MAX_NODES} values (through its aliases)",
                                       node.start_mark)
            sizes[id(node)] = total
            continue
        if id(node) in sizes:
            continue
        if depth > MAX_DEPTH:
            raise ConstructorError(None, None, f"nested deeper than {MAX_DEPTH} levels",
                                   node.start_mark)
        stack.append((node, depth, True))
        stack.extend((c, depth + 1, False) for c in children if id(c) not in sizes)


def yaml_load(text: str) -> Any:
    """``text`` read by :class:`StrictLoader`; problems raise ``yaml.YAMLError``."""
    try:
        return yaml.load(text, Loader=StrictLoader)
    except RecursionError:
        raise ConstructorError(None, None, f"nested deeper than {MAX_DEPTH} levels",
                               None) from None


def yaml_problem(e: yaml.YAMLError, column: bool = True) -> str:
    """A one-line description of a YAML error: its problem and where."""
    mark = getattr(e, "problem_mark", None)
    where = ""
    if mark is not None:
        where = f" at line {mark.line + 1}" + (f", column {mark.column + 1}" if column else "")
    return f"{getattr(e, 'problem', None) or e}{where}"


# ----------------------------------------------------------------------------- JSON

def _pairs(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ReadError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _constant(text):
    raise ReadError(f"{text} is not a finite number; give a finite number")


def _float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ReadError(f"{text} is not a finite number; give a finite number")
    return value


def _int(text):
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise ReadError(f"an integer of {digits} digits; at most {MAX_INT_DIGITS} digits are read")
    return int(text)


def _json_depth_ok(data) -> None:
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise ReadError(f"nested deeper than {MAX_DEPTH} levels")
            items = value.values() if isinstance(value, dict) else value
            stack.extend((v, depth + 1) for v in items)


def json_load(text: str) -> Any:
    """``text`` as JSON, refusing repeated keys, non-finite numbers, over-long integers
    and deep nesting; problems raise :class:`ReadError` (one line, with line and column
    for syntax errors)."""
    try:
        data = json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant,
                          parse_float=_float, parse_int=_int)
    except json.JSONDecodeError as e:
        raise ReadError(f"{e.msg} at line {e.lineno}, column {e.colno}") from None
    except RecursionError:
        raise ReadError(f"nested deeper than {MAX_DEPTH} levels") from None
    _json_depth_ok(data)
    return data


# ----------------------------------------------------------------------------- files

#: :func:`file_problem` of a path where nothing exists, not even a broken link
NOT_FOUND = "does not exist"


def file_problem(path) -> str | None:
    """None if ``path`` is a regular file (or a link to one), else what it is instead:
    :data:`NOT_FOUND`, a dangling symbolic link (what a Hugging Face cache with a
    missing blob looks like), a folder, or another kind of file."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return None
    if os.path.islink(path) and not os.path.exists(path):
        return f"is a dangling symbolic link (to {os.readlink(path)})"
    if os.path.isdir(path):
        return "is a folder, not a file"
    if os.path.exists(path):
        return "is not a regular file"
    return NOT_FOUND
