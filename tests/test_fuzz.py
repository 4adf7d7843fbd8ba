"""Fuzzing the command line in-process (hypothesis): mutated spec files (deleted keys,
wrong types, extreme ints and floats, strings), ``--set`` values and device files.

Every input must end in one of the promised outcomes:

* ``ok``: exit 0;
* ``error``: exit 2 with exactly one line on stderr, starting ``error:``;
* ``honest``: exit 1 with the reason named (a deadlock, a design that does not fit);

never an uncaught exception (``crash``) and never a run past its budget: the runs use a
low ``--max-memory`` / ``--max-cycles`` and must end within :data:`WALL_SECONDS`.

Exceptions that belong to the value checks at entry (saturating casts, non-finite
numbers, YAML 1.1 forms, ...; issue 18's item 4, another change) are classed ``known``
by :data:`KNOWN` (each entry names its cause) and do not fail the test; anything else
does. The CI profile is short and deterministic (``derandomize``); the ``slow`` test and
``benchmarks/fuzz.py`` run longer profiles and print the counts per outcome class.
"""
from __future__ import annotations

import contextlib
import copy
import io
import math
import re
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from attnflow.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BUDGET = ["--max-memory", "256M", "--max-cycles", "200000"]
WALL_SECONDS = 20.0

#: small versions of the examples (fast to simulate), the bases of the mutations
HEAD_SMALL = {"model": {"seq_len": 8, "head_dim": 4}}
ENCODER_SMALL = {"model": {"seq_len": 8, "d_model": 16, "d_ff": 32, "layers": 1},
                 "hardware": {"multiplier_budget": None}}
BASES = {"examples/sdpa_online.yaml": HEAD_SMALL, "examples/sdpa_naive.yaml": HEAD_SMALL,
         "examples/encoder_tiny.yaml": ENCODER_SMALL}

#: (exception type name, regex on the message or the innermost frames, cause): failures
#: owned by issue 18's entry value checks (item 4, another branch), not by the guards
KNOWN = [
    ("OverflowError", r"cannot convert float infinity|int too large|too large to convert",
     "entry checks: non-finite / huge float reaching an integer conversion (norm_eps, "
     "inputs.range, weights.std, device figures)"),
    ("ValueError", r"negative shift count", "entry checks: formats.weight {bits: 32, frac: 0}"),
    ("ValueError", r"Exceeds the limit \(\d+ digits\) for integer string conversion",
     "entry checks: integers of thousands of digits"),
    ("ValueError", r"datapath needs \d+-bit intermediates|-bit (intermediates|LayerNorm)",
     "entry checks: numerics width checks raised as ValueError in the encoder path"),
    ("RecursionError", r"", "entry checks: deeply nested YAML"),
    ("ValueError", r"cannot convert float NaN to integer", "entry checks: NaN reaching int()"),
]


def _set_path(data: dict, path: tuple, value):
    d = data
    for k in path[:-1]:
        if not isinstance(d.get(k), dict):
            d[k] = {}
        d = d[k]
    d[path[-1]] = value


def _paths(data, prefix=()) -> list[tuple]:
    out = []
    if isinstance(data, dict):
        for k, v in data.items():
            out.append(prefix + (k,))
            out += _paths(v, prefix + (k,))
    return out


def base_spec(example: str) -> dict:
    data = yaml.safe_load((ROOT / example).read_text())
    for path in _paths(BASES[example]):
        value = BASES[example]
        for k in path:
            value = value[k]
        if not isinstance(value, dict):
            _set_path(data, path, value)
    return data


EXTREME_INTS = [0, 1, -1, 2, 3, 7, 8, 31, 32, 33, 62, 63, 64, 255, 4096, 10 ** 6, 10 ** 9,
                2 ** 31, 2 ** 63, 2 ** 64, -(2 ** 63), 10 ** 30]
EXTREME_FLOATS = [0.0, -0.0, 1e-300, 1e-9, 0.5, 0.999999, 1.0, 1.5, 1e9, 1e18, 1e30, 1e308,
                  math.inf, -math.inf, math.nan]

values = st.one_of(
    st.sampled_from(EXTREME_INTS),
    st.integers(1, 64),                       # plausible sizes: the mutation often builds
    st.integers(1, 64),
    st.floats(0, 1),                          # plausible probabilities
    st.floats(0, 1),
    st.integers(-10, 10 ** 4),
    st.sampled_from(EXTREME_FLOATS),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.text(max_size=12),
    st.sampled_from(["", "online", "naive", "full", "causal", "window", "encoder",
                     "attention_head", "random", "file", "relu", "gelu", "rmsnorm", "pre",
                     "1:30", "010", "yes", "0x10"]),
    st.booleans(),
    st.none(),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.sampled_from(["bits", "frac", "pe", "simd", "x"]),
                    st.integers(-2, 40), max_size=3),
)

