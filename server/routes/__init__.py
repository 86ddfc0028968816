"""Thin routes: parse the body, hand it to `app.state.serving`, return what it gives."""

from .openai import router as openai_router
from .probes import router as probes_router

__all__ = ["openai_router", "probes_router"]
