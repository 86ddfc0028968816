"""The `evotoken` command: one entry point, subcommands loaded only when used.

Subcommands live next to what they drive (`evotoken_core.commands.generate`,
`evotoken_core.eval.cli`, `evotoken_core.training.cli`, `server.cli`); this module only
dispatches, so `evotoken generate` never imports the web stack.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, function that registers the subparser, one-line help)
SUBCOMMANDS = {
    "generate": ("evotoken_core.commands.generate", "add_generate_parser", "decode one prompt"),
    "serve": ("server.cli", "add_serve_parser", "run the OpenAI-compatible server"),
    "eval": ("evotoken_core.eval.cli", "add_eval_parser", "score a model on benchmark JSONL files"),
    "train": ("evotoken_core.training.cli", "add_train_parser", "pretrain or CTS-tune a model"),
    "bench": ("benchmarks.bench", "add_bench_parser", "measure decoding speed"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evotoken", description="EvoToken diffusion LM: decode, serve, evaluate, train")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, register, help_text) in SUBCOMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=help_text, add_help=False)
            continue
        try:
            getattr(importlib.import_module(module), register)(sub)
        except ModuleNotFoundError as error:
            if error.name and not module.startswith(error.name):
                raise
            sub.add_parser(name, help=f"{help_text} (not available: {error.name} is missing)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    parser = build_parser(only=command)
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
