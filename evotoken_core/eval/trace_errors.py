"""Where arithmetic answers go wrong: each operation, and each place of a place-value step.

    python -m evotoken_core.eval.trace_errors --generations runs/eval_cts_arith/generations.jsonl
    python -m evotoken_core.eval.trace_errors --model evotoken_core/assets/default_model --limit 100

`--generations` reads the files `evotoken eval --out` writes and checks every step the model
wrote, in any trace style of `evotoken_core.data.arithmetic` (`a op b = c.`, the place-value
form `a op b = t ± o = c.`, the split form `a op b = A op B + a1 op b1 = t ± o = c.`), against
the numbers the model itself wrote: an early slip is not counted again in the steps after it.
For place-value steps it also checks the tens `t`, the ones `o` and the combination
`t ± o = c` separately, and for split steps the operands' tens `A B` and ones `a1 b1`.

`--model` asks the model to write one part of the first place-value step of each reference
answer in the shipped held-out set (re-written in `--style`), token by token, with the prompt
and every answer token before it given and every token from it on masked: the tens, the ones,
or the result (and, in the split style, the operands' ones `a1 op b1`). Nothing after the part
is shown, because the result gives its own tens and ones away (`80 + ? = 86`). It says which
sub-step the model cannot do even with a correct trace up to it, which is what decides how to
change the data or the tokenizer. `--show-rest` shows everything after the part as well: the
gap between the two says how much the model reads a part off the copies that follow it.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

import torch

from evotoken_core.data.arithmetic import OPS, TRACE_STYLES, render_step

# Groups: a, op, b, then the split part A, B, a1, b1, then the place-value part t, sign, o,
# then c. Spaces are optional, as the split style is written without them.
STEP = re.compile(r"(\d+) ?([-+*/]) ?(\d+) ?= ?"
                  r"(?:(\d+) ?[-+] ?(\d+) ?\+ ?(\d+) ?[-+] ?(\d+) ?= ?)?"
                  r"(?:(\d+) ?([-+]) ?(\d+) ?= ?)?(\d+)\.")


def restyle(trace: str, style: str) -> str:
    """`trace` with every step re-written in trace style `style`."""
    return STEP.sub(lambda m: render_step(int(m[1]), m[2], int(m[3]), style), trace)


def tally_steps(texts) -> dict[str, tuple[int, int]]:
    """(right, total) per operation (`+`, `-`, `*`, `/`), per place-value part (`tens`, `ones`,
    `combine`) and per split part (`split tens`, `split ones`) over every step in `texts`.
    A split step's tens and ones are judged on the operands the model itself split out."""
    right, total = Counter(), Counter()

    def count(name: str, ok: bool) -> None:
        total[name] += 1
        right[name] += bool(ok)

    for text in texts:
        for a, op, b, *split, t, sign, o, c in STEP.findall(text):
            a, b, c = int(a), int(b), int(c)
            count(op, (op != "/" or b != 0) and OPS[op](a, b) == c)
            if not t or op not in "+-":
                continue
            tens, ones = (a - a % 10, b - b % 10), (a % 10, b % 10)
            if split[0]:
                big_a, big_b, small_a, small_b = map(int, split)
                count("split tens", (big_a, big_b) == tens)
                count("split ones", (small_a, small_b) == ones)
                tens, ones = (big_a, big_b), (small_a, small_b)
            t, o = int(t), int(o) * (1 if sign == "+" else -1)
            count("tens", t == OPS[op](*tens))
            count("ones", o == OPS[op](*ones))
            count("combine", t + o == c)
    return {name: (right[name], total[name]) for name in total}


