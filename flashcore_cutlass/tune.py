"""The tuner: for each problem, check every candidate variant against an fp32 reference,
time the survivors quickly, time the best few carefully (and the shipped winner the tuning
is about to replace, whatever its quick time), and record everything.

A rejected candidate also loses its rows for the problem's key (same build, same
environment, any shape): dispatch applies a measured shape's winner to the other shapes of the
key nearest it, so a variant that is wrong on one of them must not keep winning on an older
passing row."""

from __future__ import annotations

import itertools
import math
import sys
from dataclasses import dataclass, field

import torch

from .problem import Problem, ProblemKey, parse_shape, shape_heads_kv, shape_text
from .reference import random_qkv, reference_attention, sample_rows
from .runtime import Runtime, forget_decisions
from .shipped import default_table
from .table import TuningTable, pick_winner
from .timing import Timing, time_calls, time_graph

TORCH_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}

# Tolerance of a candidate: at most twice SDPA's own error against the same reference
# (plus an absolute floor), and LSE within 1e-3 relative.
ERR_FACTOR = 2.0
ERR_FLOOR = 1e-3
LSE_RTOL = 1e-3
# Below this, one call's GPU time is comparable to the launch overhead from Python: time
# CUDA-graph replays instead, so the table ranks kernels rather than host jitter. Above it, calls
# are timed one at a time with events, as benchmarks/bench_sdpa.py times the grid: back-to-back
# replays of one kernel let each call's launch and prologue overlap the previous call's tail
# (programmatic dependent launch), which a model's call, following other kernels, does not get,
# and ranked the grid's 100-300 us keys otherwise (benchmarks/NOTES.md, 2026-11-28 02:19-, call 2:
# D128 causal S = 512, the two-CTA 64x64 tile won as replays and ran 12 % behind 128x128 call by call).
GRAPH_BELOW_US = 100.0

# Finalists within TIE_BAND of the best after the three careful rounds get TIE_ROUNDS more: the
# tuner's run-to-run spread is 0.5-1 %, and three of the four stream-K keys were decided by less
# (an A/B of 9 interleaved rounds ranked them the other way: benchmarks/NOTES.md, 2026-11-29 03:22-).
TIE_BAND = 0.015
TIE_ROUNDS = 4


# Decoding problems (at most this many query rows per head, or per packed GQA group) read their K/V
# from HBM in a model: the KV cache of every layer is far beyond the 50 MB L2. Timed on one K/V that
# stays in L2 they favour variants that pay a fixed cost per call to read faster from L2: the global
# split-KV combine won (1, 8, 4 rows, 8192 keys) by 1.1 us warm and lost it by 0.8 us from HBM
# (benchmarks/NOTES.md, 2026-11-27 02:22-, calls 3 and 5). Their calls cycle through copies of K/V
# spanning at least COLD_KV_BYTES, as benchmarks/bench_decode.py times them.
COLD_KV_MAX_ROWS = 16
COLD_KV_BYTES = 200 << 20


