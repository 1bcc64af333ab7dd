"""The tuner's bookkeeping on CPU: a fake runtime whose variants are SDPA (correct) or SDPA
plus an error (rejected), and fixed timings instead of CUDA events."""

import math
import sqlite3
from pathlib import Path

import pytest
import torch

from flashcore_codegen.families import MmaConfig, PipelinedConfig, ScalarConfig
from flashcore_cutlass import tune as tune_module
from flashcore_cutlass.env import Environment
from flashcore_cutlass.problem import Problem
from flashcore_cutlass.reference import reference_attention
from flashcore_cutlass.registry import Registry
from flashcore_cutlass.table import TableError, TuningTable
from flashcore_cutlass.timing import Timing
from flashcore_cutlass.tune import shape_text, tune, tune_problem

ENV = Environment("NVIDIA H100 80GB HBM3", 132, "12.8", "2.8.0", "4.2.0.0")
BF16 = dict(dtype="bf16", head_dim=64, causal=False)
GOOD = PipelinedConfig(**BF16, block_m=128, block_n=64, warps=4, stages=2).name
BAD = MmaConfig(**BF16, block_m=128, block_n=64, warps=4).name
PROBLEM = Problem("bf16", 64, False, 1, 2, 64, 64)
TIMES_US = {GOOD: 50.0, BAD: 10.0}  # BAD would be the fastest, were it correct


class FakeRuntime:
    """What tune_problem uses of a Runtime: registry, env, hashes, table, run()."""

    def __init__(self, table, variants=(GOOD, BAD)):
        self.hashes = {v: f"hash-{v}" for v in variants}
        self.env = ENV
        self.table = table
        self.registry = Registry(self.hashes, table, ENV)
        self.calls: list[str] = []
        self.warmups: list[float] = []  # warmup_ms of each time_variant call (the rt fixture's fake timer)
        self.lse_unused: list[tuple[str, bool]] = []  # (variant, lse_unused) of each run

    def forget_dispatch(self):  # the binding's dispatch cache (runtime.forget_decisions after tuning)
        return 0

    def run(self, variant, q, k, v, scale, out=None, lse=None, lse_unused=False):
        self.calls.append(variant)
        self.lse_unused.append((variant, lse_unused))
        out, lse = reference_attention(q, k, v, causal=False, scale=scale)
        if variant == BAD:
            out = out + 1.0  # wrong by far more than the tolerance
        return out.to(q.dtype), lse


@pytest.fixture(autouse=True)
def on_cpu(monkeypatch):
    real = tune_module.random_qkv
    monkeypatch.setattr(tune_module, "random_qkv", lambda *a, **kw: real(*a, **kw, device="cpu"))


@pytest.fixture
def table(tmp_path):
    return TuningTable(tmp_path / "tuning.db")


@pytest.fixture
def rt(table, monkeypatch):
    runtime = FakeRuntime(table)

    def fixed_time(fn, reps, min_ms=0.0, warmup_ms=0.0, graph_below_us=0.0):
        fn()  # runs one variant: its name is the runtime's last call
        runtime.warmups.append(warmup_ms)
        return Timing(TIMES_US[runtime.calls[-1]], 1.0, 10)

    monkeypatch.setattr(tune_module, "time_variant", fixed_time)
    return runtime


def test_tune_problem_records_passing_and_rejects_wrong(rt, table):
    logged = []
    result = tune_problem(rt, table, PROBLEM, log=logged.append)
    assert [(c.variant, c.ok) for c in result.candidates] == [(GOOD, True), (BAD, False)]
    assert result.winner.variant == GOOD and result.winner.median_us == 50.0
    assert any("REJECTED" in line and BAD in line for line in logged)
    rows = table.rows(include_stale=True)
    assert [(r.variant, r.shape, r.median_us) for r in rows] == [(GOOD, shape_text(PROBLEM), 50.0)]
    assert rows[0].tflops == pytest.approx(PROBLEM.flops / 50.0 / 1e6)
    assert rows[0].source_hash == rt.hashes[GOOD] and rows[0].env == ENV
    # Checked with the exact lse, timed as attention() runs by default (its lse dropped).
    assert rt.lse_unused[0] == (GOOD, False) and (BAD, False) in rt.lse_unused
    assert {u for v, u in rt.lse_unused[1:] if v == GOOD} == {True} and (BAD, True) not in rt.lse_unused


