"""GPU timing: CUDA events around each call, median and spread; CUDA-graph replays for
launch-bound shapes."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Timing:
    median_us: float
    spread_us: float  # p80 - p20
    samples: int

    @staticmethod
    def of(times_us: list[float]) -> "Timing":
        xs = sorted(times_us)
        n = len(xs)
        return Timing(statistics.median(xs), xs[min(n - 1, int(0.8 * n))] - xs[int(0.2 * n)], n)



def run_for(fn, ms: float, clock=time.perf_counter) -> int:
    """Call fn() back to back (synchronised after each) for about ``ms`` milliseconds of wall
    time; returns the number of calls."""
    calls = 0
    start = clock()
    while (clock() - start) * 1e3 < ms:
        fn()
        torch.cuda.synchronize()
        calls += 1
    return calls


def time_calls(fn, reps: int = 30, warmup: int = 3, min_ms: float = 0.0, warmup_ms: float = 0.0) -> Timing:
    """Time fn() one call at a time with events; repeat at least ``reps`` times (and at least
    ``min_ms`` of GPU time). ``warmup_ms``: run fn for that long first, so that the card's clocks
    settle to fn's own power draw instead of carrying over the previous call's (benchmarks that
    interleave implementations: a call timed right after a slower, cooler kernel ran faster)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    run_for(fn, warmup_ms)
    times = []
    total = 0.0
    while len(times) < reps or total < min_ms:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        ms = start.elapsed_time(end)
        times.append(ms * 1000.0)
        total += ms
        if len(times) > 10 * max(reps, 1) + 1000:
            break
    return Timing.of(times)


def time_rounds(impls: dict, rounds: int, after=None, **kwargs) -> dict[str, list[float]]:
    """Per-call medians (time_calls with ``kwargs``) of each of ``impls`` (name -> fn), in
    ``rounds`` interleaved rounds: clock and thermal drift hit every implementation alike (single
    timings of one after the other drift by several %). name -> one median per round.
    ``after(name)``, if given, is called right after each timing (e.g. to read the card's clock)."""
    per = {name: [] for name in impls}
    for _ in range(rounds):
        for name, fn in impls.items():
            per[name].append(time_calls(fn, **kwargs).median_us)
            if after is not None:
                after(name)
    return per


def time_queued(fn, calls: int = 20, reps: int = 5) -> Timing:
    """Per-call GPU time of calls queued back to back (one event pair per call, one synchronize per
    ``calls``): the host runs ahead, so for calls longer than their host time the intervals hold
    the kernels alone, as in a model's forward pass; the median over every call."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(calls)]
        for start, end in events:
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize()
        times += [start.elapsed_time(end) * 1000.0 for start, end in events]
    return Timing.of(times)


def host_us_isolated(fn, reps: int = 20) -> Timing:
    """Host time of one call issued to an idle GPU (synchronised before each): how long the GPU
    waits for the launch in a one-call-at-a-time timing such as time_calls."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e6)
    torch.cuda.synchronize()
    return Timing.of(times)


def time_graph(fn, calls_per_graph: int = 20, reps: int = 20) -> Timing:
    """Per-call time of ``calls_per_graph`` back-to-back calls captured in one CUDA graph."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls_per_graph):
            fn()
    graph.replay()
    torch.cuda.synchronize()
    t = time_calls(graph.replay, reps=reps, warmup=2)
    return Timing(t.median_us / calls_per_graph, t.spread_us / calls_per_graph, t.samples)


def time_python_calls(fn, calls: int = 200, reps: int = 5) -> Timing:
    """Back-to-back calls from Python (what an eager loop sees), per call."""
    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1000.0 / calls)
    return Timing.of(times)


def host_us_per_call(cases: dict, calls: int = 2000, repeats: int = 7, warmup: int = 200) -> dict:
    """Per-call host time of back-to-back calls, for launch-bound work: ``cases`` maps a name to
    (callable, args); perf_counter around ``calls`` calls and the final synchronize (the GPU work
    being far shorter than the host's), best of ``repeats`` rounds, the cases interleaved. A
    bound callable and its arguments cost every case the same loop."""
    for fn, args in cases.values():
        for _ in range(warmup):
            fn(*args)
    torch.cuda.synchronize()
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(repeats):
        for name, (fn, args) in cases.items():
            t0 = time.perf_counter()
            for _ in range(calls):
                fn(*args)
            torch.cuda.synchronize()
            best[name] = min(best[name], (time.perf_counter() - t0) / calls * 1e6)
    return best
