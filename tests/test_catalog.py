"""The template registry (``mappers.catalog``): every family module (``templates/``) defines
its templates with every facet of the right kind, the designs use only registered
templates, and a latency written in a template's definition is the only one.

The perturbation tests raise one template's latency (+1, +3) and rebuild the designs that
use it: the simulator must still equal the golden model bit for bit, and the closed-form
cycle models (``build._model_fields`` / the stack model ``design.folding.cycles``) must
still equal the simulated cycles exactly. A fill or formula anywhere that copies a
latency instead of reading the registry fails here.
"""
from __future__ import annotations

import importlib

import numpy as np
import pytest
from amaranth.lib import wiring

from attnflow.api import prepare
from attnflow.build import _model_fields
from attnflow.ir.spec import load_spec
from attnflow.mappers import catalog
from attnflow.mappers.catalog import (FACETS, FAMILIES, TEMPLATES, TemplateDef, facet, slower,
                                      latency)
from attnflow.mappers.contracts import Contract
from attnflow.targets.estimate import template_model

HEAD = "examples/sdpa_online.yaml"
ENC = "examples/encoder_tiny.yaml"
DEC = "examples/decoder_tiny.yaml"
SMALL = ["model.head_dim=4"]

#: designs small enough to simulate in well under a second, covering every template;
#: ``naive`` marks the one without a closed-form model in build (its formula is below)
DESIGNS = {
    "online": (HEAD, SMALL + ["model.seq_len=8"]),
    "online_lanes": (HEAD, SMALL + ["model.seq_len=7", "model.attention.lanes=3"]),
    "naive": (HEAD, SMALL + ["model.seq_len=8", "model.attention.variant=naive"]),
    "window": (HEAD, SMALL + ["model.seq_len=12", "model.attention.kind=window",
                              "model.attention.window=3"]),
    "causal": (HEAD, SMALL + ["model.seq_len=9", "model.attention.kind=causal",
                              "model.attention.lanes=4"]),
    "split": (HEAD, SMALL + ["model.seq_len=8", "model.attention.split=4"]),
    "decode": (HEAD, SMALL + ["model.seq_len=8", "model.attention.kind=causal",
                              "model.attention.decode=4"]),
    "encoder": (ENC, ["model.seq_len=6", "model.layers=1"]),
    "encoder_rms_pre": (ENC, ["model.seq_len=6", "model.layers=1", "model.norm=rmsnorm",
                              "model.norm_position=pre", "model.final_norm=true",
                              "model.activation=relu"]),
    "decoder": (DEC, ["model.seq_len=8", "model.layers=1"]),
}


def build(name):
    path, overrides = DESIGNS[name]
    return prepare(load_spec(path, overrides))


def templates_of(design) -> set[str]:
    return {i.template for i in design.hw.instances.values()}


@pytest.fixture(scope="module")
def used():
    """design name -> templates it instantiates (at today's latencies)."""
    return {name: templates_of(build(name)) for name in DESIGNS}


# ---------------------------------------------------------------- the registry itself

@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_template_has_every_facet_of_the_right_kind(name):
    d = TEMPLATES[name]
    assert d.name == name and (callable(d.latency) or isinstance(d.latency, int) and
                               d.latency >= 1)
    assert set(FACETS) == {"contract", "model", "component", "resources"}
    for f in ("contract", "model", "resources"):
        assert callable(facet(name, f)), (name, f)
    component = facet(name, "component")
    assert isinstance(component, type) and issubclass(component, wiring.Component)


def test_the_registry_is_the_family_modules_definitions():
    """TEMPLATES holds exactly the TemplateDefs of the modules FAMILIES lists, each family
    a module of attnflow.templates, each template defined once."""
    names = []
    for family in FAMILIES:
        module = importlib.import_module(f"attnflow.templates.{family}")
        assert module.TEMPLATE_DEFS, family
        for d in module.TEMPLATE_DEFS:
            assert TEMPLATES[d.name] is d
            names.append(d.name)
    assert sorted(names) == sorted(TEMPLATES) and len(names) == len(set(names)) == 27


