"""Grouped-query attention and both causal alignments on the GPU: through the API (dispatch picks
the variant) and through one variant of each built family and mask (rt.run, the raw
causal_offset), against the fp32 reference."""

from __future__ import annotations

import pytest
import torch

import flashcore_cutlass as fc
from flashcore_codegen import config_from_name
from flashcore_cutlass.reference import random_qkv, reference_attention, sample_rows
from gpu_support import gpu_skip_reason, persistent_params, representative_variants, sdpa

pytestmark = pytest.mark.gpu
SKIP = gpu_skip_reason()
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def _visible(sq, sk, causal, offset, device):
    """(Sq, Sk) bool: which keys each query row sees."""
    visible = torch.ones(sq, sk, dtype=torch.bool, device=device)
    if causal is False:
        return visible
    if offset is None:
        offset = sk - sq if causal == "bottom_right" else 0
    return visible.tril(diagonal=max(-sq, min(offset, sk)))


def sdpa_baseline(q, k, v, causal, scale=None, offset=None):
    """torch SDPA on the same problem (K/V repeated per query head, the mask spelled out for
    anything but top-left): sets the tolerance. Rows without a key are NaN or 0 there: unused."""
    group = q.shape[1] // k.shape[1]
    if group > 1:
        k, v = (t.repeat_interleave(group, dim=1) for t in (k, v))
    if causal is False or ((causal is True or causal == "top_left") and offset in (None, 0)):
        return sdpa(q, k, v, causal is not False, scale)
    mask = _visible(q.shape[2], k.shape[2], causal, offset, q.device)
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


def check_gqa(out, lse, q, k, v, causal, scale=None, offset=None):
    """out/lse of a call against the fp32 reference on sampled rows: max|out-ref| within
    2*max|sdpa-ref| + 1e-3 where rows see keys, LSE within 1e-3 relative there; rows that see no
    key give exactly out = 0 and lse = +inf. No NaN anywhere."""
    torch.cuda.synchronize()
    b, h, sq, _ = q.shape
    assert out.shape == (b, h, sq, v.shape[3]) and out.dtype == q.dtype and lse.shape == (b, h, sq)
    assert lse.dtype == torch.float32
    assert not torch.isnan(out).any(), "output has NaN"
    assert not torch.isnan(lse).any(), "lse has NaN"
    rows = sample_rows(sq, count=512, device=q.device)
    ref_out, ref_lse = reference_attention(q, k, v, causal, scale=scale, rows=rows, causal_offset=offset)
    out, lse = out[:, :, rows], lse[:, :, rows]
    keyed = torch.isfinite(ref_lse)  # (B, H, rows): rows that see at least one key
    empty = ~keyed
    if empty.any():
        assert (ref_lse[empty] == float("inf")).all()
        assert (lse[empty] == float("inf")).all(), "a row without keys must give lse = +inf"
        assert not out[empty].any(), "a row without keys must give out = 0"
    if not keyed.any():
        return
    base = sdpa_baseline(q, k, v, causal, scale, offset)[:, :, rows].float()
    sdpa_err = (base - ref_out)[keyed].abs().max().item()
    assert sdpa_err < 0.05, f"SDPA itself is off by {sdpa_err}: the tolerance would be meaningless"
    err = (out.float() - ref_out)[keyed].abs().max().item()
    tol = 2 * sdpa_err + 1e-3
    assert err <= tol, f"max|out-ref| = {err:.3g} > {tol:.3g} (2*SDPA's {sdpa_err:.3g} + 1e-3)"
    lse_rel = ((lse[keyed] - ref_lse[keyed]).abs() / ref_lse[keyed].abs().clamp_min(1.0)).max().item()
    assert lse_rel <= 1e-3, f"lse relative error {lse_rel:.3g} > 1e-3"


def _qkv(b, h, hkv, sq, sk, d, dtype=torch.bfloat16, seed=0, dv=None):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    return random_qkv(b, h, sq, sk, d, dtype, generator=gen, heads_k=hkv, head_dim_v=dv)


