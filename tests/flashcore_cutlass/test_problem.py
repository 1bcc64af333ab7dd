import pytest

from flashcore_cutlass.problem import Problem, ProblemKey, bucket


@pytest.mark.parametrize("n, expected", [(1, 1), (2, 2), (3, 4), (64, 64), (65, 128), (4096, 4096), (4097, 8192)])
def test_bucket_rounds_up_to_power_of_two(n, expected):
    assert bucket(n) == expected


@pytest.mark.parametrize("n", [0, -5])
def test_bucket_rejects_nonpositive(n):
    with pytest.raises(ValueError):
        bucket(n)


def test_key_buckets_sequences_and_batch_heads():
    p = Problem("bf16", 128, True, batch=3, heads=5, seqlen_q=1000, seqlen_k=33)
    assert p.key == ProblemKey("bf16", 128, True, seqlen_q=1024, seqlen_k=64, batch_heads=16)


def test_key_str_and_parse_round_trip():
    key = ProblemKey("fp16", 64, False, 128, 4096, 32)
    assert str(key) == "fp16_d64_full_q128_k4096_bh32"
    assert ProblemKey.parse(str(key)) == key
    causal = ProblemKey("bf16", 256, True, 1, 2, 4)
    assert ProblemKey.parse(str(causal)) == causal


@pytest.mark.parametrize("text", ["", "bf16_d128_causal", "bf16_dX_causal_q1_k1_bh1"])
def test_parse_rejects_malformed(text):
    with pytest.raises(ValueError, match="malformed problem key"):
        ProblemKey.parse(text)


def test_flops_halved_for_causal():
    full = Problem("bf16", 128, False, 2, 4, 1024, 2048)
    assert full.flops == 4.0 * 2 * 4 * 1024 * 2048 * 128
    assert Problem("bf16", 128, True, 2, 4, 1024, 2048).flops == full.flops / 2


def test_problem_str():
    assert str(Problem("fp16", 64, True, 4, 16, 4096, 4096)) == "fp16 B4 H16 Sq4096 Sk4096 D64 causal"


def test_a_value_head_dim_of_its_own_has_its_own_key():
    """V's head dim enters key and name only when it differs (an equal one is the same problem)."""
    p = Problem("bf16", 192, True, 2, 16, 1000, 1000, head_dim_v=128)
    assert p.key == ProblemKey("bf16", 192, True, 1024, 1024, 32, head_dim_v=128)
    assert str(p.key) == "bf16_d192v128_causal_q1024_k1024_bh32"
    assert ProblemKey.parse(str(p.key)) == p.key
    assert str(p) == "bf16 B2 H16 Sq1000 Sk1000 D192 Dv128 causal"
    same = Problem("bf16", 128, True, 2, 16, 1000, 1000, head_dim_v=128)
    assert same == Problem("bf16", 128, True, 2, 16, 1000, 1000) and same.head_dim_v is None
    assert str(same.key) == "bf16_d128_causal_q1024_k1024_bh32" and same.value_head_dim == 128
    # Two GEMMs of their own widths: 2*B*H*Sq*Sk*(D + Dv), halved for causal.
    assert p.flops == 2.0 * 2 * 16 * 1000 * 1000 * (192 + 128) / 2
    with pytest.raises(ValueError, match="malformed problem key"):
        ProblemKey.parse("bf16_d192vx_causal_q1_k1_bh1")
