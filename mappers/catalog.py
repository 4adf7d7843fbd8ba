"""The template registry: one definition per template, read by every part of attnflow.

A template is defined once, in its family's module under ``templates/``
(``attnflow.templates.<family>``), as a :class:`TemplateDef` holding its facets:

* ``latency``: cycles from a firing to its output being visible: a number, or a
  function of the template's parameters for a pipelined datapath whose stage count
  depends on them (an adder tree over d, a divider over its quotient bits, a chain of
  lanes). Every contract, FIFO depth rule, pipeline fill and closed-form cycle model
  reads it through :func:`latency` (or from a mapped instance's contract) when it is
  built, never a copy taken at import, so a latency is written exactly once, in its
  TemplateDef (``tests/test_catalog.py`` raises each one and checks that the cycle
  models still equal the simulator);
* ``contract``: the function (or parameter class) building its timing contract from its
  parameters (read by the mappers);
* ``model``: its behavioural model for the simulator (``sim.run``), token values in, token
  values out;
* ``component``: its Amaranth component class (``hdl.top``), built from an Instance, the
  attention numerics and its port layouts;
* ``resources``: its resource model (``targets.estimate``).

:data:`FAMILIES` lists the family modules, one line each; :data:`TEMPLATES` (name ->
TemplateDef) is built from their ``TEMPLATE_DEFS`` on first use. The families import this
module (for :class:`TemplateDef` and :func:`latency`), so it imports them lazily, never at
its own import: that is what breaks the cycle. A template lacking a facet, or with a facet
of the wrong kind, cannot be defined (``TemplateDef`` checks); an unknown template is an
error naming the registry (``tests/test_catalog.py`` walks it), never "counted as 0".
"""
from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass

from amaranth.lib import wiring

FACETS = ("contract", "model", "component", "resources")

#: the template families, one module each: ``attnflow.templates.<name>``, defining its
#: templates in ``TEMPLATE_DEFS``. A new family is its module plus one line here.
FAMILIES = (
    "online",      # qk_scores, kv_replay, online_softmax_pv, normalize
    "naive",       # row_max, sub_exp, row_sum, recip_mul, pv_accum
    "window",      # qk_window, kv_window, softmax_window (window and causal heads)
    "decode",      # qk_decode, kv_decode, softmax_decode
    "split",       # qk_slice, kv_slice, softmax_slice, combine
    "linear",      # linear (PE x SIMD folded MAC array)
    "norm",        # layernorm, rmsnorm
    "activation",  # activation (gelu, relu, rescale)
    "residual",    # residual_add
    "wires",       # fork, concat, split_rows
)


def _facet_problem(what: str, ref) -> str | None:
    """Why ``ref`` cannot be the ``what`` facet (None: it can)."""
    if what == "component":
        ok = isinstance(ref, type) and issubclass(ref, wiring.Component)
        return None if ok else "an Amaranth component class (a wiring.Component subclass)"
    return None if callable(ref) else "callable"


@dataclass(frozen=True)
class TemplateDef:
    name: str
    latency: object     # cycles from firing to visible output (>= 1), or a function of
                        # the parameters giving them
    contract: object    # builds the Contract (a function, or a parameter class)
    model: object       # (inst, numerics, inputs) -> outputs
    component: object   # Amaranth component class: (inst, numerics, port layouts)
    resources: object   # (NodeModel, inst, hw) -> None
    what: str = ""      # one line: what its latency is made of

    def __post_init__(self):
        lat = self.latency
        if not callable(lat) and (isinstance(lat, bool) or not isinstance(lat, int) or lat < 1):
            raise ValueError(f"template {self.name}: latency must be an integer >= 1 or a "
                             f"function of the parameters, got {lat!r}")
        for f in FACETS:
            ref = getattr(self, f)
            problem = _facet_problem(f, ref)
            if problem:
                raise ValueError(f"template {self.name}: facet {f} must be {problem}, "
                                 f"got {ref!r}")


_registry: dict[str, TemplateDef] | None = None


def _load() -> dict[str, TemplateDef]:
    """name -> TemplateDef of every family's templates (imported on first use)."""
    global _registry
    if _registry is None:
        defs = {}
        for family in FAMILIES:
            module = importlib.import_module(f"attnflow.templates.{family}")
            family_defs = getattr(module, "TEMPLATE_DEFS", ())
            if not family_defs or not all(isinstance(d, TemplateDef) for d in family_defs):
                raise ValueError(f"family {family} (templates/{family}.py) must define "
                                 "TEMPLATE_DEFS, a tuple of TemplateDef")
            for d in family_defs:
                if d.name in defs:
                    raise ValueError(f"template {d.name} is defined twice (family {family})")
                defs[d.name] = d
        _registry = defs
    return _registry


def __getattr__(name: str):
    if name == "TEMPLATES":       #: template name -> definition, built on first use
        return _load()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class UnknownTemplate(KeyError):
    def __str__(self):
        return (f"template {self.args[0]!r} is not in the registry (mappers.catalog); "
                f"known: {', '.join(_load())}")


def get(name: str) -> TemplateDef:
    try:
        return _load()[name]
    except KeyError:
        raise UnknownTemplate(name) from None


#: extra latency per template, within :func:`slower` (experiments and the tests that check
#: every cycle model follows a latency change)
_extra: dict[str, int] = {}


def latency(name: str, **params) -> int:
    """The template's latency (cycles from firing to visible output); ``params``: the
    parameters a function latency depends on (a number ignores them)."""
    lat = get(name).latency
    if callable(lat):
        try:
            lat = lat(**params)
        except TypeError as e:
            raise TypeError(f"template {name}: latency needs its parameters: {e}") from None
    lat += _extra.get(name, 0)
    if lat < 1:
        raise ValueError(f"template {name}: latency {lat} < 1")
    return lat


def facet(name: str, what: str):
    """The template's ``what`` facet (one of :data:`FACETS`)."""
    if what not in FACETS:
        raise ValueError(f"facet must be one of {FACETS}, got {what!r}")
    return getattr(get(name), what)


@contextlib.contextmanager
def slower(**extra: int):
    """Within the block, the named templates are ``extra`` cycles slower than defined (for
    experiments and the tests that check every cycle model follows a latency change):
    designs mapped inside the block carry the longer latencies, in the simulator, the HDL
    (a longer register line in the output channel) and the cycle models alike."""
    for n in extra:
        get(n)
    saved = dict(_extra)
    try:
        for n, k in extra.items():
            _extra[n] = _extra.get(n, 0) + k
        yield
    finally:
        _extra.clear()
        _extra.update(saved)


@contextlib.contextmanager
def latencies(**changes: int):
    """Within the block, the named templates (of a fixed latency) have the given
    latencies: :func:`slower` by the difference."""
    extra = {}
    for n, lat in changes.items():
        base = get(n).latency
        if callable(base):
            raise ValueError(f"latencies({n}=...): its latency depends on its parameters; "
                             f"use slower({n}=k)")
        extra[n] = lat - base
    with slower(**extra):
        yield
