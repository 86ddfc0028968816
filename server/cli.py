"""`evotoken serve`: argparse flags generated from the settings fields, then uvicorn
(draining on SIGTERM, see `shutdown.py`).

Every flag is a `Settings` field (same name with dashes, same description as help), and
defaults are left to pydantic-settings, so the precedence is flag > `EVOTOKEN_*` variable >
default and a flag can never drift from its variable.
"""

from __future__ import annotations

import argparse
import logging
import sys
import types
from pathlib import Path
from typing import Literal, Union, get_args, get_origin

from pydantic import ValidationError

from .app import StartupError
from .settings import ENV_PREFIX, ModelSettings, ServerSettings, Settings


def _plain_type(annotation):
    """`int | None` -> int, `Annotated[list[str], ...]` -> list[str]."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return annotation


def _add_flag(group, name: str, field) -> None:
    kind = _plain_type(field.annotation)
    flag = "--" + name.replace("_", "-")
    default = field.default_factory() if field.default_factory is not None else field.default
    shown = "none" if default in (None, []) else default
    help_text = f"{field.description} (default: {shown}; env {ENV_PREFIX}{name.upper()})"
    kwargs: dict = {"dest": name, "default": argparse.SUPPRESS, "help": help_text}
    if kind is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif get_origin(kind) is list:
        kwargs.update(action="append", metavar=name.split("_")[-1].upper())
    elif get_origin(kind) is Literal:
        kwargs["choices"] = list(get_args(kind))
    else:
        kwargs["type"] = kind if kind in (int, float, Path) else str
    group.add_argument(flag, **kwargs)


def add_serve_parser(subparsers) -> argparse.ArgumentParser:
    """Register `serve` on an argparse subparsers object; the caller dispatches to `run_serve`."""
    parser = subparsers.add_parser(
        "serve", help="run the OpenAI-compatible HTTP server",
        description="Serve an EvoToken diffusion LM over an OpenAI-compatible HTTP API. Every flag "
        f"can also be set with an {ENV_PREFIX}* environment variable.")
    groups = {ServerSettings: parser.add_argument_group("server"),
              ModelSettings: parser.add_argument_group("model and default decoding")}
    for cls, group in groups.items():
        for name, field in cls.model_fields.items():
            _add_flag(group, name, field)
    parser.set_defaults(func=run_serve)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    given = {name: getattr(args, name) for name in Settings.model_fields if hasattr(args, name)}
    return Settings(**given)


def run_serve(args: argparse.Namespace) -> int:
    """Validate settings and paths (exit 2 with a message), then run uvicorn until stopped."""
    from .app import create_app, resolve_model_ref

    try:
        settings = settings_from_args(args)
        _check_local_paths(resolve_model_ref(settings), settings.lora)
        settings.api_keys()
    except ValidationError as error:
        print(f"evotoken serve: invalid settings:\n{error}", file=sys.stderr)
        return 2
    except (StartupError, OSError) as error:
        print(f"evotoken serve: error: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import torch
    import uvicorn
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.set_flush_denormal(True)  # subnormal floats make CPU decoding many times slower

    from sse_starlette.sse import AppStatus

    from .shutdown import FLUSH_SECONDS, DrainingServer

    # Open streams end through the drain (finished, or a 503 frame), not cut by sse-starlette.
    AppStatus.disable_automatic_graceful_drain()
    app = create_app(settings, exit_on_startup_failure=True)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                            access_log=False, timeout_graceful_shutdown=FLUSH_SECONDS)
    DrainingServer(config, app, grace=settings.shutdown_grace).run()
    if app.state.startup_error:
        print(f"evotoken serve: {app.state.startup_error}", file=sys.stderr)
        return 1
    return 0


def _check_local_paths(*refs: str | None) -> None:
    """Fail before binding a port when a path clearly does not exist; hub ids load later."""
    for ref in refs:
        if ref is None or Path(ref).expanduser().exists():
            continue
        if ref.count("/") == 1 and not ref.startswith((".", "/", "~")):
            continue  # a Hugging Face id: resolved (and maybe downloaded) by the loader
        raise StartupError(f"{ref!r} does not exist")


def main(argv: list[str] | None = None) -> int:
    """`python -m server ...`: the serve command on its own."""
    parser = argparse.ArgumentParser(prog="python -m server")
    sub = parser.add_subparsers(dest="command", required=True)
    add_serve_parser(sub)
    args = parser.parse_args(["serve", *(argv if argv is not None else sys.argv[1:])])
    return args.func(args)
