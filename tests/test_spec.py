"""Tests for the YAML model spec (attnflow.ir.spec)."""
from pathlib import Path

import pytest
import yaml

from attnflow.ir.spec import (
    AttentionSpec, FormatsSpec, HardwareSpec, InputsSpec, ModelSpec, ScheduleSpec, Spec,
    SpecError, load_spec, parse_override, spec_from_dict, spec_to_dict,
)
from attnflow.ir.types import FixedFormat

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MINIMAL = {"model": {"seq_len": 8, "head_dim": 4}}


def minimal(**sections):
    """The minimal valid spec dict with some sections added or replaced."""
    d = {"model": dict(MINIMAL["model"])}
    d.update(sections)
    return d


def spec_error(d, overrides=()) -> SpecError:
    with pytest.raises(SpecError) as info:
        spec_from_dict(d, overrides=overrides)
    err = info.value
    assert "\n" not in str(err)
    assert str(err) == f"{err.source}: {err.field}: {err.message}"
    return err


# ----------------------------------------------------------------------------- valid specs

@pytest.mark.parametrize("variant", ["online", "naive"])
def test_example_loads(variant):
    path = EXAMPLES / f"sdpa_{variant}.yaml"
    s = load_spec(path)
    assert s.name == f"sdpa_{variant}_n32"
    assert s.source == str(path)
    assert s.model == ModelSpec("attention_head", 32, 16, AttentionSpec("full", variant))
    assert s.formats == FormatsSpec(FixedFormat(8, 4), FixedFormat(8, 4), FixedFormat(8, 4),
                                    FixedFormat(16, 8), 8, 15)
    assert s.inputs == InputsSpec(seed=1, range=2.0)
    assert s.schedule == ScheduleSpec(0, 0.0, 3, 1.0)
    assert not s.schedule.has_stalls
    assert s.hardware == HardwareSpec(200.0, ())


def test_defaults():
    s = spec_from_dict(MINIMAL)
    assert s.source == "<dict>"
    assert s.name == "attnflow_top"
    assert s.model == ModelSpec("attention_head", 8, 4, AttentionSpec("full", "online"))
    assert s.formats.q == s.formats.k == s.formats.v == FixedFormat(8, 4)
    assert s.formats.out == FixedFormat(16, 8)
    assert (s.formats.score_frac, s.formats.prob_frac) == (8, 15)
    assert s.inputs == InputsSpec(1, 2.0)
    assert s.schedule == ScheduleSpec(0, 0.0, 3, 1.0)
    assert s.hardware.clock_mhz == 200.0
    assert s.hardware.fifo_depths == ()
    assert s.hardware.fifo_depth("anything") is None


def test_partial_sections_and_empty_sections():
    s = spec_from_dict(minimal(formats={"q": {"bits": 10}}, schedule=None,
                               inputs={"range": 3}, hardware={"clock_mhz": 100}))
    assert s.formats.q == FixedFormat(10, 4)  # frac keeps its default
    assert s.schedule == ScheduleSpec()
    assert s.inputs.range == 3.0 and isinstance(s.inputs.range, float)  # int accepted for float
    assert s.hardware.clock_mhz == 100.0 and isinstance(s.hardware.clock_mhz, float)


def test_stalls_and_fifo_depths():
    s = spec_from_dict(minimal(schedule={"input_gap_prob": 0.25, "output_ready_prob": 1},
                               hardware={"fifo_depths": {"s_b": 4, "s_a": 2}}))
    assert s.schedule.has_stalls
    assert spec_from_dict(minimal(schedule={"output_ready_prob": 0.5})).schedule.has_stalls
    assert s.hardware.fifo_depths == (("s_a", 2), ("s_b", 4))
    assert s.hardware.fifo_depth("s_b") == 4
    assert s.hardware.fifo_depth("s_c") is None


def test_specs_are_hashable():
    s = load_spec(EXAMPLES / "sdpa_online.yaml")
    assert hash(s) == hash(load_spec(EXAMPLES / "sdpa_online.yaml"))


# ----------------------------------------------------------------------------- overrides

