"""Step displays (the CLI's `--show-steps` and the server's step stream) share one renderer,
and show the run of end-of-text tokens that closes a short answer as one cell."""

from __future__ import annotations

import io

import torch

from evotoken_core.commands.generate import StepPainter
from evotoken_core.decoding import StepRecord, TokenState
from evotoken_core.model import load_model
from evotoken_core.text import END_MARK, MASK_GLYPH, TokenTexts, trailing_run_start
from server.streaming import StepRenderer


def test_trailing_run_start_finds_only_the_closing_run():
    assert trailing_run_start([5, 9, 9, 1, 9, 9], end_ids=[9]) == 4
    assert trailing_run_start([5, 6], end_ids=[9]) == 2
    assert trailing_run_start([9, 9], end_ids=[9, 8]) == 0
    assert trailing_run_start([], end_ids=[9]) == 0


def _record(ids: list[int], states: list[int]) -> StepRecord:
    G = len(ids)
    return StepRecord("r", 3, 0, 4, torch.tensor(ids), torch.tensor(states, dtype=torch.int8), 0, 0, G)


def test_painter_collapses_the_closing_end_run_into_one_cell(tiny_checkpoint):
    loaded = load_model(tiny_checkpoint, device="cpu")
    tok, mask, end = loaded.tokenizer, loaded.mask_id, loaded.end_ids[0]
    word = tok("fox", add_special_tokens=False).input_ids
    ids = word + [mask] + [end] * 6
    out = io.StringIO()
    StepPainter(out, tok, mask, loaded.end_ids).paint(_record(ids, [2] * len(ids)), "")
    line = out.getvalue().strip()
    end_text = tok.decode([end], skip_special_tokens=False)
    assert line.endswith("fox" + MASK_GLYPH + END_MARK)
    assert end_text not in line and line.count(END_MARK) == 1


def test_server_and_cli_drafts_come_from_the_same_renderer(tiny_checkpoint):
    loaded = load_model(tiny_checkpoint, device="cpu")
    tok, mask = loaded.tokenizer, loaded.mask_id
    ids = tok("The quick brown fox", add_special_tokens=False).input_ids + [mask, mask]
    states = [int(TokenState.DECODED)] * (len(ids) - 2) + [int(TokenState.SOFT), int(TokenState.MASKED)]
    server = StepRenderer(tok).render(_record(ids, states), max_tokens=len(ids), full=True)
    assert server["draft"] == TokenTexts(tok).draft(ids, [i == mask for i in ids])
    assert server["draft"].endswith(MASK_GLYPH * 2) and "fox" in server["draft"]
    assert [cell["text"] for cell in server["tokens"][:2]] == [TokenTexts(tok)(i) for i in ids[:2]]


def test_min_tokens_keeps_end_tokens_out_of_the_first_positions():
    """`min_tokens` forbids end tokens before that many generated positions, in both modes
    and in a batch with rows that do not ask for it."""
    from evotoken_core.assets import default_model_path
    from evotoken_core.decoding import DecodeRequest, DecodeSettings
    from evotoken_core.engine import Engine

    loaded = load_model(default_model_path(), device="cpu")
    prompt = loaded.tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True,
                                                   tokenize=True, return_dict=False)
    base = dict(gen_length=32, block_length=4, steps=16, early_end=False)
    requests = [DecodeRequest(f"{mode}{n}", list(prompt), DecodeSettings(decoding=mode, min_tokens=n, **base))
                for mode in ("evotoken", "hard_mask") for n in (0, 20)]
    finals = {r.request_id: r.gen_ids.tolist() for r in Engine(loaded).stream(requests) if r.finished}
    ends = set(loaded.end_ids)
    for mode in ("evotoken", "hard_mask"):
        assert any(t in ends for t in finals[f"{mode}0"][:20])  # the model ends early when allowed
        assert not any(t in ends for t in finals[f"{mode}20"][:20])