# ---------------------------------------------------------------------------------------------
# Through the API: dispatch, the causal argument, the op's offset.
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("causal", [False, True, "bottom_right"])
@pytest.mark.parametrize("h,hkv", [(32, 8), (8, 1), (28, 4)], ids=["gqa32/8", "mqa8/1", "gqa28/4"])
def test_grouped_query_heads(rt, h, hkv, causal):
    q, k, v = _qkv(2, h, hkv, 333, 517, 128, seed=h + hkv)
    out, lse = fc.attention(q, k, v, causal=causal, return_lse=True)
    check_gqa(out, lse, q, k, v, causal)


SEQ_PAIRS = [(1, 777), (77, 1000), (127, 128), (17, 17), (128, 127), (1000, 77), (300, 1)]


@pytest.mark.parametrize("sq,sk", SEQ_PAIRS, ids=[f"q{a}_k{b}" for a, b in SEQ_PAIRS])
@pytest.mark.parametrize("causal", ["top_left", "bottom_right"])
def test_both_alignments(rt, causal, sq, sk):
    """Sq < Sk (decoding against a KV cache: bottom-right sees the whole past), Sq > Sk
    (bottom-right leaves the first Sq - Sk rows without keys: out 0, lse +inf), odd lengths,
    with grouped heads (8 query heads on 2)."""
    q, k, v = _qkv(2, 8, 2, sq, sk, 64, torch.float16, seed=sq * 7 + sk)
    out, lse = fc.attention(q, k, v, causal=causal, return_lse=True)
    check_gqa(out, lse, q, k, v, causal)
    if causal == "bottom_right" and sq > sk:
        assert (lse[:, :, : sq - sk] == float("inf")).all() and not out[:, :, : sq - sk].any()
        assert torch.isfinite(lse[:, :, sq - sk:]).all()


def test_bottom_right_decoding_sees_the_whole_cache(rt):
    """One query row, bottom-right: the same as non-causal attention over the cache (top-left
    would show it key 0 alone)."""
    q, k, v = _qkv(4, 16, 4, 1, 1500, 128, seed=5)
    causal = fc.attention(q, k, v, causal="bottom_right")
    full = fc.attention(q, k, v, causal=False)
    top_left, _ = reference_attention(q, k, v, "top_left")
    assert (causal.float() - full.float()).abs().max().item() < 2e-2
    assert (causal.float() - top_left).abs().max().item() > 0.1  # the alignments really differ here


@pytest.mark.parametrize("causal", [False, "top_left", "bottom_right"])
def test_head_dim_256_grouped(rt, causal):
    q, k, v = _qkv(1, 12, 3, 200, 150, 256, seed=11)
    out, lse = fc.attention(q, k, v, causal=causal, return_lse=True)
    check_gqa(out, lse, q, k, v, causal)


def test_strided_grouped_key_value(rt):
    """K/V as slices of one fused (B, S, 2, Hkv, D) tensor: head and row strides are not the
    dense ones, and step over the key/value heads only."""
    b, s, h, hkv, d = 2, 300, 8, 2, 128
    q = torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16)
    kv = torch.randn(b, s, 2, hkv, d, device="cuda", dtype=torch.bfloat16)
    k, v = (kv[:, :, i].transpose(1, 2) for i in range(2))
    assert not k.is_contiguous() and k.stride(-1) == 1 and k.shape == (b, hkv, s, d)
    for causal in (False, "bottom_right"):
        out, lse = fc.attention(q, k, v, causal=causal, scale=0.2, return_lse=True)
        check_gqa(out, lse, q, k, v, causal, scale=0.2)


def test_cached_decisions_per_head_count(rt):
    """One query shape with 8, 2 and 1 key/value heads in turn: each call computes its own
    grouping (the cache key holds the count; the op gets heads_k from k)."""
    for hkv in (8, 2, 1, 2, 8):
        q, k, v = _qkv(1, 8, hkv, 100, 140, 64, seed=hkv)
        out, lse = fc.attention(q, k, v, causal="bottom_right", return_lse=True)
        check_gqa(out, lse, q, k, v, "bottom_right")


