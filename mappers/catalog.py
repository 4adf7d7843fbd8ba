"""The template registry: one definition per template, read by every part of attnflow.

Each :class:`TemplateDef` names a template's facets once:

* ``latency``: cycles from a firing to its output being visible (carried by the output
  channel). Every contract, FIFO depth rule, pipeline fill and closed-form cycle model
  reads it through :func:`latency` when it is built, never a copy taken at import, so a
  latency is written exactly here (``tests/test_catalog.py`` raises each one and checks
  that the cycle models still equal the simulator);
* ``contract``: the function building its timing contract from its parameters
  (``mappers``);
* ``model``: its behavioural model for the simulator (``sim``), token values in, token
  values out;
* ``component``: its Amaranth component (``hdl``), built from an Instance and its HwGraph;
* ``resources``: its resource model (``targets.estimate``).

Facets are ``module:attribute`` references resolved on first use (:func:`facet`), so the
mappers do not import Amaranth and no facet module imports another's. A template without
one of the facets cannot be defined (``TemplateDef`` checks), and a facet that does not
resolve is an error naming the template and the reference (``tests/test_catalog.py``
walks the registry), never "counted as 0".
"""
from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass

FACETS = ("contract", "model", "component", "resources")


@dataclass(frozen=True)
class TemplateDef:
    name: str
    #: cycles from firing to visible output (>= 1): a number, or a function of the
    #: template's parameters (keyword arguments) for a pipelined datapath whose stage count
    #: depends on them (e.g. an adder tree over d, a divider over its quotient bits)
    latency: object
    contract: str       # "module:function" building the Contract
    model: str          # "module:function" (inst, numerics, inputs) -> outputs
    component: str      # "module:class" (inst, hw) -> Amaranth component
    resources: str      # "module:function" (NodeModel, inst, hw) -> None
    what: str = ""      # one line: what its latency is made of

    def __post_init__(self):
        lat = self.latency
        if isinstance(lat, str):
            if lat.count(":") != 1:
                raise ValueError(f"template {self.name}: latency must be an integer, a "
                                 f"function or 'module:function', got {lat!r}")
        elif not callable(lat) and (isinstance(lat, bool) or not isinstance(lat, int)
                                    or lat < 1):
            raise ValueError(f"template {self.name}: latency must be an integer >= 1 or a "
                             f"function of the parameters, got {lat!r}")
        for f in FACETS:
            ref = getattr(self, f)
            if not isinstance(ref, str) or ref.count(":") != 1:
                raise ValueError(f"template {self.name}: facet {f} must be 'module:attribute', "
                                 f"got {ref!r}")


_M, _S, _H, _E = "attnflow.mappers", "attnflow.sim", "attnflow.hdl", "attnflow.targets.estimate"


_t = TemplateDef


