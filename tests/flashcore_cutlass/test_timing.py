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