def test_parse_override_values():
    assert parse_override("model.seq_len=64") == ("model.seq_len", 64)
    assert parse_override("inputs.range=1.5") == ("inputs.range", 1.5)
    assert parse_override("model.attention.variant=naive") == ("model.attention.variant", "naive")
    assert parse_override("formats.q={bits: 10, frac: 5}") == ("formats.q", {"bits": 10, "frac": 5})
    assert parse_override(" name = a=b ") == ("name", "a=b")  # split at the first '='


def test_overrides_applied_to_file():
    path = EXAMPLES / "sdpa_online.yaml"
    s = load_spec(path, overrides=["model.seq_len=64", "inputs.range=1.5",
                                   "model.attention.variant=naive",
                                   "hardware.fifo_depths.s_b=10"])
    assert s.model.seq_len == 64
    assert s.inputs.range == 1.5
    assert s.model.attention.variant == "naive"
    assert s.hardware.fifo_depth("s_b") == 10
    assert load_spec(path).model.seq_len == 32  # the file itself is untouched


def test_override_creates_intermediate_mappings():
    s = spec_from_dict(MINIMAL, overrides=["schedule.input_gap_prob=0.5",
                                           ("hardware.fifo_depths.s_x", 7)])
    assert s.schedule.input_gap_prob == 0.5
    assert s.hardware.fifo_depths == (("s_x", 7),)
    assert "schedule" not in MINIMAL  # the input dict is not mutated


def test_overrides_are_validated():
    err = spec_error(MINIMAL, overrides=["model.seq_len=0"])
    assert err.field == "model.seq_len"
    err = spec_error(MINIMAL, overrides=["model.sq_len=4"])
    assert err.field == "model.sq_len"
    assert "did you mean 'seq_len'" in err.message


def test_override_through_a_scalar_fails():
    err = spec_error(MINIMAL, overrides=["model.seq_len.x=1"])
    assert err.field == "--set"
    assert "model.seq_len is 8, not a mapping" in err.message


@pytest.mark.parametrize("text", ["model.seq_len", "=3", "model..seq_len=3", "a=[1,"])
def test_bad_override_syntax(text):
    with pytest.raises(SpecError) as info:
        parse_override(text)
    assert info.value.field == "--set"
    assert "\n" not in str(info.value)
    with pytest.raises(SpecError):
        load_spec(EXAMPLES / "sdpa_online.yaml", overrides=[text])


def test_bad_override_message():
    with pytest.raises(SpecError) as info:
        parse_override("model.seq_len64")
    assert str(info.value) == ("<command line>: --set: expected key.sub=value "
                               "(e.g. model.seq_len=64), got 'model.seq_len64'")


# ----------------------------------------------------------------------------- round trip

def test_round_trip():
    s = spec_from_dict(minimal(
        name="rt", formats={"out": {"bits": 12, "frac": 6}, "prob_frac": 10},
        inputs={"seed": 5, "range": 1},
        schedule={"seed": 3, "input_gap_prob": 0.1, "input_gap_max": 2, "output_ready_prob": 0.7},
        hardware={"clock_mhz": 250, "fifo_depths": {"z": 3, "a": 1}}))
    d = spec_to_dict(s)
    assert yaml.safe_load(yaml.safe_dump(d)) == d  # plain YAML-able data
    assert spec_from_dict(d) == s
    assert spec_from_dict(yaml.safe_load(yaml.safe_dump(d))) == s
    assert d["hardware"]["fifo_depths"] == {"a": 1, "z": 3}
    assert d["formats"]["out"] == {"bits": 12, "frac": 6}


def test_round_trip_examples(tmp_path):
    for path in sorted(EXAMPLES.glob("sdpa_*.yaml")):
        s = load_spec(path)
        out = tmp_path / path.name
        out.write_text(yaml.safe_dump(spec_to_dict(s)))
        again = load_spec(out)
        assert again == s and again.source == str(out)


# ----------------------------------------------------------------------------- errors

def test_error_str_is_one_line():
    err = SpecError("a.yaml", "model.seq_len", "line one\n  line two")
    assert str(err) == "a.yaml: model.seq_len: line one line two"
    assert isinstance(err, ValueError)
    assert (err.source, err.field) == ("a.yaml", "model.seq_len")


def test_unknown_top_level_field():
    err = spec_error(minimal(modle={}))
    assert err.field == "modle"
    assert err.message == ("unknown field; did you mean 'model'? allowed fields: "
                           "name, model, formats, inputs, schedule, hardware, "
                           "quantization, calibration")