#: mutation: (kind, index of the path to touch, new value or key)
mutations = st.lists(st.tuples(st.sampled_from(["delete", "replace", "replace", "add"]),
                               st.integers(0, 10 ** 6), values,
                               st.sampled_from(["colour", "lanes", "window", "split",
                                                "decode", "s", "o", "qk", "default"])),
                     min_size=1, max_size=2)


def mutate(data: dict, ops) -> dict:
    data = copy.deepcopy(data)
    for kind, index, value, key in ops:
        paths = _paths(data)
        if not paths:
            break
        path = paths[index % len(paths)]
        if kind == "delete":
            parent = data
            for k in path[:-1]:
                parent = parent[k]
            del parent[path[-1]]
        elif kind == "add":
            parent = data
            for k in path[:-1]:
                parent = parent[k]
            target = parent[path[-1]]
            if isinstance(target, dict):
                target[key] = value
            else:
                parent[path[-1]] = value
        else:
            _set_path(data, path, value)
    return data


def run_cli(argv: list[str]) -> tuple[str, str]:
    """Run ``attnflow argv`` in-process: (outcome class, detail)."""
    out, err = io.StringIO(), io.StringIO()
    start = time.monotonic()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(argv)
    except SystemExit as e:            # argparse (usage errors) exits by itself
        rc = e.code
    except BaseException as e:         # noqa: BLE001: any escape is the finding
        if isinstance(e, KeyboardInterrupt):
            raise
        text = f"{type(e).__name__}: {e}"[:300]
        tb = "".join(traceback.format_exception(e)[-6:])
        for name, pattern, cause in KNOWN:
            if type(e).__name__ == name and re.search(pattern, text + tb):
                return "known", f"{cause}: {text}"
        return "crash", f"{text}\n{tb}"
    wall = time.monotonic() - start
    if wall > WALL_SECONDS:
        return "slow", f"{wall:.1f} s"
    lines = err.getvalue().splitlines()
    if rc == 0:
        return "ok", ""
    if rc == 2:
        if len(lines) == 1 and lines[0].startswith("error: "):
            return "error", lines[0]
        if lines and lines[-1].startswith("attnflow") or "usage:" in err.getvalue():
            return "usage", err.getvalue()[:200]     # argparse form: the other branch's
        return "bad-error", err.getvalue()[:300]
    text = out.getvalue() + err.getvalue()
    if rc == 1 and re.search(r"deadlock at cycle|does not fit|deadlocks in simulation", text):
        return "honest", ""
    return "bad-exit", f"exit {rc}: {text[-300:]}"


#: classes a test accepts (``usage``: argparse's multi-line usage errors, issue 18's
#: message-form item, another branch)
ACCEPTED = {"ok", "error", "honest", "known", "usage"}


