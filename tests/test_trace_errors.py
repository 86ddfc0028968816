"""The arithmetic error analysis: step tallies on hand-written answers, the fill probe on a real model."""

from __future__ import annotations

import json

import pytest

from evotoken_core.eval.trace_errors import main, probe_place_value, restyle, tally_steps
from evotoken_core.model.loading import load_model


def test_tally_checks_each_step_against_the_numbers_the_model_wrote():
    texts = [
        "<reasoning>4 * 12 = 48. 48 + 20 = 60 + 8 = 68.</reasoning>",    # all right
        "<reasoning>72 + 14 = 80 + 6 = 87. 87 - 20 = 60 + 7 = 67.</reasoning>",  # combine slip, then right
        "<reasoning>72 - 14 = 60 + 2 = 62. 62 / 2 = 30.</reasoning>",    # ones sign wrong; bad quotient
        "no steps at all",
    ]
    t = tally_steps(texts)
    assert t["*"] == (1, 1) and t["/"] == (0, 1)
    assert t["+"] == (1, 2)      # 48 + 20 = 68 right, 72 + 14 = 87 wrong
    assert t["-"] == (1, 2)      # 87 - 20 = 67 is right on the model's own 87; 72 - 14 = 62 wrong
    assert t["tens"] == (4, 4) and t["ones"] == (3, 4) and t["combine"] == (3, 4)


def test_probe_fills_three_parts_per_place_value_row(tiny_checkpoint):
    loaded = load_model(tiny_checkpoint, dtype="float32", device="cpu")
    rows = [{"question": "Tom has 72 pens. He buys 14 more. How many?", "answer": "72 + 14 = 80 + 6 = 86.\n#### 86"},
            {"question": "Tom has 6 bags with 4 pens in each. How many?", "answer": "6 * 4 = 24.\n#### 24"}]
    result = probe_place_value(loaded, rows)
    assert set(result) == {"tens", "ones", "result"}
    assert all(total == 1 and 0 <= right <= 1 for right, total in result.values())  # the * row has no such step


def test_cli_reads_eval_generation_files(tmp_path, capsys):
    path = tmp_path / "generations.jsonl"
    rows = [{"task": "arith", "mode": "evotoken", "alpha": 0.7, "output": "3 + 4 = 7."},
            {"task": "arith", "mode": "hard_mask", "alpha": None, "output": "3 + 4 = 8."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["--generations", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[f"{path}: arith evotoken alpha=0.7"]["+"] == {"right": 1, "total": 1}
    assert out[f"{path}: arith hard_mask"]["+"] == {"right": 0, "total": 1}


def test_probe_never_shows_the_tokens_after_the_part(tiny_checkpoint):
    """The result gives away its own tens and ones (`80 + ? = 86`), so every probe input is the
    prompt, a correct answer prefix, then masks to the end."""
    loaded = load_model(tiny_checkpoint, dtype="float32", device="cpu")
    seen = []
    loaded.model.register_forward_pre_hook(lambda module, args: seen.append(args[0][0].tolist()))
    rows = [{"question": "Tom has 72 pens. He buys 14 more. How many?", "answer": "72 + 14 = 80 + 6 = 86.\n#### 86"}]
    result = probe_place_value(loaded, rows)
    assert sum(total for _, total in result.values()) == 3 and len(seen) >= 3
    for x in seen:
        first = x.index(loaded.mask_id)
        assert all(t == loaded.mask_id for t in x[first:]), x
    assert len({x.index(loaded.mask_id) for x in seen}) == len(seen)  # one pass per token, each a new prefix


def test_tally_reads_split_steps_and_judges_them_on_the_model_own_split():
    texts = ["<reasoning>72+14=70+10+2+4=80+6=86. 4*12=48.</reasoning>",       # all right
             "<reasoning>72+14=70+10+2+5=80+7=87.</reasoning>",               # ones copied wrong, then consistent
             "<reasoning>72-14=70-10+2-4=60+2=62.</reasoning>"]               # ones sign wrong
    t = tally_steps(texts)
    assert t["+"] == (1, 2) and t["-"] == (0, 1) and t["*"] == (1, 1)
    assert t["split tens"] == (3, 3) and t["split ones"] == (2, 3)
    assert t["tens"] == (3, 3) and t["ones"] == (2, 3) and t["combine"] == (3, 3)


def test_restyle_rewrites_every_step_and_round_trips():
    trace = "72 + 14 = 80 + 6 = 86. 86 - 20 = 60 + 6 = 66. 6 * 4 = 24."
    split = restyle(trace, "split")
    assert split == "72+14=70+10+2+4=80+6=86. 86-20=80-20+6-0=60+6=66. 6*4=24."
    assert restyle(split, "place_value") == trace and restyle(trace, "direct") == "72 + 14 = 86. 86 - 20 = 66. 6 * 4 = 24."


def test_probe_in_the_split_style_also_writes_the_operands_ones(tiny_checkpoint):
    loaded = load_model(tiny_checkpoint, dtype="float32", device="cpu")
    rows = [{"question": "Tom has 72 pens. He buys 14 more. How many?", "answer": "72 + 14 = 80 + 6 = 86.\n#### 86"}]
    result = probe_place_value(loaded, rows, "split")
    assert list(result) == ["split ones", "tens", "ones", "result"]
    assert all(total == 1 for _, total in result.values())
    with pytest.raises(ValueError, match="place-value trace style"):
        probe_place_value(loaded, rows, "direct")


def test_show_rest_masks_only_the_part_and_gives_the_answer_after_it(tiny_checkpoint):
    loaded = load_model(tiny_checkpoint, dtype="float32", device="cpu")
    seen = []
    loaded.model.register_forward_pre_hook(lambda module, args: seen.append(args[0][0].tolist()))
    rows = [{"question": "Tom has 72 pens. He buys 14 more. How many?", "answer": "72 + 14 = 80 + 6 = 86.\n#### 86"}]
    probe_place_value(loaded, rows, show_rest=True)
    assert len(seen) >= 3
    for x in seen:
        masks = [i for i, t in enumerate(x) if t == loaded.mask_id]
        assert masks and masks == list(range(masks[0], masks[-1] + 1))  # one run of masks: the part
        after = loaded.tokenizer.decode(x[masks[-1] + 1:]).replace(" ", "")
        assert after.endswith("\\boxed{86}</answer>")  # the answer after it is shown