def test_sdpa_drop_in_with_enable_gqa_matches_torch(rt):
    q, k, v = _qkv(1, 16, 4, 512, 512, 64, torch.float16)
    for is_causal in (False, True):
        ours = fc.scaled_dot_product_attention(q, k, v, is_causal=is_causal, enable_gqa=True)
        ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=is_causal, enable_gqa=True)
        assert (ours.float() - ref.float()).abs().max().item() < 1e-2
    with pytest.raises(ValueError, match="pass enable_gqa=True"):
        fc.scaled_dot_product_attention(q, k, v)
    # A single key/value head: torch broadcasts it without enable_gqa, and so does the drop-in.
    k1, v1 = k[:, :1], v[:, :1]
    ours = fc.scaled_dot_product_attention(q, k1, v1, is_causal=True)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k1, v1, is_causal=True)
    assert (ours.float() - ref.float()).abs().max().item() < 1e-2


def test_group_beyond_one_grid_is_refused(rt):
    """65536 query heads on one key/value head: more heads per group than one launch's grid
    holds (launch_chunked splits at group boundaries). Refused in Python and in the binding."""
    name = next(iter(sorted(rt.ids)))
    cfg = config_from_name(name)
    q = torch.randn(1, 65536, 1, cfg.head_dim, device="cuda", dtype=DTYPES[cfg.dtype])
    k = torch.randn(1, 1, 4, cfg.head_dim, device="cuda", dtype=DTYPES[cfg.dtype])
    with pytest.raises(ValueError, match="65536 heads per key/value head, at most 65535"):
        fc.attention(q, k, k, causal=cfg.causal)
    with pytest.raises(ValueError, match="65536 heads per key/value head, at most 65535"):
        rt.run(name, q, k, k, 0.1)


def test_binding_checks_head_counts_and_shapes(rt):
    """The op's own checks (what a cached shape relies on): one clear message each."""
    name = next(iter(sorted(rt.ids)))
    cfg = config_from_name(name)
    dtype, d = DTYPES[cfg.dtype], cfg.head_dim
    q = torch.randn(1, 6, 16, d, device="cuda", dtype=dtype)
    k4 = torch.randn(1, 4, 16, d, device="cuda", dtype=dtype)
    with pytest.raises(ValueError, match="query has 6 heads and key/value 4: the query head count must be a multiple"):
        rt.run(name, q, k4, k4, 0.1)
    k3 = torch.randn(1, 3, 16, d, device="cuda", dtype=dtype)
    with pytest.raises(ValueError,
                       match=r"value shape \[1, 4, 16, .*\] must match key shape \[1, 3, 16, .*\] but for the head dim"):
        rt.run(name, q, k3, k4, 0.1)
    k_batch = torch.randn(2, 3, 16, d, device="cuda", dtype=dtype)
    with pytest.raises(ValueError, match="key/value batch 2 must equal query batch 1"):
        rt.run(name, q, k_batch, k_batch, 0.1)
    out, lse = rt.run(name, q, k3, k3, 0.1)  # 6 on 3 heads: fine
    check_gqa(out, lse, q, k3, k3, cfg.causal, scale=0.1, offset=0 if cfg.causal else None)


# ---------------------------------------------------------------------------------------------
# One variant per family and mask: the raw causal_offset, grouped heads, chunked launches.
# ---------------------------------------------------------------------------------------------

def _representatives(per_mask: bool = True):
    names = representative_variants(per_mask) if not SKIP else []
    return names or [pytest.param(None, marks=pytest.mark.skip(reason=SKIP or "no variants built"))]


