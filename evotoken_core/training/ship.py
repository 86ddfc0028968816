"""Packing trained runs into the embedded demo model (`evotoken_core/assets/default_model`).

Both models carry the decoding they were measured with (`generation_config.json`, key
`evotoken`): 48-token answers, block 4, half a step per token. The server, `evotoken generate`
and `evotoken eval` use it wherever the user sets none.

Weights are stored in float16 (half the size of float32, 10 mantissa bits against bfloat16's
7) and every command loads them in float32; packing checks that the stored model's logits
agree with the trained ones, and that the whole directory fits the size budget.

A CTS run with LoRA also ships its adapter, `adapter/` (float16), which applies to the
pretrain-only model the way the published EvoToken LoRA applies to LLaDA-8B:
`--model .../default_model/pretrain_only --lora .../default_model/adapter`, or, when the
pretrain-only model is itself the default (`--default pretrain`), `--lora
.../default_model/adapter` alone. Packing checks that the base plus the stored adapter gives the
CTS run's logits.

    python -m evotoken_core.training.ship --pretrain runs/pretrain --cts runs/cts \
        --dest evotoken_core/assets/default_model
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from transformers import AutoTokenizer

from evotoken_core.data.chat_template import install_chat_template
from evotoken_core.decoding import RecommendedDecoding
from evotoken_core.model.modeling import LLaDAModelLM

from .checkpoint import save_llada
from .lora import ADAPTER_DIR

PRETRAIN_ONLY_DIR = "pretrain_only"
KEEP = {"MODEL_CARD.md", "scores.json"}  # hand-written files survive a re-pack
MAX_BYTES = 36 * 1024 * 1024  # both models in float16 and an all-linear r128 adapter
# The demo models answer in at most 48 tokens (their training answer length); block 4 scored
# 13 points above block 8 at the same number of model calls (MODEL_CARD.md).
DEMO_DECODING = RecommendedDecoding(max_tokens=48, block_length=4, steps_ratio=0.5)


@torch.no_grad()
def max_logit_diff(a, b) -> float:
    """The largest logit difference between two models on a fixed random probe (2 × 64 ids)."""
    probe = torch.randint(0, b.config.vocab_size, (2, 64), generator=torch.Generator().manual_seed(0))
    return float((a(input_ids=probe).logits - b(input_ids=probe).logits).abs().max())


def pack(source: str | Path, dest: str | Path, dtype: str = "float16",
         decoding: RecommendedDecoding = DEMO_DECODING) -> float:
    """Write `source` to `dest` in `dtype` with its recommended `decoding`; returns the largest
    logit difference (float32 load)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for child in dest.iterdir():
        if child.is_file() and child.name not in KEEP:
            child.unlink()
    model = LLaDAModelLM.from_pretrained(source, dtype=torch.float32).eval()
    # The demo chat template adds the trained instruction line to a bare question, whatever
    # template the run was trained under (data.chat_template).
    tokenizer = install_chat_template(AutoTokenizer.from_pretrained(source))
    save_llada(model, tokenizer, dest, dtype)
    decoding.write(dest)
    return max_logit_diff(model, LLaDAModelLM.from_pretrained(dest, dtype=torch.float32).eval())


def pack_adapter(source: str | Path, dest: str | Path, base: str | Path, merged: str | Path) -> float:
    """Write the peft adapter `source` to `dest` in float16, recorded against `base` (the shipped
    pretrain-only model); returns the largest logit difference between `base` + the stored
    adapter and the `merged` model (the CTS run's merged weights, or their packed copy; both
    float32 loads)."""
    from peft import PeftModel
    from safetensors.torch import load_file, save_file

    source, dest = Path(source), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    weights = load_file(str(source / "adapter_model.safetensors"))
    save_file({k: v.to(torch.float16).contiguous() for k, v in weights.items()},
              str(dest / "adapter_model.safetensors"))
    config = json.loads((source / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(base)
    (dest / "adapter_config.json").write_text(json.dumps(config, indent=2))
    tuned = PeftModel.from_pretrained(LLaDAModelLM.from_pretrained(base, dtype=torch.float32), str(dest)).eval()
    return max_logit_diff(tuned, LLaDAModelLM.from_pretrained(merged, dtype=torch.float32).eval())


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def ship(pretrain: str | Path, cts: str | Path | None, dest: str | Path, default: str = "cts") -> dict:
    """Pack the runs into `dest`. `default="cts"`: the CTS-tuned model is the default, the
    pretrain-only model sits in `pretrain_only/` beside it, and a LoRA run's adapter in
    `adapter/` applies to that. `default="pretrain"`: the pretrain-only model is the default
    and CTS ships only as its adapter, opt-in with `--lora` (for a CTS run that costs accuracy).
    Without `cts` the pretrain-only model is the default either way."""
    if default not in ("cts", "pretrain"):
        raise ValueError(f"default must be 'cts' or 'pretrain', not {default!r}")
    dest = Path(dest)
    report = {}
    shutil.rmtree(dest / ADAPTER_DIR, ignore_errors=True)
    if cts is not None and default == "cts":
        report["default"] = {"source": str(cts), "max_logit_diff": pack(cts, dest)}
        base = dest / PRETRAIN_ONLY_DIR
        report["pretrain_only"] = {"source": str(pretrain), "max_logit_diff": pack(pretrain, base)}
    else:
        shutil.rmtree(dest / PRETRAIN_ONLY_DIR, ignore_errors=True)
        report["default"] = {"source": str(pretrain), "max_logit_diff": pack(pretrain, dest)}
        base = dest
    adapter = None if cts is None else Path(cts) / ADAPTER_DIR
    if adapter is not None and (adapter / "adapter_config.json").is_file():
        report["adapter"] = {"source": str(adapter), "base": str(base),
                             "max_logit_diff": pack_adapter(adapter, dest / ADAPTER_DIR, base, cts)}
    size = directory_bytes(dest)
    report["bytes"] = size
    if size > MAX_BYTES:
        raise SystemExit(f"{dest} is {size / 2**20:.1f} MiB, over the {MAX_BYTES / 2**20:.0f} MiB budget")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrain", required=True, help="the pretrain run (its final model)")
    parser.add_argument("--cts", default=None, help="the CTS run (its merged model); omit to ship pretrain only")
    parser.add_argument("--dest", default="evotoken_core/assets/default_model")
    parser.add_argument("--default", choices=("cts", "pretrain"), default="cts",
                        help="which model is the default: the CTS-tuned one (the pretrain-only one "
                             "beside it), or the pretrain-only one with CTS as its adapter only")
    args = parser.parse_args(argv)
    print(json.dumps(ship(args.pretrain, args.cts, args.dest, args.default), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
