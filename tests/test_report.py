"""The waveform (channels.vcd) and the HTML design report (report.html)."""
import base64
import html
import re
import time

import numpy as np
import pytest
from vcd.reader import TokenKind, tokenize

import attnflow.build
from attnflow.api import prepare
from attnflow.ir.spec import ScheduleSpec, load_spec
from attnflow.report_html import bottleneck, write_html_report
from attnflow.sim.engine import occupancy_series
from attnflow.sim.engine import max_occupancy
from attnflow.sim.vcd import fire_cycles, write_vcd

SMALL = ["model.seq_len=16", "model.head_dim=4"]


def _run(example, overrides, schedule=None):
    design = prepare(load_spec(example, overrides))
    result = design.simulate(schedule)
    return design, result, attnflow.build.sim_summary(design, result)


@pytest.fixture(scope="module")
def online():
    return _run("examples/sdpa_online.yaml", SMALL)


@pytest.fixture(scope="module")
def stalled():
    return _run("examples/sdpa_online.yaml", SMALL,
                ScheduleSpec(seed=2, input_gap_prob=0.4, input_gap_max=3,
                             output_ready_prob=0.5))


@pytest.fixture(scope="module")
def deadlocked():
    return _run("examples/sdpa_naive.yaml",
                ["model.seq_len=16", "hardware.fifo_depths.s_b=10"])


class Wave:
    """A VCD file read back with pyvcd's tokenizer: dotted name -> [(time, value)]."""

    def __init__(self, path):
        self.changes, self.header, self.vars, names, scope = {}, {}, {}, {}, []
        self.end = 0
        t = 0
        with open(path, "rb") as f:
            for tok in tokenize(f):
                k = tok.kind
                if k is TokenKind.SCOPE:
                    scope.append(tok.scope.ident)
                elif k is TokenKind.UPSCOPE:
                    scope.pop()
                elif k is TokenKind.VAR:
                    name = ".".join(scope + [tok.var.reference])
                    names.setdefault(tok.var.id_code, []).append(name)
                    self.changes[name] = []
                    self.vars[name] = (str(tok.var.type_), tok.var.size)
                elif k in (TokenKind.DATE, TokenKind.COMMENT, TokenKind.VERSION,
                           TokenKind.TIMESCALE):
                    self.header[k.name.lower()] = tok.data
                elif k is TokenKind.CHANGE_TIME:
                    t = tok.time_change
                    self.end = max(self.end, t)
                elif k in (TokenKind.CHANGE_SCALAR, TokenKind.CHANGE_VECTOR):
                    ch = tok.scalar_change if k is TokenKind.CHANGE_SCALAR else \
                        tok.vector_change
                    for name in names[ch.id_code]:
                        self.changes[name].append((t, int(ch.value)))

    def at(self, name, cycle):
        v = None
        for t, val in self.changes[name]:
            if t > cycle:
                break
            v = val
        return v

    def high_cycles(self, name):
        """Cycles (up to the file's last time) in which a 1-bit signal is high."""
        n, rise = 0, None
        for t, v in self.changes[name]:
            if v and rise is None:
                rise = t
            elif not v and rise is not None:
                n, rise = n + t - rise, None
        return n + (self.end - rise if rise is not None else 0)

    def peak(self, name):
        return max(v for _, v in self.changes[name])


def _occ(push, pop, c):
    """Tokens held in cycle c: pushed before c, not popped before c."""
    return sum(p < c for p in push) - sum(p < c for p in pop)


def _check_wave(wave, result, top, window=None):
    for name, ch in result.timing.chans.items():
        pre = f"{top}.channels.{name}_"
        push = [p for p in ch.push if window is None or p < window]
        pop = [p for p in ch.pop if window is None or p < window]
        # GTKWave reads integers as signed: 32 bits, like a Verilog integer
        assert wave.vars[pre + "occupancy"] == ("integer", 32)
        assert wave.vars[pre + "push"] == wave.vars[pre + "pop"] == ("wire", 1)
        assert wave.high_cycles(pre + "push") == len(push)
        assert wave.high_cycles(pre + "pop") == len(pop)
        if window is None:
            assert len(push) == len(ch.push)
            assert wave.peak(pre + "occupancy") == max_occupancy(ch.push, ch.pop)
        probe = {0, wave.end}
        for p in push[:3] + push[-2:] + pop[:2] + pop[-2:]:
            probe |= {p, p + 1, p + 2}
        for c in sorted(probe):
            if window is None or c < window:
                assert wave.at(pre + "occupancy", c) == _occ(ch.push, ch.pop, c), (name, c)


def test_vcd_channels_and_fires(online, tmp_path):
    design, result, summary = online
    path = write_vcd(result, tmp_path / "channels.vcd", clock_mhz=200)
    wave = Wave(path)
    top = design.hw.name
    assert "date" not in wave.header and str(wave.header["timescale"]) == "1 ns"
    assert "200 MHz" in wave.header["comment"]
    _check_wave(wave, result, top)
    s = result.timing.chans["s"]
    assert wave.high_cycles(f"{top}.channels.s_push") == summary["channels"][3]["tokens"] \
        == len(s.push) == 256
    # the occupancy over time of one channel, every cycle, against the push/pop lists
    occ = occupancy_series(s.push, s.pop, result.total_cycles + 1)
    assert [wave.at(f"{top}.channels.s_occupancy", c) for c in range(occ.size)] == occ.tolist()
    # at full rate the score channel holds qk's pipeline: its latency in tokens
    assert occ.max() == max_occupancy(s.push, s.pop) == design.hw.channels["s"].latency == 10
    # every process's fire strobe: one high cycle per firing, from its first to its last
    for p in result.timing.procs:
        ident = re.sub(r"[^A-Za-z0-9_]+", "_", p.name).strip("_")
        sig = f"{top}.processes.{ident}_fire"
        assert wave.high_cycles(sig) == p.fires, p.name
        ups = [t for t, v in wave.changes[sig] if v]
        assert ups[0] == p.first
        assert wave.at(sig, p.t) == 1 and wave.at(sig, p.t + 1) == 0
    # the end of the file is past the last output
    assert wave.end >= result.total_cycles