def test_contract_facet_builds_the_instance_contract(used):
    """Each template's contract facet builds the contract its instances carry (the
    families' own builders, not copies): checked on one instance of every template."""
    seen = {}
    for name in DESIGNS:
        design = build(name)
        nm = design.plans[0].attn if design.kind.stack else design.numerics
        for inst in design.hw.instances.values():
            seen.setdefault(inst.template, (inst, nm))
    assert set(seen) == set(TEMPLATES)
    for t, (inst, nm) in seen.items():
        assert isinstance(inst.contract, Contract) and inst.contract.template == t
        # a function latency reads the numerics and the lanes; a number ignores them
        assert inst.contract.latency == latency(t, nm=nm, lanes=inst.param("lanes") or 1)


def test_designs_use_every_template_and_only_registered_ones(used):
    every = set().union(*used.values())
    assert every == set(TEMPLATES)


def test_a_template_lacking_a_facet_cannot_be_defined():
    from attnflow.templates.online import Normalize, normalize, normalize_model
    from attnflow.templates.online import normalize_resources as res
    with pytest.raises(ValueError, match="template t: facet model must be callable, got ''"):
        TemplateDef("t", 1, normalize, "", Normalize, res)
    with pytest.raises(ValueError, match="template t: facet component must be an Amaranth "
                                         "component class"):
        TemplateDef("t", 1, normalize, normalize_model, normalize, res)
    with pytest.raises(ValueError, match="template t: facet resources must be callable, got None"):
        TemplateDef("t", 1, normalize, normalize_model, Normalize, None)
    with pytest.raises(ValueError, match="template t: latency must be an integer >= 1 or a "
                                         "function of the parameters, got 0"):
        TemplateDef("t", 0, normalize, normalize_model, Normalize, res)


def test_unknown_template_is_an_error_not_zero_resources():
    design = build("online")
    inst = design.hw.instances["qk"]
    bogus = type(inst)(inst.name, "no_such_template", inst.contract, inst.params)
    with pytest.raises(catalog.UnknownTemplate, match="'no_such_template' is not in the registry"):
        template_model(bogus, design.hw)


def test_a_family_without_definitions_or_listed_twice_is_refused(monkeypatch):
    """A family module must define TEMPLATE_DEFS; a template defined twice is refused,
    naming it (the registry is rebuilt from FAMILIES inside the test, then restored)."""
    monkeypatch.setattr(catalog, "_registry", None)
    monkeypatch.setattr(catalog, "FAMILIES", ("online", "rows"))
    with pytest.raises(ValueError, match=r"family rows \(templates/rows.py\) must define "
                                         "TEMPLATE_DEFS"):
        catalog.get("qk_scores")
    monkeypatch.setattr(catalog, "FAMILIES", ("online", "naive", "online"))
    with pytest.raises(ValueError, match="template qk_scores is defined twice "
                                         r"\(family online\)"):
        catalog.get("qk_scores")


def test_split_combine_and_split_rows_have_resource_models():
    """The estimator counted these as 0 before the registry."""
    design = build("split")
    comb = template_model(design.hw.instances["comb0_0"], design.hw)
    # two products by e for l, 2d for O (both sides of the b <= a choice), one exp
    assert [(m.what, m.count) for m in comb.mults] == [("z*log2e", 1), ("l*e", 2), ("o*e", 8)]
    split = template_model(design.hw.instances["ksplit"], design.hw)
    assert split.mults == [] and split.mems == []


# ---------------------------------------------------------------- latency perturbation

def naive_cycles(design) -> int:
    """The naive head without stalls: N K/V loads, N*N scores, the path's latencies
    (input channel, qk, row_max, sub_exp, row_sum, recip_mul, pv_accum), and two row-long
    waits (the row max and the row sum each wait for the rest of their row)."""
    n = design.numerics.seq_len
    path = ("row_max", "sub_exp", "row_sum", "recip_mul", "pv_accum")
    qk = design.hw.instances["qk"].contract.latency
    return n + n * n + 1 + qk + sum(latency(t) for t in path) + 2 * (n - 1)


