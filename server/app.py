"""The app factory and its lifespan.

`create_app(settings)` builds a FastAPI app that holds nothing global: the metrics registry,
the served names, and (once the lifespan has loaded them) the model, the engine worker and the
serving object live on `app.state`, so any number of apps can live in one process.

The lifespan starts loading in the background and yields at once: `/health` answers while an
8B checkpoint loads, `/ready` turns true only after the model is loaded, the worker runs and one
warm-up step has gone through the real path. On shutdown it stops the worker, which ends every
request still in flight with a 503.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from contextlib import asynccontextmanager
from pathlib import Path
from time import time

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from evotoken_core import __version__
from evotoken_core.decoding import DecodeRequest, DecodeSettings, RecommendedDecoding
from evotoken_core.flags import model_or_embedded

from .auth import APIKeyMiddleware
from .errors import declare_errors_only_in_openai_shape, install_error_handlers
from .metrics import Metrics
from .middleware import BodyLimitMiddleware, RequestContextMiddleware
from .responses import ModelCard
from .routes import openai_router, probes_router
from .routes.playground import ASSET_PATHS, decode_defaults, router as playground_router
from .settings import Settings
from .worker import EngineWorker

log = logging.getLogger("evotoken.server")
PROBE_PATHS = {"/health", "/ready", "/metrics"}
PUBLIC_PATHS = {"/", *ASSET_PATHS}  # the playground page and assets; its API calls still need a key
EMBEDDED_MODEL_NAME = "evotoken"  # the served id of the packaged model when --model is omitted


class StartupError(RuntimeError):
    """The server cannot serve: no model to load, or loading failed."""


def resolve_model_ref(settings: Settings) -> str:
    """`--model`, or the model embedded in the package; never anything a request names."""
    try:
        return model_or_embedded(settings.model)
    except FileNotFoundError as error:
        raise StartupError(str(error)) from None


def with_model_recommendation(settings: Settings, model_dir: Path) -> Settings:
    """`settings` with the checkpoint's recommended decoding filled in where none was set."""
    return settings.with_recommended(RecommendedDecoding.read(model_dir))


def local_model_dir(settings: Settings) -> Path | None:
    """The checkpoint directory when it is known without downloading anything: a local path,
    the embedded model, or a hub id already in the Hugging Face cache."""
    from evotoken_core.model.loading import ModelNotFoundError, resolve_model_path

    try:
        return resolve_model_path(resolve_model_ref(settings), allow_download=False)
    except (StartupError, ModelNotFoundError, OSError):
        return None


def advertise_defaults(state, settings: Settings) -> None:
    """Every `/v1/models` entry (the base and its LoRA adapter) lists what a request gets."""
    for card in state.model_cards:
        card.evotoken_defaults = decode_defaults(settings)


def served_names(settings: Settings) -> list[str]:
    """The model id clients send, then the LoRA adapter's id if one is applied."""
    if settings.served_model_name:
        base = settings.served_model_name
    else:
        base = settings.model or EMBEDDED_MODEL_NAME
    return [base, settings.lora] if settings.lora else [base]


async def _start(app: FastAPI, settings: Settings) -> None:
    """Load, start the worker, warm up; any failure is kept for /health and /ready to report."""
    from evotoken_core.engine import Engine
    from evotoken_core.model import load_model

    from .serving import Serving

    state = app.state
    if settings.trust_remote_code:
        log.warning("--trust-remote-code is ignored: the model code is part of this package")
    try:
        ref = resolve_model_ref(settings)
        loaded = await asyncio.to_thread(
            load_model, ref, dtype=settings.dtype, device=settings.device, lora=settings.lora,
            merge_lora=settings.merge_lora)
        if loaded.tokenizer is None:
            raise StartupError(f"{loaded.path} has no tokenizer; the server needs one")
        # From what the operator set, not from the early guess: the loaded checkpoint decides.
        settings = state.settings = with_model_recommendation(state.operator_settings, loaded.path)
        advertise_defaults(state, settings)
        engine = Engine(loaded, max_batch_size=settings.max_batch_size)
        worker = EngineWorker(engine, settings.max_batch_size, settings.max_queue, state.metrics,
                              threads=settings.threads)
        state.metrics.track_engine(lambda: engine.pending_count, lambda: engine.active_count,
                                   lambda: engine.batch_cap)
        state.serving = Serving(loaded, worker, settings, state.metrics, state.model_ids)
        worker.start()
        warm = DecodeRequest("warm-up", prompt_ids=[loaded.end_ids[0] if loaded.end_ids else 0],
                             settings=DecodeSettings(gen_length=1, block_length=1, steps=1))
        await worker.warm_up(warm)
        state.serving.ready = True
        log.info("ready: %s on %s (%s), max batch %d", ref, loaded.device, loaded.dtype,
                 settings.max_batch_size)
    except Exception as error:
        state.startup_error = f"startup failed: {error.__class__.__name__}: {error}"
        log.exception("startup failed")
        if state.exit_on_startup_failure:
            os.kill(os.getpid(), signal.SIGTERM)  # the CLI's server stops; an embedded app stays up
    finally:
        state.started.set()


@asynccontextmanager
async def lifespan(app: FastAPI):
    state = app.state
    state.serving = None
    state.startup_error = None
    state.started = asyncio.Event()  # set once startup has succeeded or failed
    task = asyncio.create_task(_start(app, state.settings))
    try:
        yield
    finally:
        serving = state.serving
        if serving is not None:
            serving.ready = False
            await asyncio.to_thread(serving.worker.stop)
        if not task.done():
            task.cancel()


def create_app(settings: Settings | None = None, exit_on_startup_failure: bool = False) -> FastAPI:
    """The app for `settings`; `exit_on_startup_failure` (the CLI) stops the process when the
    model cannot be loaded instead of staying up with /health failing."""
    operator_settings = settings = settings or Settings()
    model_dir = local_model_dir(settings)
    if model_dir is not None:  # advertise its recommendation from the start, not only once loaded
        try:
            settings = with_model_recommendation(settings, model_dir)
        except ValueError:
            pass  # startup reports it
    app = FastAPI(title="evotoken", version=__version__, lifespan=lifespan,
                  description="OpenAI-compatible server for EvoToken diffusion language models")
    app.state.settings = settings
    app.state.operator_settings = operator_settings
    app.state.exit_on_startup_failure = exit_on_startup_failure
    app.state.metrics = Metrics()
    app.state.serving = None
    app.state.startup_error = None
    app.state.model_ids = served_names(settings)
    created = int(time())
    app.state.model_cards = [ModelCard(id=app.state.model_ids[0], created=created,
                                       root=settings.model or "embedded")]
    if settings.lora:
        app.state.model_cards.append(ModelCard(id=settings.lora, created=created, root=settings.lora,
                                               parent=app.state.model_ids[0]))
    advertise_defaults(app.state, settings)
    install_error_handlers(app)
    declare_errors_only_in_openai_shape(app)
    app.include_router(openai_router)
    app.include_router(probes_router)
    app.include_router(playground_router)

    open_paths = PUBLIC_PATHS | (PROBE_PATHS if settings.open_probes else set())
    # Added innermost first. Outermost to innermost: request context (every response gets an
    # id and a log line), CORS (preflights need no key), auth (headers only, so an anonymous
    # client cannot make us buffer a body), then the body limit.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(APIKeyMiddleware, keys=settings.api_keys(), open_paths=open_paths)
    if settings.cors_origin:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origin, allow_methods=["*"],
                           allow_headers=["*"], expose_headers=["x-request-id"])
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)
    return app
