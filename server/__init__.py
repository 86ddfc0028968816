"""The OpenAI-compatible HTTP server for EvoToken diffusion LMs (FastAPI).

`create_app(settings)` builds the app; `add_serve_parser` / `run_serve` are the `evotoken serve`
command. Decoding itself lives in `evotoken_core`; nothing here reimplements it.
"""

from .app import create_app
from .cli import add_serve_parser, run_serve
from .settings import ModelSettings, ServerSettings, Settings

__all__ = ["ModelSettings", "ServerSettings", "Settings", "add_serve_parser", "create_app", "run_serve"]
