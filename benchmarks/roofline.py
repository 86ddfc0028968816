"""How fast a forward pass could possibly be here: its FLOPs over the measured matmul rate.

Used to tell a slow implementation from a target the hardware cannot reach: when the engine's
forward already runs near the matmul rate, batching more rows cannot multiply throughput.
"""

from __future__ import annotations

import time

import torch


def forward_flops(config, rows: int, seq_len: int, head_positions: int) -> float:
    """Multiply-adds x2 of one forward: projections and MLP per token, attention per token
    pair, and the output head on the positions whose logits are needed."""
    d, L = config.d_model, config.n_layers
    kv = config.n_kv_heads * (d // config.n_heads)
    per_token = L * (d * d * 2 + d * kv * 2 + 3 * d * config.mlp_hidden_size)
    attention = L * 2 * seq_len * seq_len * d
    head = head_positions * d * config.vocab_size
    return 2.0 * rows * (per_token * seq_len + attention + head)


def matmul_gflops(device: str = "cpu", dtype: torch.dtype = torch.float32, n: int = 1024, repeat: int = 20) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeat):
        a @ b
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * repeat / (time.perf_counter() - start) / 1e9
