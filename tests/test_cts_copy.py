"""CTS's clean-copy term (`copy_weight`): the model shown its clean answer whole is scored on
giving every token back, added to the trajectory loss of the same batch."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from evotoken_core.training.config import CTSConfig
from evotoken_core.training.cts_train import cts_loss_fn
from evotoken_core.training.diffusion import clean_copy_loss
from evotoken_core.training.source import fixed_source
from tests.test_cts_diagnostics import VOCAB, base, copying_model, rows, train  # noqa: F401 (fixture)
from tests.test_training import EXAMPLES, MICRO, pretrained  # noqa: F401 (fixture)


def by_hand(logits: torch.Tensor, batch) -> float:
    """The clean-copy loss token by token: weighted CE over each row's answer region / its weight."""
    per_row = []
    for b in range(batch.input_ids.shape[0]):
        total = sum(float(batch.weight[b, i]) * float(F.cross_entropy(logits[b, i], batch.input_ids[b, i]))
                    for i in range(batch.input_ids.shape[1]) if batch.answer[b, i])
        per_row.append(total / float(batch.weight[b].sum()))
    return sum(per_row) / len(per_row)


def test_the_clean_copy_loss_is_the_weighted_answer_cross_entropy_of_the_clean_row():
    batch = rows(6)
    for model in (copying_model(), copying_model(shift=1)):
        with torch.no_grad():
            logits = model(input_ids=batch.input_ids).logits.double()
        assert float(clean_copy_loss(logits, batch)) == pytest.approx(by_hand(logits, batch), rel=1e-4, abs=1e-6)  # float32 CE
    with torch.no_grad():
        gives_back = float(clean_copy_loss(copying_model()(input_ids=batch.input_ids).logits, batch))
        gives_next = float(clean_copy_loss(copying_model(shift=1)(input_ids=batch.input_ids).logits, batch))
    assert gives_back < math.log(VOCAB) < gives_next


def test_copy_weight_adds_the_clean_copy_loss_of_the_same_batch(tmp_path, pretrained, tiny_tokenizer):
    from evotoken_core.model.modeling import LLaDAModelLM

    settings = {k: v for k, v in MICRO.items() if k not in ("d_model", "n_layers", "n_heads", "mlp_hidden_size",
                                                            "number_init")}
    model = LLaDAModelLM.from_pretrained(pretrained, dtype=torch.float64).eval()
    outputs = {}
    for w in (0.0, 0.25):
        cfg = CTSConfig(**settings, base=str(pretrained), out=str(tmp_path / "cts"), full=True, block_lengths="8,16",
                        copy_weight=w)
        source = fixed_source(EXAMPLES, tiny_tokenizer, cfg)
        with torch.no_grad():
            outputs[w] = cts_loss_fn(model, source, cfg, torch.device("cpu"))(5)
    batch = source.batch(5)
    with torch.no_grad():
        expected = float(clean_copy_loss(model(input_ids=batch.input_ids).logits, batch))
    assert expected > 0.1 and "copy" not in outputs[0.0].metrics
    assert outputs[0.25].metrics["copy"] == pytest.approx(expected, rel=1e-6)
    assert float(outputs[0.25].loss) == pytest.approx(float(outputs[0.0].loss) + 0.25 * expected, rel=1e-6)
    assert outputs[0.25].tokens == outputs[0.0].tokens * 5 // 4  # K + 1 forwards instead of K


def test_a_run_with_the_copy_term_logs_it_with_every_step(tmp_path, base, tiny_tokenizer):
    cfg, trainer = train(base, tmp_path / "run", tiny_tokenizer, copy_weight=1.0, anchor_weight=0.5)
    steps = trainer.history
    assert len(steps) == cfg.steps and all(math.isfinite(s["copy"]) and s["copy"] > 0 for s in steps)
    assert all("anchor" in s for s in steps)
    logged = json.loads((Path(cfg.out) / "metrics.jsonl").read_text().splitlines()[-1])  # the last step's line
    assert logged["copy"] == steps[-1]["copy"]


def test_a_negative_copy_weight_is_refused():
    with pytest.raises(ValueError, match="copy_weight"):
        CTSConfig(base="x", copy_weight=-0.1)
