"""flashcore_cutlass.timing on the CPU: the host-time loop's bookkeeping (no GPU needed)."""

from __future__ import annotations

import torch

from flashcore_cutlass import timing


def test_host_us_per_call_times_every_case_interleaved(monkeypatch):
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    calls = {"a": 0, "b": 0}

    def count(name):
        calls[name] += 1

    best = timing.host_us_per_call({"a": (count, ("a",)), "b": (count, ("b",))}, calls=10, repeats=3, warmup=5)
    assert set(best) == {"a", "b"} and all(0 < us < 1e6 for us in best.values())
    assert calls == {"a": 5 + 3 * 10, "b": 5 + 3 * 10}


class _FakeEvent:
    """A CUDA event on a fake clock (ms): each record() ticks it by 1 us."""

    clock = [0.0]

    def __init__(self, enable_timing=True):
        self.t = None

    def record(self):
        _FakeEvent.clock[0] += 0.001
        self.t = _FakeEvent.clock[0]

    def elapsed_time(self, end):
        return end.t - self.t


def test_time_queued_times_each_call_between_its_own_events(monkeypatch):
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    monkeypatch.setattr(torch.cuda, "Event", _FakeEvent)
    calls = []

    def call():  # a 10 us "kernel"
        calls.append(1)
        _FakeEvent.clock[0] += 0.010

    t = timing.time_queued(call, calls=7, reps=3)
    assert len(calls) == 3 + 7 * 3 and t.samples == 7 * 3
    assert abs(t.median_us - 11.0) < 1e-6 and abs(t.spread_us) < 1e-6  # the call + the end event's tick


def test_host_us_isolated_synchronises_before_every_call(monkeypatch):
    order = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: order.append("sync"))
    t = timing.host_us_isolated(lambda: order.append("call"), reps=4)
    assert t.samples == 4 and t.median_us >= 0
    assert order[:3] == ["call"] * 3  # warm-up
    assert order[3:] == ["sync", "call"] * 4 + ["sync"]


def test_run_for_calls_until_the_time_is_spent(monkeypatch):
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    now = [0.0]

    def clock():
        return now[0]

    def call():
        now[0] += 0.25  # each call takes 250 ms of wall time (exact in binary)

    assert timing.run_for(call, 1000.0, clock=clock) == 4
    assert timing.run_for(call, 1100.0, clock=clock) == 5
    assert timing.run_for(call, 0.0, clock=clock) == 0


def test_time_rounds_interleaves_the_implementations(monkeypatch):
    order = []

    def fake_time_calls(fn, **kwargs):
        fn()
        return timing.Timing(float(len(order)), 0.0, 1)

    monkeypatch.setattr(timing, "time_calls", fake_time_calls)
    per = timing.time_rounds({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, 3, reps=5)
    assert order == ["a", "b"] * 3
    assert per == {"a": [1.0, 3.0, 5.0], "b": [2.0, 4.0, 6.0]}


def test_time_rounds_calls_after_each_timing(monkeypatch):
    seen = []
    monkeypatch.setattr(timing, "time_calls", lambda fn, **kwargs: timing.Timing(1.0, 0.0, 1))
    timing.time_rounds({"a": lambda: None, "b": lambda: None}, 2, after=seen.append)
    assert seen == ["a", "b", "a", "b"]
