"""`evotoken generate`: decode one prompt, mirroring the reference `generate.py` flags."""

from __future__ import annotations

import argparse
import json
import sys
import time

from ..data.prompts import INSTRUCTIONS, user_message
from ..decoding import DecodeRequest, RecommendedDecoding, SettingsError
from ..engine import Engine
from ..model import ModelNotFoundError
from ..text import END_MARK, TextAssembler, TokenTexts, trailing_run_start
from ..flags import add_decoding_flags, add_model_flags, decoding_settings
from .common import fail, load_from_args


def add_generate_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("generate", help="decode one prompt with EvoToken or hard-mask decoding",
                              description=__doc__)
    inp = p.add_argument_group("input")
    inp.add_argument("--prompt", default=None, help="the user message (or raw text with --no-chat-template)")
    inp.add_argument("--no-chat-template", action="store_true", help="send the prompt as raw text")
    inp.add_argument("--task", choices=sorted(INSTRUCTIONS), default=None,
                     help="append the task's instruction line to the prompt, as `evotoken eval` does "
                          "(the demo model answers in the boxed format only with it)")
    inp.add_argument("--prompt-ids", default=None, help="exact token ids, e.g. 5,17,42 (no tokenizer, no template)")
    add_model_flags(p)
    add_decoding_flags(p)
    out = p.add_argument_group("output")
    out.add_argument("--show-steps", action="store_true", help="draw the evolving canvas in the terminal")
    out.add_argument("--json", action="store_true", help="print one JSON object: text, generated_ids, nfe, steps, seconds")
    p.set_defaults(func=run_generate)
    return p


def prompt_ids_from_args(args, tokenizer) -> list[int]:
    if args.prompt_ids is not None:
        try:
            return [int(t) for t in args.prompt_ids.split(",") if t.strip()]
        except ValueError:
            raise SettingsError("prompt_ids", f"--prompt-ids must be comma-separated integers, got {args.prompt_ids!r}") from None
    if args.prompt is None:
        raise SettingsError("prompt", "give --prompt TEXT or --prompt-ids IDS")
    text = user_message(args.prompt, args.task) if args.task else args.prompt
    if tokenizer is None:
        raise SettingsError("prompt", "this checkpoint has no tokenizer; use --prompt-ids")
    if args.no_chat_template or not getattr(tokenizer, "chat_template", None):
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return list(tokenizer.apply_chat_template([{"role": "user", "content": text}],
                                              add_generation_prompt=True, tokenize=True, return_dict=False))


class StepPainter:
    """Confirmed text stays on screen; the undecided rest is redrawn in place every step, with
    the run of end-of-text tokens that closes the canvas shown as one cell."""

    def __init__(self, stream, tokenizer, mask_id: int, end_ids=()):
        self.out, self.texts, self.mask_id, self.end_ids = stream, TokenTexts(tokenizer), mask_id, end_ids
        self.tty = stream.isatty()

    def paint(self, record, confirmed_delta: str) -> None:
        ids = record.gen_ids[record.confirmed:].tolist()
        cut = trailing_run_start(ids, self.end_ids)
        draft = self.texts.draft(ids[:cut], [i == self.mask_id for i in ids[:cut]], skip_special=False)
        draft = (draft + (END_MARK if cut < len(ids) else "")).replace("\n", "⏎")[:72]
        if self.tty:  # restore the cursor to the end of confirmed text, clear, repaint
            self.out.write("\x1b[u\x1b[J" + confirmed_delta + "\x1b[s\x1b[2m" + draft + "\x1b[0m")
        else:
            self.out.write(f"[step {record.step} block {record.block} nfe {record.nfe}] {draft}\n")
        self.out.flush()

    def start(self) -> None:
        if self.tty:
            self.out.write("\x1b[s")

    def finish(self) -> None:
        self.out.write("\x1b[u\x1b[J\n" if self.tty else "\n")


def run_generate(args) -> int:
    try:
        loaded = load_from_args(args)
        settings = decoding_settings(args, RecommendedDecoding.read(loaded.path))
        request = DecodeRequest("cli", prompt_ids_from_args(args, loaded.tokenizer), settings)
        engine = Engine(loaded, max_batch_size=1)
        engine.validate(request)
    except (SettingsError, ModelNotFoundError, FileNotFoundError, ValueError) as error:
        return fail(str(error))
    tok = loaded.tokenizer
    assembler = TextAssembler(tok, loaded.end_ids, settings.gen_length) if tok is not None else None
    painter = StepPainter(sys.stdout, tok, loaded.mask_id, loaded.end_ids) if args.show_steps and tok is not None else None
    started = time.perf_counter()
    if painter:
        painter.start()
    final = None
    for record in engine.stream([request]):
        delta = ""
        if assembler is not None:
            delta = assembler.update(record.gen_ids.tolist(), record.confirmed, final=record.finished)
        if painter and record.step >= 0:
            painter.paint(record, delta)
        final = record
    seconds = time.perf_counter() - started
    if final.finish != "completed":
        return fail(f"decoding failed: {final.error}")
    if painter:
        painter.finish()
    text = assembler.text if assembler is not None else ""
    if args.json:
        print(json.dumps({"text": text, "generated_ids": final.gen_ids.tolist(), "nfe": final.nfe,
                          "steps": settings.steps, "seconds": round(seconds, 4)}))
    elif not painter:
        print(text)
    else:
        print(f"[{final.nfe} forward passes, {seconds:.2f}s]", file=sys.stderr)
    return 0