def test_warmup_applies_to_the_careful_timings_only(rt, table):
    tune_problem(rt, table, PROBLEM, log=lambda msg: None, warmup_ms=500.0)
    # One quick timing of the passing candidate without a warm-up, then three careful rounds with it.
    assert rt.warmups == [0.0, 500.0, 500.0, 500.0]


def test_the_winner_a_re_tune_would_replace_is_always_a_finalist(table, monkeypatch):
    """With one finalist the quick screen keeps only the fastest; the incumbent (the shipped
    winner, here quick-timed slower) is timed carefully beside it all the same, and only then."""
    slower = PipelinedConfig(**BF16, block_m=64, block_n=64, warps=4, stages=2).name
    times = {GOOD: 50.0, slower: 60.0}
    runtime = FakeRuntime(table, variants=(GOOD, slower))

    def fixed_time(fn, reps, min_ms=0.0, warmup_ms=0.0, graph_below_us=0.0):
        fn()
        runtime.warmups.append(warmup_ms)
        return Timing(times[runtime.calls[-1]], 1.0, 10)

    monkeypatch.setattr(tune_module, "time_variant", fixed_time)
    careful_runs = []
    for incumbent in (None, slower):
        runtime.warmups.clear()
        result = tune_problem(runtime, table, PROBLEM, careful_keep=1, warmup_ms=500.0, log=lambda m: None,
                              incumbent=incumbent)
        careful_runs.append(runtime.warmups.count(500.0))
        assert result.winner.variant == GOOD
    assert careful_runs == [3, 6]  # three interleaved careful rounds of one finalist, then of two


OTHER = PipelinedConfig(**BF16, block_m=64, block_n=64, warps=4, stages=2).name  # a second correct variant


def two_finalists(table, monkeypatch, times):
    """A fake runtime with GOOD and OTHER (both correct) timed at `times`, and the order of the
    careful timings (the variant of each call timed with a warm-up)."""
    runtime = FakeRuntime(table, variants=(GOOD, OTHER))
    careful_order = []

    def fixed_time(fn, reps, min_ms=0.0, warmup_ms=0.0, graph_below_us=0.0):
        fn()
        if warmup_ms:
            careful_order.append(runtime.calls[-1])
        return Timing(times[runtime.calls[-1]], 1.0, 10)

    monkeypatch.setattr(tune_module, "time_variant", fixed_time)
    return runtime, careful_order


@pytest.mark.parametrize("other_us, rounds", [(50.5, 3 + tune_module.TIE_ROUNDS), (60.0, 3)])
def test_near_ties_get_more_careful_rounds(table, monkeypatch, other_us, rounds):
    """Finalists within TIE_BAND of the best are timed TIE_ROUNDS more times; a clear loser is not."""
    runtime, order = two_finalists(table, monkeypatch, {GOOD: 50.0, OTHER: other_us})
    logged = []
    result = tune_problem(runtime, table, PROBLEM, careful_keep=2, warmup_ms=500.0, log=logged.append)
    assert result.winner.variant == GOOD
    assert order.count(GOOD) == rounds and order.count(OTHER) == rounds
    assert any("near tie" in line for line in logged) == (rounds > 3)


def test_careful_rounds_alternate_their_order(table, monkeypatch):
    """A B, B A, A B, ...: a drift of the card's clock within a round hits both finalists alike."""
    runtime, order = two_finalists(table, monkeypatch, {GOOD: 50.0, OTHER: 60.0})
    tune_problem(runtime, table, PROBLEM, careful_keep=2, warmup_ms=500.0, log=lambda m: None)
    first, second = order[0], order[1]
    assert {first, second} == {GOOD, OTHER}
    assert order == [first, second, second, first, first, second]


def test_the_incumbent_is_the_fastest_shipped_row_of_this_gpu_whatever_its_hash():
    from flashcore_cutlass.shipped import ShippedTable
    from flashcore_cutlass.table import Row
    from flashcore_cutlass.tune import incumbent

    def row(variant, us, gpu=ENV.gpu_name, key=str(PROBLEM.key)):
        return Row(variant, key, shape_text(PROBLEM), us, 0.1, 1.0, 10, 0.0, gpu, 132, "13.0", "2.11", "4.2.0.0",
                   "an-old-hash", "2026-11-28T00:00:00+00:00")

    shipped = ShippedTable([row(GOOD, 50.0), row(BAD, 40.0, gpu="NVIDIA H200"), row(BAD, 30.0, key="other")])
    assert incumbent(shipped, PROBLEM, ENV) == GOOD  # not another GPU's row, nor another key's
    assert incumbent(ShippedTable(), PROBLEM, ENV) is None