def test_vcd_with_stalls_and_window(stalled, tmp_path):
    design, result, _ = stalled
    top = design.hw.name
    _check_wave(Wave(write_vcd(result, tmp_path / "a.vcd")), result, top)
    for p in result.timing.procs:
        fc = fire_cycles(result)[p.name]
        assert len(fc) == p.fires and fc[0] == p.first and fc[-1] == p.t
        assert np.all(np.diff(fc) >= 1)
    win = 60
    wave = Wave(write_vcd(result, tmp_path / "w.vcd", max_cycles=win))
    assert wave.end == win
    _check_wave(wave, result, top, window=win)


def test_vcd_deterministic(online, tmp_path):
    _, result, _ = online
    a = write_vcd(result, tmp_path / "a.vcd").read_bytes()
    b = write_vcd(result, tmp_path / "b.vcd").read_bytes()
    assert a == b and a.startswith(b"$comment")


def _images(text):
    return [base64.b64decode(m) for m in
            re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)]


def test_html_report(online, tmp_path):
    design, result, summary = online
    path = write_html_report(summary, result, tmp_path / "a")
    assert path == tmp_path / "a" / "report.html"
    text = path.read_text()
    # self-contained: no external references, no script; the plots are inline PNGs
    assert 'src="http' not in text and 'href="http' not in text and "<script" not in text
    assert "<link" not in text and "url(" not in text
    imgs = _images(text)
    assert len(imgs) == 2 and all(i.startswith(b"\x89PNG\r\n\x1a\n") for i in imgs)
    assert all(b"tEXt" not in i and b"tIME" not in i for i in imgs)
    # summary, bottleneck, tables
    bn = bottleneck(summary, result)
    assert bn["name"] == "qk"              # qk and vstore both fire N*N + N times: by name
    assert "Bottleneck: the template process with the largest busy fraction" in text
    assert f"<b>{bn['name']}</b>" in text and "bottleneck" in text
    assert f"<b>{summary['total_cycles']}</b>" in text and "281" in text
    assert f"{summary['latency_us']:.3f} us" in text
    assert "0 mismatching output elements" in text
    for c in summary["channels"]:
        assert f"<b>{c['name']}</b>" in text
    assert "not estimated" in text and "DEADLOCK" not in text
    # the same inputs give the same bytes
    again = write_html_report(summary, result, tmp_path / "b").read_bytes()
    assert again == path.read_bytes()


def test_html_resources(online, tmp_path):
    _, result, summary = online
    rows = [{"resource": "LUT", "estimate": 1200, "measured": 1350, "ratio": 0.889,
             "budget": 24000},
            {"resource": "BRAM", "estimate": 2.0, "measured": 3, "ratio": 0.667,
             "budget": 2},
            {"resource": "DSP", "estimate": 4, "measured": None, "ratio": None,
             "budget": None}]
    text = write_html_report(summary, result, tmp_path, rows).read_text()
    assert "not estimated" not in text
    assert "<td class=l>LUT</td><td>1200</td><td>1350</td><td>0.889</td><td>24 000</td>" in text
    assert '<tr class=hot><td class=l>BRAM</td>' in text and "exceed their budget" in text
    assert "<td class=l>DSP</td><td>4</td><td>—</td>" in text
    text = write_html_report(summary, result, tmp_path,
                             {"device": "ice40 <up5k>", "rows": rows[:1]}).read_text()
    assert "ice40 &lt;up5k&gt;" in text and "<td class=l>LUT</td>" in text


def test_deadlock_report_and_vcd(deadlocked, tmp_path):
    design, result, summary = deadlocked
    assert result.deadlock
    text = write_html_report(summary, result, tmp_path).read_text()
    assert "DEADLOCK" in text and html.escape(summary["deadlock"]) in text
    assert f"deadlock at cycle {result.deadlock.cycle}" in text
    assert len(_images(text)) == 2
    assert "Never held a token" in text
    path = write_vcd(result, tmp_path / "channels.vcd")
    wave = Wave(path)
    assert "DEADLOCK" in wave.header["comment"]
    _check_wave(wave, result, design.hw.name)
    # the channels the deadlock leaves full are full at the end of the waveform
    for name, occ, depth in result.deadlock.channels:
        assert wave.at(f"{design.hw.name}.channels.{name}_occupancy", wave.end) == occ


def test_report_speed_n128(tmp_path):
    _, result, summary = _run("examples/sdpa_online.yaml",
                              ["model.seq_len=128", "model.head_dim=16"])
    write_html_report(summary, result, tmp_path / "warm")   # imports matplotlib
    t0 = time.perf_counter()
    text = write_html_report(summary, result, tmp_path).read_text()
    t1 = time.perf_counter()
    write_vcd(result, tmp_path / "channels.vcd")
    t2 = time.perf_counter()
    assert "binned" in text and str(summary["total_cycles"]) in text
    assert t1 - t0 < 5 and t2 - t1 < 5       # ~0.4 s and ~0.01 s here
