"""Byte-level BPE tokenizers with LLaDA's special tokens and chat template.

Used for the project's own models (the shipped demo model, the tiny test checkpoints): the
special-token names and the chat layout are those of LLaDA-8B-Instruct, so the same code paths
serve both.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

BOS, EOS, EOT, MASK = "<|startoftext|>", "<|endoftext|>", "<|eot_id|>", "<|mdm_mask|>"
START_HEADER, END_HEADER = "<|start_header_id|>", "<|end_header_id|>"
SPECIAL_TOKENS = [BOS, EOS, EOT, MASK, START_HEADER, END_HEADER]

# LLaDA-8B-Instruct's layout: every turn is `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>`.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)


def wrap_tokenizer(tok: Tokenizer) -> PreTrainedTokenizerFast:
    """A transformers tokenizer with the special tokens and chat template set."""
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=EOS,
        mask_token=MASK,
        additional_special_tokens=[EOT, START_HEADER, END_HEADER],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def train_bpe_tokenizer(
    texts: Iterable[str],
    vocab_size: int,
    extra_tokens: Iterable[str] = (),
    individual_digits: bool = False,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `texts`; `extra_tokens` become whole (non-special) tokens."""
    tok = Tokenizer(models.BPE())
    pre = [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    if individual_digits:
        pre.insert(0, pre_tokenizers.Digits(individual_digits=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence(pre) if len(pre) > 1 else pre[0]
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    extra = [t for t in extra_tokens if tok.token_to_id(t) is None]
    if extra:
        tok.add_tokens(extra)
    return wrap_tokenizer(tok)