def test_incumbent_is_the_winner_of_the_shipped_shape_nearest_the_problem():
    """A key's shipped rows may hold several measured shapes (B6 and B8 decoding over 8k keys): the
    winner a re-tune of B6 is about to replace is B6's, not B8's."""
    from flashcore_cutlass.shipped import ShippedTable
    from flashcore_cutlass.table import Row

    b8, b6 = Problem("bf16", 128, False, 8, 8, 4, 8192), Problem("bf16", 128, False, 6, 8, 4, 8192)

    def row(variant, shape, us):
        return Row(variant, str(b8.key), shape, us, 0.1, 1.0, 10, 0.0, ENV.gpu_name, 132, "13.0", "2.11", "4.2.0.0",
                   "an-old-hash", "2026-11-29T00:00:00+00:00")

    shipped = ShippedTable([row(GOOD, shape_text(b8), 64.6), row(BAD, shape_text(b6), 57.4)])
    assert tune_module.incumbent(shipped, b8, ENV) == GOOD
    assert tune_module.incumbent(shipped, b6, ENV) == BAD
    assert tune_module.incumbent(shipped, Problem("bf16", 128, False, 5, 8, 4, 8192), ENV) == BAD


def test_shipped_suite_measures_every_shipped_shape(monkeypatch):
    from flashcore_cutlass import shipped as shipped_module
    from flashcore_cutlass.shipped import ShippedTable
    from flashcore_cutlass.table import Row

    suite = [Problem("bf16", 128, False, 8, 8, 4, 8192)]
    extra = Problem("bf16", 128, False, 6, 8, 4, 8192)

    def row(p):
        return Row(GOOD, str(p.key), shape_text(p), 60.0, 0.1, 1.0, 10, 0.0, ENV.gpu_name, 132, "13.0", "2.11",
                   "4.2.0.0", "h", "2026-11-29T00:00:00+00:00")

    monkeypatch.setattr(tune_module, "default_suite", lambda: list(suite))
    monkeypatch.setattr(shipped_module, "default_table", lambda: ShippedTable([row(suite[0]), row(extra)]))
    assert tune_module.shipped_suite() == suite + [extra]  # the key is in the suite, B6's shape is not
    table = ShippedTable([row(suite[0])])
    assert tune_module.lacking_current_rows(suite + [extra], table, ENV, {GOOD: "h"}) == [extra]


