"""patch_sdpa end to end on a real model: a Llama-style transformers model with grouped-query
attention, built from a small config with random weights (no download), run with and without
the patch. Needs a Hopper GPU (H100/H200) and the transformers package."""

from __future__ import annotations

import pytest
import torch

import flashcore_cutlass as fc
from gpu_support import gpu_skip_reason

pytestmark = pytest.mark.gpu
transformers = pytest.importorskip("transformers", reason="needs the transformers package (pip install transformers)")

LAYERS = 3


def llama(dtype, heads=8, kv_heads=2, hidden=512):
    cfg = transformers.LlamaConfig(vocab_size=1000, hidden_size=hidden, intermediate_size=2 * hidden,
                                   num_hidden_layers=LAYERS, num_attention_heads=heads, num_key_value_heads=kv_heads,
                                   max_position_embeddings=1024)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(cfg).to("cuda", dtype).eval()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("heads,kv_heads,hidden", [(8, 2, 512), (4, 4, 512), (8, 1, 1024)],
                         ids=["gqa-d64", "mha-d128", "mqa-d128"])
def test_llama_patched_matches_unpatched(rt, dtype, heads, kv_heads, hidden):
    model = llama(dtype, heads, kv_heads, hidden)
    ids = torch.randint(0, 1000, (2, 300), device="cuda", generator=torch.Generator("cuda").manual_seed(1))
    with torch.no_grad():
        ref = model(ids).logits.float()
        with fc.patch_sdpa() as patch:
            out = model(ids).logits.float()
    assert patch.counts == {"flashcore": LAYERS, "torch": 0}, patch.reasons
    err = (out - ref).abs().max().item()
    scale = ref.abs().max().item()
    assert err <= 0.02 * scale, f"logits differ by {err:.3g} (max |logit| {scale:.3g})"


def test_llama_generation_with_kv_cache(rt):
    """Greedy decoding with a KV cache: the prefill is causal (flashcore); the one-token steps
    carry no mask and is_causal=False (flashcore too); tokens agree with torch's."""
    model = llama(torch.bfloat16)
    ids = torch.randint(0, 1000, (1, 64), device="cuda", generator=torch.Generator("cuda").manual_seed(2))
    with torch.no_grad():
        ref = model.generate(ids, max_new_tokens=8, do_sample=False)
        with fc.patch_sdpa() as patch:
            out = model.generate(ids, max_new_tokens=8, do_sample=False)
    assert patch.counts["flashcore"] >= LAYERS, (patch.counts, patch.reasons)
    assert (out == ref).float().mean().item() >= 0.9  # random weights: near-ties may flip a late token


def test_patched_calls_of_a_decided_shape_take_the_hot_path(rt):
    """A shape the patch sent to flashcore once is served from the binding's dispatch cache on the
    next calls (counted as flashcore, same results); calls flashcore does not take still go to torch
    with their reason, also for a cached shape (float32, a mask, an input that needs grad)."""
    from flashcore_cutlass.runtime import forget_decisions

    forget_decisions(rt)
    F = torch.nn.functional
    q, k, v = (torch.randn(2, 8, 200, 64, device="cuda", dtype=torch.float16) for _ in range(3))
    with fc.patch_sdpa() as patch:
        first = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        assert torch.ops.flashcore.dispatched_shapes() == 1
        for _ in range(3):
            assert torch.equal(F.scaled_dot_product_attention(q, k, v, is_causal=True), first)
        assert patch.counts == {"flashcore": 4, "torch": 0}
        F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True)
        F.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(200, 200, device="cuda", dtype=torch.bool))
        F.scaled_dot_product_attention(q.detach().requires_grad_(), k, v, is_causal=True)  # grad: torch's
    assert patch.counts == {"flashcore": 4, "torch": 3}, patch.reasons
    assert torch.equal(first, fc.scaled_dot_product_attention(q, k, v, is_causal=True))