def spec_case(example: str, ops, command: str = "sim") -> tuple[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.yaml"
        path.write_text(yaml.safe_dump(mutate(base_spec(example), ops), sort_keys=False))
        extra = ["-o", str(Path(tmp) / "out")] if command == "build" else []
        return run_cli([command, str(path), *extra, *BUDGET])


set_keys = st.sampled_from([
    "model.seq_len", "model.head_dim", "model.attention.kind", "model.attention.lanes",
    "model.attention.window", "model.attention.split", "model.attention.decode",
    "model.attention.variant", "formats.q", "formats.out.bits", "formats.score_frac",
    "formats.prob_frac", "inputs.range", "inputs.seed", "schedule.input_gap_prob",
    "schedule.input_gap_max", "schedule.output_ready_prob", "schedule.seed",
    "hardware.clock_mhz", "hardware.fifo_depths.s", "hardware.fifo_depths.o",
    "hardware.target_cycles", "hardware.multiplier_budget", "name", "model", "nonsense"])
set_texts = st.one_of(st.sampled_from([str(v) for v in EXTREME_INTS + EXTREME_FLOATS]),
                      st.sampled_from([".nan", ".inf", "-.inf", "null", "[]", "{}", "{bits: 8}",
                                       "'8'", "true", "1e-300", "1e-9", "5e-324"]),
                      st.text(max_size=10))


def set_case(pairs) -> tuple[str, str]:
    argv = ["sim", "examples/sdpa_online.yaml", "--set", "model.seq_len=8",
            "--set", "model.head_dim=4"]
    for key, text in pairs:
        argv += ["--set", f"{key}={text}"]
    return run_cli(argv + BUDGET)


device_keys = st.sampled_from(["luts", "lut_inputs", "ffs", "dsp", "dsp.count", "dsp.a_bits",
                               "bram", "bram.count", "bram.bits", "bram.max_width",
                               "uram.count", "io", "clock_mhz", "name", "flow", "family",
                               "dsp.signed", "colour"])


def device_case(edits) -> tuple[str, str]:
    data = yaml.safe_load((ROOT / "targets/devices/ice40up5k.yaml").read_text())
    for key, value, delete in edits:
        path = tuple(key.split("."))
        if delete:
            parent = data
            for k in path[:-1]:
                parent = parent.get(k) if isinstance(parent, dict) else None
            if isinstance(parent, dict):
                parent.pop(path[-1], None)
        else:
            _set_path(data, path, value)
    with tempfile.TemporaryDirectory() as tmp:
        dev = Path(tmp) / "dev.yaml"
        dev.write_text(yaml.safe_dump(data, sort_keys=False))
        return run_cli(["resources", "examples/sdpa_online.yaml", "--set", "model.seq_len=8",
                        "--set", "model.head_dim=4", "--target", str(dev), *BUDGET])


def budget_case(example: str, seq_len: int, ready: float, gap_prob: float,
                gap_max: int) -> tuple[str, str]:
    """The size / stall fields the guards read, on a small example, under the budget."""
    small = {"examples/encoder_tiny.yaml": ["model.d_model=16", "model.d_ff=32",
                                            "model.layers=1", "hardware.multiplier_budget=null"],
             }.get(example, ["model.head_dim=4"])
    argv = ["sim", example]
    for kv in small + [f"model.seq_len={seq_len}", f"schedule.output_ready_prob={ready!r}",
                       f"schedule.input_gap_prob={gap_prob!r}",
                       f"schedule.input_gap_max={gap_max}"]:
        argv += ["--set", kv]
    return run_cli(argv + BUDGET)


budget_fields = st.tuples(
    st.sampled_from(["examples/sdpa_online.yaml", "examples/encoder_tiny.yaml"]),
    st.one_of(st.integers(1, 64), st.sampled_from([300, 4096, 10 ** 5, 10 ** 9, 2 ** 64])),
    st.one_of(st.sampled_from([1.0, 0.5, 1e-3, 1e-9, 1e-300, 5e-324]),
              st.floats(1e-12, 1.0)),
    st.one_of(st.just(0.0), st.floats(0.0, 0.99)),
    st.one_of(st.integers(1, 8), st.sampled_from([10 ** 3, 10 ** 6, 10 ** 9, 2 ** 63])))

examples = st.sampled_from(sorted(BASES))
set_pairs = st.lists(st.tuples(set_keys, set_texts), min_size=1, max_size=3)
device_edits = st.lists(st.tuples(device_keys, values, st.booleans()), min_size=1, max_size=3)

#: the CI profile: deterministic, 100 inputs, well under a minute
CI = settings(max_examples=30, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), print_blob=False)


def _check(outcome):
    kind, detail = outcome
    assert kind in ACCEPTED, f"{kind}: {detail}"


@CI
@given(examples, mutations)
def test_fuzz_spec_files(example, ops):
    _check(spec_case(example, ops))


@CI
@given(set_pairs)
def test_fuzz_set_values(pairs):
    _check(set_case(pairs))


@settings(CI, max_examples=20)
@given(device_edits)
def test_fuzz_device_files(edits):
    _check(device_case(edits))


@settings(CI, max_examples=20)
@given(budget_fields)
def test_fuzz_sizes_and_stalls_stay_in_budget(fields):
    _check(budget_case(*fields))


def _profile(n: int, counts: Counter, findings: list):
    """Run ``n`` inputs of each family, counting the outcome classes (no assertions)."""
    prof = settings(CI, max_examples=n)

    def record(family, outcome):
        counts[outcome[0]] += 1
        if outcome[0] not in ACCEPTED:
            findings.append((family, *outcome))

    given(examples, mutations)(prof(lambda e, o: record("spec", spec_case(e, o))))()
    given(set_pairs)(prof(lambda p: record("set", set_case(p))))()
    given(device_edits)(prof(lambda d: record("device", device_case(d))))()
    given(budget_fields)(prof(lambda f: record("budget", budget_case(*f))))()


@pytest.mark.fuzz_long
def test_fuzz_long_profile():
    counts, findings = Counter(), []
    _profile(300, counts, findings)
    assert not findings, findings[:5]
