"""From prompt/answer pairs to the fixed-length rows both trainers consume.

A row is the chat prompt followed by an answer region: the answer, `<|eot_id|>`, then
`<|endoftext|>` up to the end of the row. Every row of a batch has the same total length
(longest prompt + answer region), so shorter prompts get a longer run of end-of-text padding.
That is how LLaDA pads its SFT data: there is no attention mask, the padding is part of the
target, and the model learns to stop and to fill any generation length with end-of-text.
The padding is down-weighted in the loss (`pad_weight`) so it does not drown the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


@dataclass
class EncodedBatch:
    """Token rows and what the losses need to know about each position. Shapes (B, L)."""

    input_ids: torch.Tensor     # the clean row: prompt, answer, eot, end-of-text padding
    answer: torch.Tensor        # bool: inside the answer region (maskable, in the loss)
    weight: torch.Tensor        # float: loss weight (1 answer/eot, pad_weight padding, 0 prompt)
    answer_start: torch.Tensor  # (B,) index of the first answer position

    def to(self, device: torch.device | str) -> EncodedBatch:
        return EncodedBatch(self.input_ids.to(device), self.answer.to(device),
                            self.weight.to(device), self.answer_start.to(device))

    @property
    def answer_lengths(self) -> torch.Tensor:
        """(B,) length of each row's answer region."""
        return self.answer.sum(1)


@dataclass(frozen=True)
class SpecialIds:
    """The ids the encoding needs, read from the tokenizer, never hard-coded."""

    mask: int
    end_of_text: int
    end_of_turn: int

    @classmethod
    def from_tokenizer(cls, tokenizer) -> SpecialIds:
        eot = tokenizer.convert_tokens_to_ids("<|eot_id|>")
        if eot is None or eot == tokenizer.unk_token_id:
            eot = tokenizer.eos_token_id
        return cls(mask=tokenizer.mask_token_id, end_of_text=tokenizer.eos_token_id, end_of_turn=eot)


def encode_pair(tokenizer, prompt_text: str, answer_text: str, ids: SpecialIds) -> tuple[list[int], list[int]]:
    """Prompt ids (the rendered chat prompt, special tokens as written) and answer ids + eot."""
    prompt = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    answer = tokenizer(answer_text, add_special_tokens=False)["input_ids"] + [ids.end_of_turn]
    return prompt, answer


def collate(
    pairs: Sequence[tuple[list[int], list[int]]],
    ids: SpecialIds,
    answer_length: int,
    pad_weight: float,
) -> EncodedBatch:
    """Rows of equal length: each answer padded with end-of-text to the shared row end.

    The answer region is at least `answer_length` long for every row (longer for rows whose
    prompt is shorter than the batch's longest, or when an answer itself is longer).
    """
    region = max(answer_length, max(len(a) for _, a in pairs))
    longest_prompt = max(len(p) for p, _ in pairs)
    total = longest_prompt + region
    B = len(pairs)
    input_ids = torch.full((B, total), ids.end_of_text, dtype=torch.long)
    answer = torch.zeros((B, total), dtype=torch.bool)
    weight = torch.zeros((B, total), dtype=torch.float32)
    starts = torch.empty(B, dtype=torch.long)
    for b, (p, a) in enumerate(pairs):
        P = len(p)
        input_ids[b, :P] = torch.tensor(p)
        input_ids[b, P:P + len(a)] = torch.tensor(a)
        answer[b, P:] = True
        weight[b, P:] = pad_weight
        weight[b, P:P + len(a)] = 1.0
        starts[b] = P
    return EncodedBatch(input_ids, answer, weight, starts)


def example_encoder(tokenizer, render: Callable[[object, str, str], str]) -> Callable:
    """A function TrainExample -> (prompt ids, answer ids) using the data module's prompt
    renderer, so training sees the exact chat text evaluation will send."""
    ids = SpecialIds.from_tokenizer(tokenizer)

    def encode(example) -> tuple[list[int], list[int]]:
        return encode_pair(tokenizer, render(tokenizer, example.prompt, example.task), example.answer, ids)

    return encode
