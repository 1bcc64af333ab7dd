"""Time torch SDPA (default backend) on the sm90 harness's timing shapes, same card/run.

Prints one line per shape: median ms over 20 (50 with "long") timed calls (CUDA events, 5 warmups) and TFLOP/s
with the harness's FLOP count (4*B*H*Sq*Sk*D, halved for causal).
"""
import sys

import torch
import torch.nn.functional as F

SHAPES = [  # (B, H, S, D, causal)
    (4, 16, 4096, 128, False), (2, 16, 8192, 128, False),
    (4, 16, 4096, 128, True), (2, 16, 8192, 128, True),
    (4, 16, 4096, 64, False), (4, 16, 4096, 64, True),
    (4, 16, 4096, 256, False), (4, 16, 4096, 256, True),
]
# Run 4: the short end of the 36-cell grid (B*S = 16k tokens, H*D = 2048), both masks.
SHAPES_SHORT = [(16384 // s, 2048 // d, s, d, c) for d in (64, 128, 256) for s in (512, 1024, 2048, 4096)
                for c in (False, True)]


def main() -> None:
    dtype = torch.float16 if "fp16" in sys.argv[1:] else torch.bfloat16
    iters = 50 if "long" in sys.argv[1:] else 20
    print(f"torch {torch.__version__} cudnn {torch.backends.cudnn.version()} {torch.cuda.get_device_name()} {dtype}")
    shapes = SHAPES_SHORT if "short" in sys.argv[1:] else SHAPES
    if "run5" in sys.argv[1:]:  # D64 short end, D128/D256 long end (non-causal; D256 both masks)
        shapes = [(16384 // s, 32, s, 64, c) for s in (512, 1024, 2048, 4096) for c in (False, True)]
        shapes += [(16384 // s, 2048 // d, s, d, c) for s in (4096, 8192, 16384) for d in (128, 256)
                   for c in ((False, True) if d == 256 else (False,))]
    for b, h, s, d, causal in shapes:
        q, k, v = (torch.randn(b, h, s, d, device="cuda", dtype=dtype) for _ in range(3))
        for _ in range(5):
            F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        times = []
        for _ in range(iters):
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            e1.record()
            torch.cuda.synchronize()
            times.append(e0.elapsed_time(e1))
        times.sort()
        ms = times[len(times) // 2]
        flops = 4 * b * h * s * s * d / (2 if causal else 1)
        print(f"SDPA B={b} H={h} S={s} D={d} causal={int(causal)} time_ms={ms:.4f} tflops={flops / ms / 1e9:.1f}")


if __name__ == "__main__":
    main()