@pytest.mark.parametrize("sq,sk", [(200, 333), (333, 200), (64, 64)])
@pytest.mark.parametrize("variant", _representatives())
def test_family_grouped_heads_and_offsets(rt, variant, sq, sk):
    """Causal variants at the offsets the API passes (0, Sk - Sq) and beyond (clamped by the
    binding: every key visible, or no row with one); non-causal ones ignore the offset."""
    cfg = config_from_name(variant)
    q, k, v = _qkv(2, 6, 2, sq, sk, cfg.head_dim, DTYPES[cfg.dtype], seed=sq + sk)
    scale = cfg.head_dim ** -0.5
    offsets = [0, sk - sq, 37, -51, 10**9, -(10**9)] if cfg.causal else [0, -(10**9)]
    for offset in offsets:
        out, lse = rt.run(variant, q, k, v, scale, None, None, offset)
        try:
            check_gqa(out, lse, q, k, v, cfg.causal, scale, offset=offset)
        except AssertionError as exc:
            raise AssertionError(f"{variant} Sq={sq} Sk={sk} causal_offset={offset}: {exc}") from None


@pytest.mark.parametrize("variant", _representatives())
def test_family_preallocated_results_with_rows_without_keys(rt, variant):
    """NaN-poisoned out/lse passed in: every element written, rows without keys included."""
    cfg = config_from_name(variant)
    sq, sk = 150, 40
    q, k, v = _qkv(1, 4, 1, sq, sk, cfg.head_dim, DTYPES[cfg.dtype], seed=3)
    out = torch.full_like(q, float("nan"))
    lse = torch.full((1, 4, sq), float("nan"), device="cuda")
    offset = sk - sq if cfg.causal else 0
    rt.run(variant, q, k, v, 0.125, out, lse, offset)
    check_gqa(out, lse, q, k, v, cfg.causal, 0.125, offset=offset if cfg.causal else None)


@pytest.mark.parametrize("variant", _representatives(per_mask=False))
def test_family_grouped_heads_beyond_grid_limit(rt, variant):
    """66000 query heads on 8250 key/value heads (groups of 8): launched in chunks that start
    at a group boundary (65528 heads, then 2472), K/V pointers advanced per group."""
    cfg = config_from_name(variant)
    q, k, v = _qkv(1, 66000, 8250, 17, 33, cfg.head_dim, DTYPES[cfg.dtype], seed=9)
    scale = cfg.head_dim ** -0.5
    out, lse = rt.run(variant, q, k, v, scale)  # top-left for causal variants
    check_gqa(out, lse, q, k, v, cfg.causal, scale)


# (batch, heads, heads_k, Sq, Sk): each CTA of the persistent grid (132 on an H100) walks several
# tiles of different key counts one after the other: the cross-tile pipeline's handoffs, tiles
# without any key between tiles with keys (bottom-right, Sq > Sk), grouped heads.
MANY_TILES = [(3, 16, 4, 1000, 1000), (2, 24, 24, 700, 300), (2, 40, 8, 300, 2000), (1, 132, 132, 129, 129)]


@pytest.mark.parametrize("shape", MANY_TILES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("variant", persistent_params())
def test_persistent_ctas_walk_many_tiles(rt, variant, shape):
    cfg = config_from_name(variant)
    b, h, hkv, sq, sk = shape
    q, k, v = _qkv(b, h, hkv, sq, sk, cfg.head_dim, DTYPES[cfg.dtype], seed=sq + sk + h, dv=cfg.v_head_dim)
    scale = cfg.head_dim ** -0.5
    for offset in ([0, sk - sq] if cfg.causal else [0]):
        out = torch.full((b, h, sq, v.shape[3]), float("nan"), device="cuda", dtype=q.dtype)
        lse = torch.full((b, h, sq), float("nan"), device="cuda")
        rt.run(variant, q, k, v, scale, out, lse, offset)
        try:
            check_gqa(out, lse, q, k, v, cfg.causal, scale, offset=offset if cfg.causal else None)
        except AssertionError as exc:
            raise AssertionError(f"{variant} {shape} causal_offset={offset}: {exc}") from None