@torch.no_grad()
def probe_place_value(loaded, rows: list[dict], style: str = "place_value",
                      show_rest: bool = False) -> dict[str, tuple[int, int]]:
    """(right, total) for writing the tens, the ones and the result of the first place-value
    step of each GSM8K-layout row's reference trace, re-written in trace style `style` (for
    `split`, also the operands' ones `a1 op b1`): greedy, left to right, one pass per token,
    the correct answer before the token given and the token and everything after it masked.
    `show_rest` gives the reference answer after the part too (only the part is masked), which
    measures how much the model reads a part off the copies of the result that follow it."""
    from evotoken_core.data import render_prompt

    if style not in TRACE_STYLES or style == "direct":
        raise ValueError(f"the probe needs a place-value trace style, not {style!r}")
    tok, model = loaded.tokenizer, loaded.model
    right, total = Counter(), Counter()
    for row in rows:
        trace, final = row["answer"].split("\n#### ")
        answer = f"<reasoning>{restyle(trace, style)}</reasoning>\n<answer>\\boxed{{{final}}}</answer>"
        step = next((m for m in STEP.finditer(answer) if m[8]), None)
        if step is None:
            continue
        prompt = tok(render_prompt(tok, row["question"], "arith"), add_special_tokens=False)["input_ids"]
        enc = tok(answer, add_special_tokens=False, return_offsets_mapping=True)
        ids, spans = enc["input_ids"], enc["offset_mapping"]
        parts = {"tens": step.span(8), "ones": step.span(10), "result": step.span(11)}
        if step[4]:
            parts = {"split ones": (step.start(6), step.end(7)), **parts}
        for name, (start, end) in parts.items():
            part = [i for i, (s, e) in enumerate(spans) if s < end and e > start and e > s]
            ok = True
            for i in part:
                after = ids[part[-1] + 1:] if show_rest else [loaded.mask_id] * (len(ids) - part[-1] - 1)
                x = torch.tensor([prompt + ids[:i] + [loaded.mask_id] * (part[-1] + 1 - i) + after],
                                 device=loaded.device)
                ok = ok and int(model(x).logits[0, len(prompt) + i].argmax()) == ids[i]
            total[name] += 1
            right[name] += ok
    return {name: (right[name], total[name]) for name in total}


def _print(title: str, table: dict[str, tuple[int, int]]) -> None:
    print(title)
    for name, (ok, n) in table.items():
        print(f"  {name:<10} {ok:>5} / {n:<5} {100 * ok / max(n, 1):5.1f}%")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evotoken_core.eval.trace_errors", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generations", nargs="*", default=[], help="evotoken eval --out generations.jsonl files")
    parser.add_argument("--model", help="LLaDA checkpoint to probe (default: none)")
    parser.add_argument("--data", help="GSM8K-layout JSONL with place-value traces (default: the shipped arith set)")
    parser.add_argument("--style", choices=[s for s in TRACE_STYLES if s != "direct"], default="place_value",
                        help="trace style the probed model was trained on (default: place_value)")
    parser.add_argument("--show-rest", action="store_true",
                        help="probe with the reference answer after the part shown (only the part masked)")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = parser.parse_args(argv)
    if not args.generations and not args.model:
        parser.error("give --generations FILE... and/or --model DIR")
    out: dict[str, dict] = {}
    for path in args.generations:
        by_mode: dict[str, list[str]] = {}
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            g = json.loads(line)
            alpha = "" if g.get("alpha") is None else f" alpha={g['alpha']}"
            by_mode.setdefault(f"{g['task']} {g['mode']}{alpha}", []).append(g["output"])
        for key, texts in by_mode.items():
            table = tally_steps(texts)
            if table:  # tasks without arithmetic steps (demo, Countdown answers) have none
                out[f"{path}: {key}"] = table
    if args.model:
        from evotoken_core.eval.datasets import shipped_test_set
        from evotoken_core.model.loading import load_model

        torch.set_flush_denormal(True)
        loaded = load_model(args.model, dtype="float32", device="cpu")
        data = Path(args.data) if args.data else shipped_test_set("arith")
        rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()][: args.limit]
        given = "the whole answer but the part given" if args.show_rest else "the trace before it given"
        out[f"{args.model}: write one part of a place-value step, {given}"] = probe_place_value(
            loaded, rows, args.style, args.show_rest)
    if args.json:
        print(json.dumps({k: {n: {"right": r, "total": t} for n, (r, t) in v.items()} for k, v in out.items()}))
    else:
        for title, table in out.items():
            _print(title, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