def test_unknown_nested_field():
    err = spec_error({"model": {"seq_len": 8, "head_dim": 4, "foo": 1}})
    assert str(err) == ("<dict>: model.foo: unknown field; "
                        "allowed fields: type, seq_len, head_dim, attention")
    err = spec_error(minimal(formats={"q": {"bits": 8, "fracs": 4}}))
    assert err.field == "formats.q.fracs"
    assert "allowed fields: bits, frac" in err.message


@pytest.mark.parametrize("value, shown", [("32", "'32' (str)"), (True, "true (a boolean)"),
                                          (2.5, "2.5"), (None, "None (NoneType)")])
def test_seq_len_wrong_type(value, shown):
    err = spec_error({"model": {"seq_len": value, "head_dim": 4}})
    assert str(err) == f"<dict>: model.seq_len: must be an integer >= 1, got {shown}"


def test_bool_from_yaml_is_not_an_int(tmp_path):
    path = tmp_path / "bool.yaml"
    path.write_text("model: {seq_len: true, head_dim: 4}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == f"{path}: model.seq_len: must be an integer >= 1, got true (a boolean)"


@pytest.mark.parametrize("value", [0, -3])
def test_seq_len_too_small(value):
    err = spec_error({"model": {"seq_len": value, "head_dim": 4}})
    assert str(err) == f"<dict>: model.seq_len: must be an integer >= 1, got {value}"


def test_head_dim_zero():
    err = spec_error({"model": {"seq_len": 4, "head_dim": 0}})
    assert str(err) == "<dict>: model.head_dim: must be an integer >= 1, got 0"


@pytest.mark.parametrize("missing", ["seq_len", "head_dim"])
def test_required_fields(missing):
    model = {"seq_len": 4, "head_dim": 4}
    del model[missing]
    err = spec_error({"model": model})
    assert err.field == f"model.{missing}"
    assert "required" in err.message and "integer >= 1" in err.message
    assert spec_error({}).field == "model.seq_len"


def test_unsupported_variant():
    err = spec_error({"model": {"seq_len": 4, "head_dim": 4, "attention": {"variant": "flash"}}})
    assert str(err) == ("<dict>: model.attention.variant: unsupported value 'flash'; "
                        "allowed: naive, online")


def test_unsupported_kind():
    err = spec_error({"model": {"seq_len": 4, "head_dim": 4, "attention": {"kind": "sparse"}}})
    assert str(err) == ("<dict>: model.attention.kind: unsupported value 'sparse'; "
                        "allowed: causal, full, window")


def test_window_kind_needs_a_window():
    err = spec_error({"model": {"seq_len": 4, "head_dim": 4, "attention": {"kind": "window"}}})
    assert err.field == "model.attention.window" and "required for kind window" in err.message
    err = spec_error({"model": {"seq_len": 4, "head_dim": 4,
                                "attention": {"kind": "window", "window": 0}}})
    assert err.field == "model.attention.window" and ">= 1" in err.message
    err = spec_error({"model": {"seq_len": 4, "head_dim": 4, "attention": {"window": 2}}})
    assert err.field == "model.attention.window" and "only for kind window" in err.message


def test_unsupported_model_type():
    err = spec_error({"model": {"type": "decoder", "seq_len": 4, "head_dim": 4}})
    assert err.field == "model.type"
    assert err.message == "unsupported value 'decoder'; allowed: attention_head, encoder"


def test_input_format_cannot_hold_range():
    err = spec_error(minimal(formats={"q": {"bits": 8, "frac": 6}}, inputs={"range": 3.0}))
    assert str(err) == ("<dict>: formats.q: s8.6 holds [-2, 1.984]; inputs.range 3.0 does not fit: "
                        "raise formats.q.bits or lower formats.q.frac")
    err = spec_error(minimal(formats={"v": {"bits": 4, "frac": 2}}))
    assert err.field == "formats.v"
    assert "raise formats.v.bits or lower formats.v.frac" in err.message


def test_input_format_exactly_fits():
    # s8.6 tops out at 1.984375; values up to half an LSB above it still round into range
    s = spec_from_dict(minimal(formats={k: {"bits": 8, "frac": 6} for k in "qkv"},
                               inputs={"range": 1.99}))
    assert s.formats.q == FixedFormat(8, 6)


def test_out_format_too_narrow():
    err = spec_error(minimal(formats={"out": {"bits": 8, "frac": 7}}))
    assert err.field == "formats.out"
    assert err.message.startswith("s8.7 holds [-1, 0.9922]; inputs.range 2.0 does not fit")
    assert "convex combination of V rows" in err.message
    assert err.message.endswith("raise formats.out.bits or lower formats.out.frac")


@pytest.mark.parametrize("fmt, field, allowed", [
    ({"bits": 1, "frac": 0}, "formats.k.bits", "in 2..32"),
    ({"bits": 33, "frac": 4}, "formats.k.bits", "in 2..32"),
    ({"bits": 8, "frac": 8}, "formats.k.frac", "in 0..7 (less than formats.k.bits = 8)"),
    ({"bits": 8, "frac": -1}, "formats.k.frac", "in 0..7"),
    ({"bits": "8", "frac": 4}, "formats.k.bits", "in 2..32"),
])
def test_bad_format_fields(fmt, field, allowed):
    err = spec_error(minimal(formats={"k": fmt}))
    assert err.field == field
    assert f"must be an integer {allowed}" in err.message


@pytest.mark.parametrize("section, value, field, allowed", [
    ("formats", {"score_frac": 13}, "formats.score_frac", "integer in 1..12"),
    ("formats", {"prob_frac": 3}, "formats.prob_frac", "integer in 4..24"),
    ("inputs", {"seed": -1}, "inputs.seed", "integer >= 0"),
    ("inputs", {"range": 0}, "inputs.range", "number > 0"),
    ("inputs", {"range": float("nan")}, "inputs.range", "number > 0"),
    ("schedule", {"input_gap_prob": 1.0}, "schedule.input_gap_prob", "number in [0, 1)"),
    ("schedule", {"input_gap_max": 0}, "schedule.input_gap_max", "integer in 1..2147483648"),
    ("schedule", {"output_ready_prob": 0}, "schedule.output_ready_prob", "number in (0, 1]"),
    ("schedule", {"output_ready_prob": True}, "schedule.output_ready_prob", "number in (0, 1]"),
    ("hardware", {"clock_mhz": "fast"}, "hardware.clock_mhz", "number > 0"),
    ("hardware", {"fifo_depths": {"s_b": 0}}, "hardware.fifo_depths.s_b", "integer in 1..2147483648"),
])
def test_bad_ranges(section, value, field, allowed):
    err = spec_error(minimal(**{section: value}))
    assert err.field == field
    assert f"must be a{'n' if allowed.startswith('integer') else ''} {allowed}" in err.message


def test_bad_name():
    err = spec_error(minimal(name="1st-top"))
    assert err.field == "name"
    assert "[A-Za-z_][A-Za-z0-9_]*" in err.message and "'1st-top'" in err.message


def test_section_not_a_mapping():
    err = spec_error({"model": [8, 4]})
    assert err.field == "model"
    assert "must be a mapping with fields type, seq_len, head_dim, attention" in err.message
    err = spec_error(minimal(hardware={"fifo_depths": [1, 2]}))
    assert err.field == "hardware.fifo_depths"


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value) == f"{path}: <file>: file not found"


def test_yaml_list_top_level(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- seq_len: 4\n- head_dim: 4\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    err = info.value
    assert err.field == "<file>" and err.source == str(path)
    assert "top level must be a mapping" in err.message and "(list)" in err.message
    assert "\n" not in str(err)


def test_invalid_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  seq_len: [4\n  head_dim: 4\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.field == "<file>"
    assert info.value.message.startswith("invalid YAML:")
    assert "line" in info.value.message
    assert "\n" not in str(info.value)


def test_duplicate_key(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("model:\n  seq_len: 4\n  head_dim: 4\n  seq_len: 8\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.field == "<file>"
    assert "duplicate key 'seq_len' at line 4" in info.value.message


def test_empty_file(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.field == "<file>"
    assert "model.seq_len" in info.value.message


def test_spec_is_frozen():
    s = spec_from_dict(MINIMAL)
    with pytest.raises(AttributeError):
        s.name = "other"
    assert isinstance(s, Spec)