def expected(name, design) -> int:
    if name == "naive":
        return naive_cycles(design)
    if design.kind.stack:
        assert design.folding.cycles_source != "simulator"
        return design.folding.cycles
    return _model_fields(design)["expected_cycles"]


def check(name, design):
    r = design.simulate()
    assert r.deadlock is None
    (out,) = design.hw.outputs
    assert np.array_equal(r.outputs[out]["x"], design.golden()), name
    assert r.total_cycles == expected(name, design), name
    return r.total_cycles


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_cycle_models_equal_the_simulator(name):
    check(name, build(name))


@pytest.mark.parametrize("delta", [1, 3])
@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_a_latency_change_moves_every_model_with_the_simulator(template, delta, used):
    before = {n: build(n) for n in DESIGNS if template in used[n]}
    assert before, template
    lat0 = {n: {i.name: i.contract.latency for i in d.hw.instances.values()
                if i.template == template} for n, d in before.items()}
    cycles0 = {n: d.simulate().total_cycles for n, d in before.items()}
    with slower(**{template: delta}):
        for name in before:
            design = build(name)
            lat = {i.name: i.contract.latency for i in design.hw.instances.values()
                   if i.template == template}
            assert lat == {k: v + delta for k, v in lat0[name].items()}
            after = check(name, design)
            assert after >= cycles0[name], (name, cycles0[name], after)
    before = cycles0
    # the context manager restores the registry
    assert {n: build(n).simulate().total_cycles for n in before} == before


@pytest.mark.rtl
@pytest.mark.parametrize("template,extra,spec_overrides", [
    # the full head's last stage; the causal window head's score template
    ("normalize", 1, SMALL + ["model.seq_len=8"]),
    ("qk_window", 3, SMALL + ["model.seq_len=9", "model.attention.kind=causal",
                              "model.attention.window=4", "model.attention.lanes=2"]),
])
def test_perturbed_latency_on_rtl(tmp_path, template, extra, spec_overrides):
    """A latency raised in the registry reaches the RTL: the design built inside
    ``slower(...)`` runs on Verilator with the same bits on the same cycles as its
    simulation (no stalls and stall seed 1), and its run is exactly ``extra`` cycles longer
    than the unperturbed design's (the template is on the no-stall critical path once)."""
    from helpers import verify_head_rtl
    spec = load_spec(HEAD, spec_overrides)
    base = prepare(spec).simulate().total_cycles
    with slower(**{template: extra}):
        result, stalled = verify_head_rtl(spec, tmp_path)
        design = prepare(spec)
        assert template in templates_of(design)
        assert _model_fields(design)["expected_cycles"] == result.total_cycles
    assert result.total_cycles == base + extra


@pytest.mark.parametrize("name", ["online", "window", "split", "decode", "encoder"])
def test_mapped_graph_is_frozen(name):
    """A mapped HwGraph refuses changes (what the simulator, HDL and estimator read is
    the graph the mapper checked); it still pickles (sweeps send designs to workers)."""
    import dataclasses
    import pickle
    hw = build(name).hw
    chan = next(iter(hw.channels.values()))
    with pytest.raises(TypeError, match="frozen after mapping"):
        hw.channels[chan.name] = dataclasses.replace(chan, depth=chan.depth + 1)
    with pytest.raises(TypeError, match="frozen after mapping"):
        hw.depth_notes.update({chan.name: "changed"})
    with pytest.raises(TypeError, match="frozen after mapping"):
        hw.name = "other"
    again = pickle.loads(pickle.dumps(hw))
    assert again.frozen and list(again.channels) == list(hw.channels)
    assert again.channels[chan.name].depth == chan.depth


def test_fold_plan_is_frozen():
    import dataclasses
    fold = build("encoder").folding
    with pytest.raises(dataclasses.FrozenInstanceError):
        fold.cycles = 1