def test_decoding_problems_are_timed_on_rotating_kv_copies(rt, table, monkeypatch):
    """Few query rows (decoding): the timed calls cycle through K/V copies spanning 200 MB, so each
    reads its K/V from HBM as in a model; the correctness check and other problems use one K/V."""
    from flashcore_cutlass.tune import COLD_KV_BYTES, cold_kv_copies

    llama = Problem("bf16", 128, False, 1, 8, 4, 8192)  # 33.5 MB of K/V: 7 copies
    assert cold_kv_copies(llama) == -(-COLD_KV_BYTES // (8 * 8192 * 2 * 256)) == 7
    assert cold_kv_copies(Problem("bf16", 128, False, 1, 8, 4, 32768 * 4)) == 2  # one copy is past 200 MB
    assert cold_kv_copies(Problem("bf16", 128, False, 1, 8, 17, 8192)) == 1
    assert cold_kv_copies(PROBLEM) == 1  # 64 rows

    seen = []
    real_run = rt.run

    def run(variant, q, k, v, scale, out=None, lse=None, lse_unused=False):
        seen.append(k.data_ptr())
        return real_run(variant, q, k, v, scale)

    monkeypatch.setattr(rt, "run", run)

    def three_calls(fn, reps, min_ms=0.0, warmup_ms=0.0, graph_below_us=0.0):
        for _ in range(3):
            fn()
        return Timing(TIMES_US[rt.calls[-1]], 1.0, 10)

    monkeypatch.setattr(tune_module, "time_variant", three_calls)
    decode = Problem("bf16", 64, False, 1, 2, 4, 64)  # tiny: max(2, ...) copies would be thousands
    monkeypatch.setattr(tune_module, "COLD_KV_BYTES", 3 * 2 * 64 * 2 * 128)  # 3 copies of its K/V
    assert tune_module.cold_kv_copies(decode) == 3
    tune_problem(rt, table, decode, log=lambda m: None)
    # GOOD's check on the K/V it was made with, then its quick timing's three calls on copies 0 (that
    # K/V), 1 and 2; then BAD's check (rejected); then GOOD's careful rounds, cycling on.
    assert seen[1] == seen[0] and len(set(seen[1:4])) == 3 and seen[4] == seen[0]
    assert len(seen) == 5 + 3 * 3 and set(seen[5:]) == set(seen[1:4])


def test_rejected_candidate_loses_its_older_passing_row(rt, table):
    key = PROBLEM.key
    # An older build of BAD (same hash: same source) once passed on another shape of the key.
    other_shape = Problem("bf16", 64, False, 2, 1, 50, 50)
    assert other_shape.key == key
    table.record(BAD, key, shape=shape_text(other_shape), median_us=5.0, spread_us=0.0, tflops=1.0, samples=1,
                 max_abs_err=0.0, env=ENV, source_hash=rt.hashes[BAD])
    # Rows of other hashes or environments are not about this build here: kept.
    table.record(BAD, key, shape="s", median_us=5.0, spread_us=0.0, tflops=1.0, samples=1, max_abs_err=0.0,
                 env=ENV, source_hash="an-older-source")
    assert rt.registry.choose(PROBLEM).variant == BAD  # before: the old row wins dispatch
    tune_problem(rt, table, PROBLEM, log=lambda m: None)
    left = {(r.variant, r.source_hash) for r in table.rows(include_stale=True)}
    assert left == {(GOOD, rt.hashes[GOOD]), (BAD, "an-older-source")}
    rt.registry.invalidate()
    choice = rt.registry.choose(PROBLEM)
    assert (choice.variant, choice.reason) == (GOOD, "tuned")


def test_tune_fails_before_timing_when_the_table_is_read_only(rt, table, monkeypatch):
    real_connect = sqlite3.connect

    def read_only_connect(database, *args, uri=False, **kwargs):
        if not uri:
            database, uri = f"file:{Path(database).absolute()}?mode=ro", True
        return real_connect(database, *args, uri=uri, **kwargs)

    keep_open = sqlite3.connect(table.path)  # keeps the WAL index, so mode=ro can read
    keep_open.execute("SELECT 1 FROM results").fetchall()
    try:
        monkeypatch.setattr(sqlite3, "connect", read_only_connect)
        rt.table = TuningTable(table.path)
        assert rt.table.mode == "ro"
        with pytest.raises(TableError, match="read-only"):
            tune(rt, [PROBLEM], progress=False, log=lambda m: None)
        assert rt.calls == []  # no kernel ran
    finally:
        keep_open.close()


def test_tune_records_every_problem(rt, table):
    small = Problem("bf16", 64, False, 1, 1, 32, 32)
    results = tune(rt, [PROBLEM, small], progress=False, log=lambda m: None)
    assert [r.winner.variant for r in results] == [GOOD, GOOD]
    assert {r.problem_key for r in table.rows()} == {str(PROBLEM.key), str(small.key)}
    assert not math.isnan(results[0].sdpa_err)


def test_tune_a_value_head_dim_of_its_own(table, monkeypatch):
    """A Dv != D problem tunes like any other: its candidates are the padding variants of
    max(D, Dv), checked against the reference with V's head dim, and its row has its own key."""
    scalar = ScalarConfig(dtype="bf16", head_dim=128, causal=False, block_m=16, warps=4).name
    runtime = FakeRuntime(table, variants=(GOOD, scalar))
    monkeypatch.setattr(tune_module, "time_variant", lambda fn, reps, min_ms=0.0, warmup_ms=0.0, graph_below_us=0.0: (fn(), Timing(42.0, 1.0, 10))[1])
    problem = Problem("bf16", 64, False, 1, 2, 64, 64, head_dim_v=128)
    result = tune_problem(runtime, table, problem, log=lambda m: None)
    assert [c.variant for c in result.candidates] == [scalar] and result.winner.ok
    assert [r.problem_key for r in table.rows()] == ["bf16_d64v128_full_q64_k64_bh2"]
    runtime.registry.invalidate()
    assert runtime.registry.choose(problem).reason == "tuned"


def test_shape_text():
    assert shape_text(Problem("fp16", 128, True, 4, 16, 4096, 2048)) == "B4 H16 Sq4096 Sk2048"
    assert torch.float16 in tune_module.TORCH_DTYPES.values()


def test_tuning_runs_a_problem_with_its_mask_parameters():
    """mask_runner passes the problem's alignment, window and softcap as attention() would; the
    plain problems call Runtime.run as before. reference_mask gives the reference the same mask."""
    from flashcore_cutlass.problem import Problem
    from flashcore_cutlass.tune import mask_runner, reference_mask

    calls = []

    class FakeRuntime:
        def run(self, name, q, k, v, scale, **kw):
            calls.append((name, kw))

    rt = FakeRuntime()
    plain = Problem("bf16", 128, True, 1, 8, 4096, 4096)
    assert mask_runner(rt, plain) == rt.run and reference_mask(plain) == {"causal": True, "window": None}
    decode = Problem("bf16", 128, True, 1, 8, 64, 8192, bottom_right=True, window=(1023, 0), softcap=30.0)
    mask_runner(rt, decode)("v", None, None, None, 0.1)
    mask_runner(rt, decode)("v", None, None, None, 0.1, lse_unused=True)  # as the tuner times (attention()'s default)
    assert calls == [("v", {"causal_offset": 8128, "left_offset": 8128 - 1023, "softcap": 30.0, "lse_unused": False}),
                     ("v", {"causal_offset": 8128, "left_offset": 8128 - 1023, "softcap": 30.0, "lse_unused": True})]
    assert reference_mask(decode) == {"causal": "bottom_right", "window": (1023, 0)}
    two_sided = Problem("bf16", 128, True, 1, 8, 64, 8192, bottom_right=True, window=(16, 16))
    assert reference_mask(two_sided) == {"causal": False, "window": (16, 16)}


def test_default_suite_covers_decoding_with_its_alignment():
    from flashcore_cutlass.tune import decode_shapes, default_suite

    decode = decode_shapes()
    assert len(decode) == 32 and all(p.causal and p.bottom_right and p.seqlen_q < p.seqlen_k for p in decode)
    assert all("causalbr" in str(p.key) for p in decode)
    decode_keys = {p.key for p in decode}
    others = [p.key for p in default_suite() if p not in decode]
    assert len(decode_keys) == 32 and not decode_keys & set(others)  # keys of their own
    assert len(default_suite()) == len(others) + 32


def test_default_suite_covers_gqa_decoding_as_dispatch_runs_it():
    """The packed problems are the ones attention() dispatches for GQA decoding: unmasked, the
    key/value heads as heads, a group's query heads as rows, the keys the row sees."""
    from flashcore_cutlass.problem import gqa_key_range
    from flashcore_cutlass.tune import default_suite, gqa_decode_shapes

    packed = gqa_decode_shapes()
    assert len(packed) == 14 and all(not p.causal and p.seqlen_q < 64 for p in packed)
    llama = Problem("bf16", 128, False, 1, 8, 4, 8192)
    assert llama in packed and gqa_key_range(32, 8, 1, 8192, True, True, None) == (0, 8192)
    mistral = Problem("bf16", 128, False, 4, 8, 4, 4097)
    assert mistral in packed and gqa_key_range(32, 8, 1, 16384, True, True, (4096, 0)) == (16384 - 4097, 16384)
    suite = default_suite()
    assert all(p in suite for p in packed) and len({p.key for p in packed}) == 14


def test_model_shapes_are_the_benchmarked_models_as_dispatch_keys_them():
    from flashcore_cutlass.tune import MODEL_PREFILL, default_suite, model_shapes

    keys = [str(p.key) for p in model_shapes()]
    assert keys == ["bf16_d128_causalgqa4_q4096_k4096_bh32", "bf16_d256_causalscgqa2_q4096_k4096_bh16",
                    "bf16_d128_causalw8192gqa4_q8192_k8192_bh32", "bf16_d192v128_causal_q4096_k4096_bh16"]
    assert [p.heads_k for p in model_shapes()] == [8, 8, 8, 16]  # the tuner's inputs have the model's K/V heads
    assert len(MODEL_PREFILL) == 4 and all(p in default_suite() for p in model_shapes())


def test_few_cta_suite_is_causal_prefill_of_few_query_tiles_in_the_default_suite():
    """The few-CTA suite: causal, one sequence, fp16 and bf16, D64 and D128, at most 16 x 4096 / 64
    = 1024 query tiles of 64 rows, and all of it in the default suite (the shipped rows' keys)."""
    from flashcore_cutlass.tune import default_suite, few_cta_shapes

    shapes = few_cta_shapes()
    assert len(shapes) == 16 and all(p.causal and p.batch == 1 for p in shapes)
    assert {(p.dtype, p.head_dim) for p in shapes} == {(dt, d) for dt in ("fp16", "bf16") for d in (64, 128)}
    assert all(p.heads * -(-p.seqlen_q // 64) <= 1024 for p in shapes)
    suite = default_suite()
    assert all(p in suite for p in shapes)


def test_shipped_suite_re_measures_every_shape_of_the_shipped_table():
    """After a kernel change every shipped row is stale; tuning the 'shipped' suite must cover every
    key and measured shape the table holds: the default suite's, then each other row's problem as
    the row measured it."""
    from flashcore_cutlass.shipped import default_table
    from flashcore_cutlass.tune import default_suite, shipped_suite

    def measured(p):
        return str(p.key), shape_text(p)

    suite = shipped_suite()
    rows = default_table().rows
    assert rows and {(r.problem_key, r.shape) for r in rows} <= {measured(p) for p in suite}
    default = default_suite()
    assert suite[:len(default)] == default
    extra = suite[len(default):]  # one problem per (key, shape) the default suite lacks
    assert extra and len({measured(p) for p in extra}) == len(extra)
    assert not {measured(p) for p in extra} & {measured(p) for p in default}
    assert {measured(p) for p in extra} <= {(r.problem_key, r.shape) for r in rows}


def test_problem_of_row_rebuilds_plain_keys_only():
    from flashcore_cutlass.tune import problem_of_row

    assert problem_of_row("fp16_d64_causal_q4096_k4096_bh2", "B1 H2 Sq4096 Sk4096") == \
        Problem("fp16", 64, True, 1, 2, 4096, 4096)
    assert problem_of_row("bf16_d192v128_causal_q2048_k2048_bh32", "B2 H16 Sq2048 Sk2048").head_dim_v == 128
    with pytest.raises(ValueError, match="window sides"):
        problem_of_row("bf16_d128_causalw8192_q8192_k8192_bh32", "B1 H32 Sq8192 Sk8192")
    with pytest.raises(ValueError, match="has the key"):  # a shape of another key
        problem_of_row("bf16_d128_full_q4096_k4096_bh64", "B1 H32 Sq4096 Sk4096")
    # Grouped-query heads: the shape names the K/V heads the key's ratio was bucketed from.
    assert problem_of_row("bf16_d128_causalgqa8_q4096_k4096_bh32", "B1 H28 Sq4096 Sk4096 Hkv4") == \
        Problem("bf16", 128, True, 1, 28, 4096, 4096, heads_kv=4)
    with pytest.raises(ValueError, match="has the key"):  # a GQA key's row without its K/V heads
        problem_of_row("bf16_d128_causalgqa4_q4096_k4096_bh32", "B1 H32 Sq4096 Sk4096")
    for bad in ("B1 H32 Sq4096", "X1 H32 Sq4096 Sk4096"):
        with pytest.raises(ValueError, match="malformed shape"):
            problem_of_row("bf16_d128_full_q4096_k4096_bh32", bad)


@pytest.mark.parametrize("probe_us, graph_below_us, method", [
    (150.0, None, "events"),   # a grid-sized call: timed one call at a time, as bench_sdpa times the grid
    (60.0, None, "graph"),     # launch-bound: CUDA-graph replays
    (150.0, 300.0, "graph"),   # --graph-below-us moves the boundary
    (5.0, 0.0, "events"),      # 0: events always
])
def test_time_variant_picks_the_method_by_the_probe(monkeypatch, probe_us, graph_below_us, method):
    from flashcore_cutlass.timing import Timing

    used = []

    def fake_calls(fn, reps=30, warmup=3, min_ms=0.0, warmup_ms=0.0):
        used.append("events")
        return Timing(probe_us, 0.0, reps)

    def fake_graph(fn, calls_per_graph=20, reps=20):
        used.append("graph")
        return Timing(probe_us, 0.0, reps)

    monkeypatch.setattr(tune_module, "time_calls", fake_calls)
    monkeypatch.setattr(tune_module, "time_graph", fake_graph)
    kwargs = {} if graph_below_us is None else {"graph_below_us": graph_below_us}
    tune_module.time_variant(lambda: None, reps=5, **kwargs)
    assert used == ["events", method]  # the probe, then the timing proper
