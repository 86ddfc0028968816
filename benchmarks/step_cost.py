"""What an EvoToken step costs against a hard-mask step, and how much of it is decoding work.

    python -m benchmarks.step_cost [MODEL_DIR] [--prompts 6] [--repeats 2]

Both modes decode the same eval prompts alternately (so load changes hit both alike), with
early end off so every answer takes the same number of steps; the engine's own clock splits
each step into the model forward (ending with the output head) and the decoding rules.
"""

from __future__ import annotations

import argparse

import torch

from evotoken_core.decoding import DecodeRequest, DecodeSettings
from evotoken_core.engine import Engine
from evotoken_core.flags import model_or_embedded
from evotoken_core.model import load_model

from .workload import eval_prompts


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.step_cost", description=__doc__)
    p.add_argument("model", nargs="?", default=None)
    p.add_argument("--prompts", type=int, default=6)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    loaded = load_model(model_or_embedded(args.model), device="cpu")
    prompts = eval_prompts(loaded, "arith", args.prompts)
    totals = {mode: [0.0, 0.0, 0] for mode in ("evotoken", "hard_mask")}
    for _ in range(args.repeats):
        for prompt in prompts:
            for mode, t in totals.items():
                engine = Engine(loaded, 1)
                list(engine.stream([DecodeRequest("x", prompt, DecodeSettings(decoding=mode, early_end=False))]))
                t[0] += engine.stats.forward_s
                t[1] += engine.stats.decode_s
                t[2] += engine.stats.steps
    per_step = {}
    for mode, (forward, decode, steps) in totals.items():
        per_step[mode] = (forward + decode) / steps
        print(f"{mode:9s} {1000 * per_step[mode]:7.2f} ms/step  forward {1000 * forward / steps:7.2f}  "
              f"decoding {1000 * decode / steps:6.2f} ({decode / (forward + decode):.1%})")
    print(f"evotoken step / hard_mask step: {per_step['evotoken'] / per_step['hard_mask']:.3f}")


if __name__ == "__main__":
    main()
