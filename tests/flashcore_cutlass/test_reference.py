"""The fp32 reference on CPU: grouped-query heads, both causal alignments, rows without keys.
Every GPU test measures the kernels against it, so it is checked against torch itself here."""

from __future__ import annotations

import math

import pytest
import torch

from flashcore_cutlass.reference import alignment_offset, random_qkv, reference_attention, sample_rows, visible_range


def _qkv(b, h, sq, sk, d=64, heads_k=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return random_qkv(b, h, sq, sk, d, torch.float32, device="cpu", generator=gen, heads_k=heads_k)


def _explicit(q, k, v, visible, scale):
    """softmax(scale * q.k) v over the keys ``visible`` (Sq, Sk) marks, written out in float64."""
    s = (q.double() @ k.double().transpose(-1, -2)) * scale
    s = s.masked_fill(~visible, float("-inf"))
    return torch.softmax(s, dim=-1) @ v.double(), torch.logsumexp(s, dim=-1)


def test_alignment_offsets():
    assert alignment_offset(False, 5, 9) is None
    assert alignment_offset(True, 5, 9) == alignment_offset("top_left", 5, 9) == 0
    assert alignment_offset("bottom_right", 5, 9) == 4
    assert alignment_offset("bottom_right", 9, 5) == -4
    with pytest.raises(ValueError, match="causal must be False, True, 'top_left' or 'bottom_right', got 'bottom-right'"):
        alignment_offset("bottom-right", 5, 9)


@pytest.mark.parametrize("causal", [False, True])
def test_top_left_and_full_match_torch_sdpa(causal):
    q, k, v = _qkv(2, 3, 7, 11)
    out, lse = reference_attention(q, k, v, causal)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    visible = torch.ones(7, 11, dtype=torch.bool).tril() if causal else torch.ones(7, 11, dtype=torch.bool)
    _, ref_lse = _explicit(q, k, v, visible, 1 / math.sqrt(64))
    torch.testing.assert_close(lse, ref_lse.float(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sq,sk", [(5, 12), (12, 5), (8, 8), (1, 9)], ids=["Sq<Sk", "Sq>Sk", "Sq=Sk", "decode"])
def test_bottom_right_is_the_lower_right_mask(sq, sk):
    """Row r sees keys 0..r + Sk - Sq (torch's causal_lower_right, FlashAttention's causal)."""
    q, k, v = _qkv(1, 2, sq, sk)
    out, lse = reference_attention(q, k, v, "bottom_right", scale=0.3)
    visible = torch.ones(sq, sk, dtype=torch.bool).tril(diagonal=sk - sq)
    has_key = visible.any(dim=-1)
    exp_out, exp_lse = _explicit(q, k, v, visible, 0.3)
    torch.testing.assert_close(out[:, :, has_key], exp_out[:, :, has_key].float(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lse[:, :, has_key], exp_lse[:, :, has_key].float(), rtol=1e-5, atol=1e-5)
    # Rows without a key (Sq > Sk: the first Sq - Sk): out = 0, lse = +inf (the kernels' convention).
    assert int((~has_key).sum()) == max(0, sq - sk)
    assert torch.equal(out[:, :, ~has_key], torch.zeros_like(out[:, :, ~has_key]))
    assert (lse[:, :, ~has_key] == float("inf")).all()
    if sq == sk:
        assert torch.equal(out, reference_attention(q, k, v, "top_left", scale=0.3)[0])


def test_bottom_right_matches_torch_causal_lower_right_where_rows_have_keys():
    bias = pytest.importorskip("torch.nn.attention.bias")
    q, k, v = _qkv(2, 2, 6, 13)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias.causal_lower_right(6, 13))
    torch.testing.assert_close(reference_attention(q, k, v, "bottom_right")[0], expected, rtol=1e-5, atol=1e-5)


def test_raw_offset_replaces_the_alignment():
    q, k, v = _qkv(1, 1, 6, 9)
    for offset in (-8, -3, 0, 2, 3, 20):
        out, lse = reference_attention(q, k, v, True, causal_offset=offset)
        visible = torch.ones(6, 9, dtype=torch.bool).tril(diagonal=offset)
        has_key = visible.any(dim=-1)
        exp_out, _ = _explicit(q, k, v, visible, 1 / 8)
        torch.testing.assert_close(out[:, :, has_key], exp_out[:, :, has_key].float(), rtol=1e-5, atol=1e-5)
        assert (lse[:, :, ~has_key] == float("inf")).all() and not out[:, :, ~has_key].any()
    # Without a causal mask the offset means nothing.
    assert torch.equal(reference_attention(q, k, v, False, causal_offset=-8)[0], reference_attention(q, k, v)[0])


def test_no_keys_at_all_stay_minus_inf():
    """Sk = 0: an empty sum for every row (lse -inf, as the API documents), whatever the mask."""
    q, k, v = _qkv(1, 2, 4, 0)
    for causal in (False, True, "bottom_right"):
        out, lse = reference_attention(q, k, v, causal)
        assert not out.any() and (lse == float("-inf")).all()


@pytest.mark.parametrize("h,hkv", [(8, 2), (6, 1), (4, 4)])
@pytest.mark.parametrize("causal", [False, "top_left", "bottom_right"])
def test_grouped_query_heads_read_their_group(h, hkv, causal):
    """Query head i reads key/value head i // (H // Hkv): the same as torch SDPA's enable_gqa and
    as the reference on repeated K/V."""
    q, k, v = _qkv(2, h, 9, 14, heads_k=hkv)
    out, lse = reference_attention(q, k, v, causal)
    group = h // hkv
    k_rep, v_rep = (t.repeat_interleave(group, dim=1) for t in (k, v))
    rep_out, rep_lse = reference_attention(q, k_rep, v_rep, causal)
    assert torch.equal(out, rep_out) and torch.equal(lse, rep_lse)
    if causal is not False:
        return
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    # Head 1 of a group of two or more reads key/value head 0, not 1 (a copy per head would).
    if group > 1:
        alone, _ = reference_attention(q[:, 1:2], k[:, 0:1], v[:, 0:1], causal)
        torch.testing.assert_close(out[:, 1:2], alone, rtol=0, atol=0)


def test_grouped_query_rows_and_chunks():
    """Sampled rows and small chunks give the rows of the full computation."""
    q, k, v = _qkv(2, 6, 40, 23, heads_k=3)
    full_out, full_lse = reference_attention(q, k, v, "bottom_right")
    rows = sample_rows(40, count=8)
    out, lse = reference_attention(q, k, v, "bottom_right", rows=rows, chunk_bytes=1)
    torch.testing.assert_close(out, full_out[:, :, rows], rtol=1e-6, atol=1e-6)
    assert torch.equal(lse.isinf(), full_lse[:, :, rows].isinf())
    finite = lse.isfinite()
    torch.testing.assert_close(lse[finite], full_lse[:, :, rows][finite], rtol=1e-6, atol=1e-6)


def test_head_counts_that_do_not_divide():
    q, _, _ = _qkv(1, 6, 4, 4)
    k = torch.randn(1, 4, 4, 64)
    with pytest.raises(ValueError, match="query has 6 heads and key/value 4"):
        reference_attention(q, k, k, False)


def test_visible_range_follows_flash_attention_windows():
    """FlashAttention: row r sees keys [r + Sk - Sq - left, r + Sk - Sq + right], -1 unbounded;
    causal sets right = 0 and keeps its own alignment."""
    assert visible_range(False, None, 5, 9) == (None, None)
    assert visible_range(True, None, 5, 9) == (None, 0)
    assert visible_range(False, (3, 2), 5, 9) == (4 - 3, 4 + 2)
    assert visible_range(False, (-1, 2), 5, 9) == (None, 6)
    assert visible_range(False, (3, -1), 5, 9) == (1, None)
    assert visible_range(True, (3, 0), 5, 9) == (-3, 0)
    assert visible_range("bottom_right", (3, 0), 5, 9) == (1, 4)


@pytest.mark.parametrize("window,softcap", [((2, 1), None), ((-1, 0), 3.0), ((4, -1), 0.5)])
def test_window_and_softcap_match_a_float64_definition(window, softcap):
    gen = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(1, 2, n, 16, generator=gen) for n in (7, 11, 11))
    out, lse = reference_attention(q, k, v, False, scale=0.7, window=window, softcap=softcap)
    r = torch.arange(7)[:, None] + 4  # bottom-right: Sk - Sq = 4
    c = torch.arange(11)[None, :]
    left, right = window
    visible = (c >= r - left if left >= 0 else True) & (c <= r + right if right >= 0 else True)
    s = (q.double() @ k.double().transpose(-1, -2)) * 0.7
    if softcap:
        s = torch.tanh(s / softcap) * softcap
    s = s.masked_fill(~torch.as_tensor(visible), float("-inf"))
    torch.testing.assert_close(out.double(), torch.softmax(s, -1) @ v.double(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lse.double(), torch.logsumexp(s, -1), atol=1e-5, rtol=1e-5)