def cold_kv_copies(problem: Problem) -> int:
    """How many K/V copies the tuner's timed calls cycle through: 1 (warm) unless ``problem`` is
    decoding-like (seqlen_q <= COLD_KV_MAX_ROWS), then enough to span COLD_KV_BYTES (at least 2)."""
    if problem.seqlen_q > COLD_KV_MAX_ROWS:
        return 1
    elem = 2  # fp16 / bf16
    kv_bytes = problem.batch * problem.heads_k * problem.seqlen_k * elem * (problem.head_dim + problem.value_head_dim)
    return max(2, -(-COLD_KV_BYTES // max(kv_bytes, 1)))


def time_variant(fn, reps: int, min_ms: float = 0.0, warmup_ms: float = 0.0,
                 graph_below_us: float = GRAPH_BELOW_US) -> Timing:
    """Time fn with the method that fits its size: a short probe picks graph replays for
    calls under ``graph_below_us``, so the full event-timed run is only spent where it is the
    measurement. ``warmup_ms``: event-timed calls first run alone that long (the card's clocks
    settle to their own power draw: benchmarks/bench_sdpa.py's protocol)."""
    probe = time_calls(fn, reps=3, warmup=2)
    if probe.median_us < graph_below_us:
        return time_graph(fn, calls_per_graph=20, reps=max(reps, 5))
    return time_calls(fn, reps=reps, warmup=0, min_ms=min_ms, warmup_ms=warmup_ms)


def baseline_grid(dtype: str = "bf16") -> list[Problem]:
    """BASELINES.md's throughput grid: B*S = 16384 tokens, H*D = 2048, causal and not."""
    out = []
    for d in (64, 128, 256):
        for s in (512, 1024, 2048, 4096, 8192, 16384):
            for causal in (False, True):
                out.append(Problem(dtype, d, causal, 16384 // s, 2048 // d, s, s))
    return out


def small_shapes() -> list[Problem]:
    """BASELINES.md's launch-bound shapes (issue 8's), in fp16 and bf16."""
    shapes = [(1, 8, 512, 64), (1, 8, 1024, 64), (4, 16, 512, 64), (8, 8, 512, 64), (1, 32, 512, 128),
              (2, 16, 1024, 128)]
    return [Problem(dt, d, False, b, h, s, s) for dt in ("fp16", "bf16") for b, h, s, d in shapes]


def long_key_shapes() -> list[Problem]:
    """Few short query tiles over many keys (chunked prefill, speculative decoding against a KV
    cache), non-causal, fp16 and bf16, D64 and D128: where split-KV clusters pay (too few query
    tiles to fill the SMs, a long serial key loop each)."""
    shapes = [(1, 8, 64, 8192), (1, 8, 128, 4096), (1, 32, 64, 4096), (4, 8, 64, 2048)]
    return [Problem(dt, d, False, b, h, sq, sk) for dt in ("fp16", "bf16") for d in (64, 128)
            for b, h, sq, sk in shapes]


def few_cta_shapes() -> list[Problem]:
    """One sequence's causal prefill with few query tiles per head (1-16 heads, 1-4k tokens), fp16
    and bf16, D64 and D128: a causal grid's longest CTA walks every key tile of its band, so the
    kernel is that CTA's chain, which key-split warpgroups halve (benchmarks/NOTES.md, 2026-11-27
    10:25-: 1.19-1.45x over the best one-warpgroup tile at (1, 8, 1024) and (1, 4, 4096))."""
    shapes = {64: [(1, 8, 1024), (1, 8, 2048), (1, 4, 4096), (1, 16, 1024)],
              128: [(1, 8, 1024), (1, 8, 2048), (1, 4, 4096), (1, 16, 2048)]}
    return [Problem(dt, d, True, b, h, s, s) for dt in ("fp16", "bf16") for d, rows in shapes.items()
            for b, h, s in rows]


def decode_shapes() -> list[Problem]:
    """Short queries over a KV cache with the bottom-right causal alignment (decoding, chunked
    prefill), fp16 and bf16, D64 and D128: one query row, 16, 64, 128 and 256 over 4k-8k keys, and
    one query row over 8k-32k keys at batch 1-2 (where the split count moves: benchmarks/NOTES.md,
    2026-11-29 06:37-)."""
    shapes = [(1, 32, 1, 8192), (1, 32, 64, 8192), (1, 8, 128, 8192), (4, 8, 16, 4096), (1, 32, 256, 4096),
              (1, 32, 1, 16384), (2, 32, 1, 8192), (1, 16, 1, 32768)]
    return [Problem(dt, d, True, b, h, sq, sk, bottom_right=True) for dt in ("fp16", "bf16") for d in (64, 128)
            for b, h, sq, sk in shapes]


def spec_decode_shapes() -> list[Problem]:
    """Speculative decoding (a few draft tokens per sequence against a KV cache, bottom-right causal)
    with grouped-query attention, as dispatch runs it where a packing variant is built
    (problem.gqa_row_packed: each K/V head's query heads as the rows of its tiles): Llama-3-8B
    (32/8 heads) with 4 and 8 query rows at batch 1 and 4, Qwen2-7B (28/4) with 4, Gemma-2 (16/8,
    D256, softcap) with 4, Llama-3.2-1B (32/8, D64: a draft model's shape) with 4; fp16 and bf16."""
    shapes = [(128, 1, 32, 4, 4, 8192, 0.0), (128, 4, 32, 4, 8, 4096, 0.0), (128, 1, 28, 7, 4, 4096, 0.0),
              (256, 2, 16, 2, 4, 8192, 50.0), (64, 1, 32, 4, 4, 8192, 0.0)]
    return [Problem(dt, d, True, b, h, sq, sk, bottom_right=True, softcap=cap, group=g) for dt in ("fp16", "bf16")
            for d, b, h, g, sq, sk, cap in shapes]


def gqa_decode_shapes() -> list[Problem]:
    """Decoding with grouped-query attention as dispatch runs it (problem.gqa_packed): each
    key/value head's group of query heads as the rows of one unmasked problem over the keys the
    row sees, (B, Hkv, G rows, keys): Llama-3 / Mistral (32/8 heads) at batch 1 and 8 over 8k and
    32k keys, Mistral's 4096-key window, Qwen2 (28/4), 16/8 heads at D256 with (Gemma-2) and
    without a softcap; fp16 and bf16."""
    shapes = [(128, 1, 8, 4, 8192, 0.0), (128, 8, 8, 4, 8192, 0.0), (128, 1, 8, 4, 32768, 0.0),
              (128, 4, 8, 4, 4097, 0.0), (128, 4, 4, 7, 4096, 0.0), (256, 2, 8, 2, 8192, 0.0),
              (256, 2, 8, 2, 8192, 50.0)]
    return [Problem(dt, d, False, b, h, sq, sk, softcap=cap) for dt in ("fp16", "bf16")
            for d, b, h, sq, sk, cap in shapes]


# Prefill attention of public model families (benchmarks/bench_models.py times them against SDPA):
# name -> (B, Hq, Hkv, S, D, window, softcap, Dv); causal, bf16. Dv: V's head dim where it differs
# (DeepSeek-V2's attention: Q/K 192 = 128 + 64 rotary, V 128).
MODEL_PREFILL = {
    "llama3-8b": (1, 32, 8, 4096, 128, None, None, None),
    "gemma2-9b-softcap": (1, 16, 8, 4096, 256, None, 50.0, None),
    "mistral-7b-window": (1, 32, 8, 8192, 128, (4096, 0), None, None),
    "deepseek-v2-lite-dv": (1, 16, 16, 4096, 192, None, None, 128),
}


def model_shapes() -> list[Problem]:
    """MODEL_PREFILL as the problems dispatch keys them (query heads count: B*H is B*Hq; the key
    holds the window's span, the softcap and the query heads per key/value head), so the shipped
    table names measured winners for them instead of the heuristic's pick."""
    return [Problem("bf16", d, True, b, hq, s, s, head_dim_v=dv, window=window, softcap=softcap or 0.0, heads_kv=hkv)
            for b, hq, hkv, s, d, window, softcap, dv in MODEL_PREFILL.values()]


def default_suite() -> list[Problem]:
    return (baseline_grid("bf16") + small_shapes() + long_key_shapes() + few_cta_shapes() + decode_shapes()
            + gqa_decode_shapes() + spec_decode_shapes() + model_shapes())


def problem_of_row(problem_key: str, shape: str) -> Problem:
    """The problem a table row was measured on, from its key and its exact shape ("B4 H16 Sq4096
    Sk4096"). Only a plain key says all of it: a window's sides, a softcap's value, a bottom-right
    offset or a packed group are not in the key (ValueError naming the key)."""
    key = ProblemKey.parse(problem_key)
    if key.bottom_right or key.window is not None or key.softcap or key.group > 1:
        raise ValueError(f"shipped key {problem_key} has run-time mask parameters its row does not record "
                         "(window sides, softcap, bottom-right, packed group): give it a suite of its own")
    dims = parse_shape(shape)
    if dims is None:
        raise ValueError(f"shipped row of {problem_key}: malformed shape {shape!r}")
    b, h, sq, sk = dims
    problem = Problem(key.dtype, key.head_dim, key.causal, b, h, sq, sk, head_dim_v=key.head_dim_v,
                      heads_kv=shape_heads_kv(shape))
    if problem.key != key:
        raise ValueError(f"shipped row of {problem_key}: its shape {shape!r} has the key {problem.key}")
    return problem


def shipped_suite() -> list[Problem]:
    """The default suite, then the problem of every shipped row (the package's table) whose key and
    shape the suite lacks, as the row measured it: tuned after a kernel change, which leaves every
    shipped row stale, it re-measures every shape the shipped table holds."""
    from .shipped import default_table

    problems = default_suite()
    have = {(p.key, shape_text(p)) for p in problems}
    for row in default_table().rows:
        if (ProblemKey.parse(row.problem_key), row.shape) not in have:
            problem = problem_of_row(row.problem_key, row.shape)
            have.add((problem.key, row.shape))
            problems.append(problem)
    return problems


def lacking_current_rows(problems: list[Problem], table, env, valid_hashes) -> list[Problem]:
    """The problems for whose key and exact shape ``table`` (a shipped table) holds no row current
    for ``env`` and the variants as built (``valid_hashes``): after a kernel change that left some
    rows valid (moved by benchmarks/rekey_shipped.py, their kernels byte-identical), the rest to
    measure again."""
    return [p for p in problems
            if not any(r.shape == shape_text(p) for r in table.current(p.key, env, valid_hashes))]


@dataclass
class Candidate:
    variant: str
    max_err: float = math.nan
    lse_err: float = math.nan
    ok: bool = False
    median_us: float = math.inf
    spread_us: float = 0.0
    samples: int = 0
    careful: bool = False
    careful_times: list[float] = field(default_factory=list)


@dataclass
class ProblemResult:
    problem: Problem
    sdpa_err: float
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def winner(self) -> Candidate | None:
        ok = [c for c in self.candidates if c.ok]
        return min(ok, key=lambda c: c.median_us) if ok else None


def mask_runner(rt: Runtime, problem: Problem):
    """run(variant, q, k, v, scale, lse_unused=False): Runtime.run with the problem's mask parameters
    (alignment, window, softcap) as attention() would pass them."""
    causal_offset, left_offset = problem.mask_arguments()
    if causal_offset == 0 and left_offset is None and not problem.softcap:
        return rt.run
    return lambda name, q, k, v, scale, lse_unused=False: rt.run(
        name, q, k, v, scale, causal_offset=causal_offset, left_offset=left_offset, softcap=problem.softcap,
        lse_unused=lse_unused)


def reference_mask(problem: Problem) -> dict:
    """The problem's mask as reference_attention's arguments (written from its own definition:
    a window with right > 0 or open is the unmasked, bottom-right-centred one)."""
    if problem.window is not None and problem.window[1] != 0:
        return {"causal": False, "window": problem.window}
    causal = ("bottom_right" if problem.bottom_right else True) if problem.causal else False
    return {"causal": causal, "window": problem.window}


def accepts(max_err: float, tol: float, lse_rel: float, finite: bool) -> bool:
    """The acceptance rule against the fp32 reference (the tuner's and the benchmarks'): finite,
    the output within ``tol``, the LSE within LSE_RTOL relative; NaN errors fail (every comparison
    with NaN is False)."""
    return finite and max_err <= tol and lse_rel <= LSE_RTOL


def check_candidate(run, variant: str, q, k, v, problem: Problem, rows, ref_out, ref_lse, tol: float):
    """``run``: mask_runner's call of the problem's variants."""
    out, lse = run(variant, q, k, v, 1.0 / math.sqrt(problem.head_dim))
    out_rows = out[:, :, rows].float()
    err = (out_rows - ref_out).abs().max().item()
    lse_rel = ((lse[:, :, rows] - ref_lse).abs() / ref_lse.abs().clamp_min(1.0)).max().item()
    finite = bool(torch.isfinite(out_rows).all().item())
    return err, lse_rel, accepts(err, tol, lse_rel, finite)


def incumbent(shipped, problem: Problem, env) -> str | None:
    """The variant the shipped table's rows of ``problem``'s key on this GPU (model and SM count)
    name fastest on the measured shape nearest the problem's, whatever source hash they carry
    (after a kernel change they are stale): the winner a re-tune is about to replace. tune_problem
    times it carefully whatever the quick screen says, so that a winner is never dropped on one
    quick timing (2026-11-29: with 4 finalists the
    screen left out the key-split winner of bf16 (1, 4, 4096, 64) causal, 36.5 us, and the re-tune
    shipped a 43.3 us tile)."""
    rows = [r for r in shipped.rows if r.problem_key == str(problem.key)
            and (r.gpu_name, r.sm_count) == (env.gpu_name, env.sm_count)]
    row = pick_winner(rows, shape_text(problem))
    return row.variant if row else None


def tune_problem(rt: Runtime, table: TuningTable, problem: Problem, quick_reps: int = 8,
                 careful_keep: int = 3, careful_ms: float = 60.0, drop_factor: float = 1.5,
                 log=print, warmup_ms: float = 0.0, graph_below_us: float = GRAPH_BELOW_US,
                 incumbent: str | None = None, tie_band: float = TIE_BAND, tie_rounds: int = TIE_ROUNDS) -> ProblemResult:
    dtype = TORCH_DTYPES[problem.dtype]
    q, k, v = random_qkv(problem.batch, problem.heads, problem.seqlen_q, problem.seqlen_k, problem.head_dim, dtype,
                         head_dim_v=problem.head_dim_v, heads_k=problem.heads_k)
    rows = sample_rows(problem.seqlen_q, device=q.device)
    ref_out, ref_lse = reference_attention(q, k, v, rows=rows, softcap=problem.softcap or None, **reference_mask(problem))
    # The tolerance's scale: SDPA's error on the same inputs (without the window or softcap, which
    # it does not take; the error of the low-precision math is of the same size).
    sdpa = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=problem.causal and not problem.bottom_right,
                                                            enable_gqa=problem.heads_k != problem.heads)
    if problem.window is not None or problem.softcap or problem.bottom_right:
        ref_out_sdpa, _ = reference_attention(q, k, v, problem.causal and not problem.bottom_right, rows=rows)
    else:
        ref_out_sdpa = ref_out
    sdpa_err = (sdpa[:, :, rows].float() - ref_out_sdpa).abs().max().item()
    tol = ERR_FACTOR * sdpa_err + ERR_FLOOR
    result = ProblemResult(problem, sdpa_err)
    scale = 1.0 / math.sqrt(problem.head_dim)
    run = mask_runner(rt, problem)
    # K/V copies the timed calls cycle through (cold_kv_copies; the check above used the first).
    kvs = [(k, v)] + [(k.clone(), v.clone()) for _ in range(cold_kv_copies(problem) - 1)]

    # Timed as attention() runs by default: its lse dropped (a kernel may skip what only an exact lse
    # needs); the check above took the exact one.
    def timed(name):
        turn = itertools.count()
        return lambda: run(name, q, *kvs[next(turn) % len(kvs)], scale, lse_unused=True)

    # Pass 1: correctness, then a quick timing of each correct candidate.
    for name in rt.registry.candidates(problem):
        cand = Candidate(name)
        cand.max_err, cand.lse_err, cand.ok = check_candidate(run, name, q, k, v, problem, rows, ref_out, ref_lse, tol)
        result.candidates.append(cand)
        if not cand.ok:
            log(f"  REJECTED {name}: max|err| {cand.max_err:.3g} (tol {tol:.3g}), lse rel err {cand.lse_err:.3g}")
            # At once, not with the records at the end: a crash later must not leave it winning.
            table.forget(name, problem.key, rt.env, rt.hashes[name])
            continue
        t = time_variant(timed(name), reps=quick_reps, graph_below_us=graph_below_us)
        cand.median_us, cand.spread_us, cand.samples = t.median_us, t.spread_us, t.samples

    # Pass 2: careful timing of the best few; the rest keep their quick numbers.
    ok = sorted((c for c in result.candidates if c.ok), key=lambda c: c.median_us)
    if ok:
        finalists = [c for c in ok[:careful_keep] if c.median_us <= drop_factor * ok[0].median_us]
        # The winner to be replaced (incumbent()) is always a finalist where it is a correct candidate.
        finalists += [c for c in ok if c.variant == incumbent and c not in finalists]

        def careful_round(cands, forward):
            for cand in cands if forward else cands[::-1]:
                t = time_variant(timed(cand.variant), reps=10, min_ms=careful_ms / 3, warmup_ms=warmup_ms,
                                 graph_below_us=graph_below_us)
                cand.careful_times.append(t.median_us)
                cand.spread_us = max(cand.spread_us if cand.careful else 0.0, t.spread_us)
                cand.careful = True
                cand.samples += t.samples
            for cand in cands:
                times = sorted(cand.careful_times)
                cand.median_us = times[len(times) // 2]

        # Interleaved rounds in alternating order (A B C, C B A, ...): a drift of the card's clock
        # within a round hits every finalist alike.
        rounds = 3
        for r in range(rounds):
            careful_round(finalists, r % 2 == 0)
        # Near ties: the finalists within tie_band of the best are timed tie_rounds more times, so
        # that a 0.5-1 % win is decided by more than three medians (the tuner's run-to-run spread).
        best = min(c.median_us for c in finalists)
        tied = [c for c in finalists if c.median_us <= best * (1.0 + tie_band)]
        if len(tied) > 1 and tie_rounds > 0:
            log(f"  near tie within {tie_band:.1%}: {', '.join(c.variant for c in tied)}; {tie_rounds} more rounds")
            for r in range(rounds, rounds + tie_rounds):
                careful_round(tied, r % 2 == 0)

    shape = shape_text(problem)
    for cand in result.candidates:
        if cand.ok:
            table.record(
                cand.variant, problem.key, shape=shape, median_us=cand.median_us, spread_us=cand.spread_us,
                tflops=problem.flops / cand.median_us / 1e6, samples=cand.samples, max_abs_err=cand.max_err,
                env=rt.env, source_hash=rt.hashes[cand.variant],
            )
    return result


def tune(rt: Runtime, problems: list[Problem], progress: bool = True, log=None, **kwargs) -> list[ProblemResult]:
    from tqdm import tqdm

    log = log or (lambda msg: tqdm.write(msg, file=sys.stderr))
    rt.table.check(write=True)  # a read-only or unusable table fails now, not after the timing
    results = []
    bar = tqdm(problems, desc="tuning", unit="shape", file=sys.stderr, disable=not progress)
    shipped = default_table()
    for problem in bar:
        bar.set_postfix_str(str(problem))
        r = tune_problem(rt, rt.table, problem, log=log, incumbent=incumbent(shipped, problem, rt.env), **kwargs)
        w = r.winner
        if w is None:
            log(f"{problem}: no candidate passed the correctness check")
        else:
            log(f"{problem}: {w.variant} {w.median_us:.1f} us ({problem.flops / w.median_us / 1e6:.0f} TFLOP/s)")
        results.append(r)
        del r
        torch.cuda.empty_cache()
    forget_decisions(rt)  # the next call dispatches from the new measurements
    return results
