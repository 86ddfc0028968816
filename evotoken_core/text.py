"""Confirmed text: from canvas ids to the answer, the same way for every consumer.

The non-streamed answer, the confirmed-text stream and the CLI all run the step records
through one `TextAssembler`, so the concatenated stream equals the non-streamed answer by
construction. Text is confirmed only when its block is finished; end tokens and stop strings
are applied before anything is emitted, and a tail that could still grow into a stop string
(or is half a UTF-8 character) is held back until it is settled.
"""

from __future__ import annotations

from collections.abc import Sequence


class TextAssembler:
    def __init__(self, tokenizer, end_ids: Sequence[int], max_tokens: int, stop: Sequence[str] = ()):
        self.tokenizer = tokenizer
        self.end_ids = set(end_ids)
        self.max_tokens = max_tokens
        self.stop = [s for s in stop if s]
        self.emitted = ""
        self.finish_reason: str | None = None  # "stop" | "length" once settled
        self.completion_ids: list[int] = []

    @property
    def done(self) -> bool:
        """True once the answer is settled; later records cannot change it."""
        return self.finish_reason is not None

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def update(self, gen_ids: Sequence[int], confirmed: int, final: bool = False) -> str:
        """Feed the canvas ids and how many leading positions are confirmed; get new text."""
        if self.done:
            return ""
        window = list(gen_ids[: self.max_tokens])
        confirmed = len(window) if final else min(confirmed, len(window))
        ids = window[:confirmed]
        ended = False
        for i, t in enumerate(ids):
            if t in self.end_ids:
                ids, ended = ids[:i], True
                break
        text = self.decode(ids)
        stop_at = min((i for i in (text.find(s) for s in self.stop) if i >= 0), default=-1)
        if stop_at >= 0:
            text, ended = text[:stop_at], True
            ids = self._ids_covering(ids, text)
        if ended or final or confirmed == len(window):
            self.finish_reason = "stop" if ended else "length"
            self.completion_ids = ids
            safe = text
        else:
            safe = text[: len(text) - self._held_back(text)]
        delta = safe[len(self.emitted):] if safe.startswith(self.emitted) else ""
        self.emitted += delta
        return delta

    @property
    def text(self) -> str:
        return self.emitted

    def _held_back(self, text: str) -> int:
        """Length of the tail that is undecided: a partial character or a stop-string prefix."""
        hold = 0
        if text.endswith("\ufffd"):
            hold = len(text) - len(text.rstrip("\ufffd"))
        for s in self.stop:
            for n in range(min(len(s) - 1, len(text)), 0, -1):
                if text.endswith(s[:n]):
                    hold = max(hold, n)
                    break
        return hold

    def _ids_covering(self, ids: list[int], text: str) -> list[int]:
        """The shortest prefix of `ids` whose text reaches the cut (for usage counts)."""
        for n in range(len(ids) + 1):
            if len(self.decode(ids[:n])) >= len(text):
                return ids[:n]
        return ids


MASK_GLYPH = "▒"
END_MARK = "⟨end⟩"  # one cell for the run of end-of-text tokens that closes a canvas


class TokenTexts:
    """Per-token texts and drafts of a canvas, for every step display (the server's step
    stream and the CLI's `--show-steps`). Token texts are cached: a display asks for the
    same few ids at every step."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._texts: dict[int, str] = {}

    def __call__(self, token_id: int) -> str:
        """The token's own text, special tokens as written."""
        text = self._texts.get(token_id)
        if text is None:
            text = self.tokenizer.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False)
            self._texts[token_id] = text
        return text

    def draft(self, ids: Sequence[int], hidden: Sequence[bool], placeholder: str = MASK_GLYPH,
              skip_special: bool = True) -> str:
        """The canvas as it stands: runs of visible tokens decoded together (so multi-byte
        characters survive), each hidden position as `placeholder`."""
        out, run = [], []
        for token_id, hide in zip(ids, hidden):
            if hide:
                if run:
                    out.append(self._decode(run, skip_special))
                    run = []
                out.append(placeholder)
            else:
                run.append(token_id)
        if run:
            out.append(self._decode(run, skip_special))
        return "".join(out)

    def _decode(self, ids: list[int], skip_special: bool) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special, clean_up_tokenization_spaces=False)


def trailing_run_start(ids: Sequence[int], end_ids: Sequence[int]) -> int:
    """Where the run of end tokens that closes `ids` begins (len(ids) when none does): a
    display shows that run as one cell, since a short answer leaves dozens of them."""
    ends, n = set(end_ids), len(ids)
    while n > 0 and ids[n - 1] in ends:
        n -= 1
    return n