_DEFS = (
    # ---- the full head (mappers.templates, sim.models, hdl.templates)
    _t("qk_scores", f"{_H}.online_pipe:qk_latency", f"{_M}.templates:qk_scores",
       f"{_S}.models:qk_scores", f"{_H}.online_pipe:QKScores", f"{_E}:qk_resources",
       "K memory read, d products, adder tree, scale product, rounding: each registered"),
    _t("kv_replay", f"{_H}.online_pipe:kv_latency", f"{_M}.templates:kv_replay",
       f"{_S}.models:kv_replay", f"{_H}.online_pipe:KVReplay", f"{_E}:kv_resources",
       "V memory read (registered)"),
    _t("online_softmax_pv", f"{_H}.online_pipe:softmax_latency",
       f"{_M}.templates:online_softmax_pv", f"{_S}.models:online_softmax_pv",
       f"{_H}.online_pipe:OnlineSoftmaxPV", f"{_E}:softmax_resources",
       "running max, |x - m|, exp, then per lane the products and the add; rows "
       "interleaved so a row's state comes round once per its update's depth"),
    _t("normalize", f"{_H}.online_pipe:normalize_latency", f"{_M}.templates:normalize",
       f"{_S}.models:normalize", f"{_H}.online_pipe:Normalize", f"{_E}:normalize_resources",
       "restoring divider (a quotient bit a stage), d products, rounding, saturation"),
    _t("row_max", 1, f"{_M}.templates:row_max", f"{_S}.models:row_max",
       f"{_H}.templates:RowMax", f"{_E}:row_max_resources"),
    _t("sub_exp", 2, f"{_M}.templates:sub_exp", f"{_S}.models:sub_exp",
       f"{_H}.templates:SubExp", f"{_E}:sub_exp_resources",
       "subtract, log2e multiply, ROM, shift"),
    _t("row_sum", 1, f"{_M}.templates:row_sum", f"{_S}.models:row_sum",
       f"{_H}.templates:RowSum", f"{_E}:row_sum_resources"),
    _t("recip_mul", 4, f"{_M}.templates:recip_mul", f"{_S}.models:recip_mul",
       f"{_H}.templates:RecipMul", f"{_E}:recip_mul_resources",
       "reciprocal (first score of a row), multiply, round"),
    _t("pv_accum", 2, f"{_M}.templates:pv_accum", f"{_S}.models:pv_accum",
       f"{_H}.templates:PVAccum", f"{_E}:pv_accum_resources",
       "d multipliers, accumulate, round on the last score"),
    # ---- window / causal heads (mappers.window): the full head's datapaths on rings
    _t("qk_window", 3, f"{_M}.window:qk_window", f"{_S}.models_window:qk_window",
       f"{_H}.window:QKWindow", f"{_E}:qk_resources",
       "qk_scores' datapath; ring addressing in the same cycle"),
    _t("kv_window", 1, f"{_M}.window:kv_window", f"{_S}.models_window:kv_window",
       f"{_H}.window:KVWindow", f"{_E}:kv_resources", "ring read"),
    _t("softmax_window", 1, f"{_M}.window:softmax_window",
       f"{_S}.models_window:softmax_window", f"{_H}.window:SoftmaxWindow",
       f"{_E}:softmax_resources", "online_softmax_pv's step, masked slots skipped"),
    # ---- split-context heads (mappers.split)
    _t("split_rows", 1, f"{_M}.split:split_rows", f"{_S}.models_split:split_rows",
       f"{_H}.split:SplitRows", f"{_E}:wires_resources", "a register"),
    _t("qk_slice", 3, f"{_M}.split:qk_slice", f"{_S}.models_split:qk_slice",
       f"{_H}.templates:QKScores", f"{_E}:qk_resources", "qk_scores over a slice of keys"),
    _t("kv_slice", 1, f"{_M}.split:kv_slice", f"{_S}.models_split:kv_slice",
       f"{_H}.templates:KVReplay", f"{_E}:kv_resources", "memory read"),
    _t("softmax_slice", 1, f"{_M}.split:softmax_slice", f"{_S}.models_split:softmax_slice",
       f"{_H}.split:SoftmaxSlice", f"{_E}:softmax_resources",
       "online_softmax_pv's step; emits the partial state (o, l, m)"),
    _t("combine", 2, f"{_M}.split:combine_contract", f"{_S}.models_split:combine",
       f"{_H}.split:Combine", f"{_E}:combine_resources",
       "max, two exps, d + 1 scaled adds of the (m, l, O) combine"),
    # ---- decode mode (mappers.decode)
    _t("qk_decode", 3, f"{_M}.decode:qk_decode", f"{_S}.models_decode:qk_decode",
       f"{_H}.decode:QKDecode", f"{_E}:qk_resources", "qk_scores over the KV cache"),
    _t("kv_decode", 1, f"{_M}.decode:kv_decode", f"{_S}.models_decode:kv_decode",
       f"{_H}.decode:KVDecode", f"{_E}:kv_resources", "cache read"),
    _t("softmax_decode", 1, f"{_M}.decode:softmax_decode", f"{_S}.models_decode:softmax_decode",
       f"{_H}.templates:OnlineSoftmaxPV", f"{_E}:softmax_resources", "online_softmax_pv's step"),
    # ---- encoder templates (mappers.linear, mappers.rowops, mappers.encoder)
    _t("linear", 2, f"{_M}.linear:LinearParams", f"{_S}.models_linear:linear",
       f"{_H}.linear:Linear", f"{_E}:linear_resources",
       "PE x SIMD multipliers and adder tree, then bias + requantization, round, saturate"),
    _t("layernorm", 4, f"{_M}.rowops:NormParams", f"{_S}.models_rowops:layernorm",
       f"{_H}.rowops:LayerNorm", f"{_E}:norm_resources",
       "sums, variance, normalized isqrt, reciprocal, D multipliers, round"),
    _t("rmsnorm", 4, f"{_M}.rowops:NormParams", f"{_S}.models_rowops:rmsnorm",
       f"{_H}.rowops:LayerNorm", f"{_E}:norm_resources", "layernorm without the mean"),
    _t("activation", 2, f"{_M}.rowops:ActivationParams", f"{_S}.models_rowops:activation",
       f"{_H}.rowops:Activation", f"{_E}:activation_resources",
       "GELU ROM read or polynomial (3 multipliers), output rounding"),
    _t("residual_add", 1, f"{_M}.rowops:ResidualParams", f"{_S}.models_rowops:residual_add",
       f"{_H}.rowops:ResidualAdd", f"{_E}:residual_resources",
       "two rescales, one add, saturation"),
    _t("fork", 1, f"{_M}.rowops:ForkParams", f"{_S}.models_rowops:fork",
       f"{_H}.rowops:Fork", f"{_E}:wires_resources", "a register"),
    _t("concat", 1, f"{_M}.encoder:concat_instance", f"{_S}.models_encoder:concat",
       f"{_H}.encoder_ops:Concat", f"{_E}:wires_resources", "one register"),
)

#: template name -> definition
TEMPLATES: dict[str, TemplateDef] = {d.name: d for d in _DEFS}
if len(TEMPLATES) != len(_DEFS):
    raise ValueError("mappers.catalog: a template is defined twice")

_resolved: dict[tuple[str, str], object] = {}


class UnknownTemplate(KeyError):
    def __str__(self):
        return (f"template {self.args[0]!r} is not in the registry (mappers.catalog); "
                f"known: {', '.join(TEMPLATES)}")


def get(name: str) -> TemplateDef:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise UnknownTemplate(name) from None


#: extra latency per template, within :func:`slower` (experiments and the tests that check
#: every cycle model follows a latency change)
_extra: dict[str, int] = {}


def latency(name: str, **params) -> int:
    """The template's latency (cycles from firing to visible output); ``params``: the
    parameters its latency depends on (a function latency), ignored by a number."""
    lat = get(name).latency
    if isinstance(lat, str):
        lat = _resolve(name, "latency", lat)
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
    """The template's ``what`` facet (one of :data:`FACETS`), imported on first use."""
    if what not in FACETS:
        raise ValueError(f"facet must be one of {FACETS}, got {what!r}")
    return _resolve(name, what, getattr(get(name), what))


def _resolve(name: str, what: str, ref: str):
    key = (name, ref)
    if key not in _resolved:
        module, attr = ref.split(":")
        try:
            _resolved[key] = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise LookupError(f"template {name}: facet {what} = {ref} does not resolve: {e}") \
                from None
    return _resolved[key]


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
