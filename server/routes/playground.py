"""The playground page at `/` and its assets: a static page that watches tokens evolve.

The page is plain HTML, CSS and JS read from `server/static/` (no build step, no Node). It
decodes only through the public API (`POST /v1/chat/completions` or `/v1/completions` with
`stream_steps: "full"`), so it shows exactly what any OpenAI client would get. The page and its
assets carry no secret and are served without an API key (`ASSET_PATHS` are added to the app's
public paths); the key a user types stays in the browser and goes out only as a Bearer header
on the API calls the page makes.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response

from evotoken_core.decoding import DecodeSettings

from ..settings import ModelSettings

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
JS = "text/javascript; charset=utf-8"  # a JavaScript MIME type, as browsers require for modules
ASSETS = {
    # The page's script is plain ES modules, one concept each; playground.js imports the others.
    "/static/playground.js": ("playground.js", JS),
    "/static/canvas.js": ("canvas.js", JS),
    "/static/dom.js": ("dom.js", JS),
    "/static/format.js": ("format.js", JS),
    "/static/sse.js": ("sse.js", JS),
    "/static/playground.css": ("playground.css", "text/css; charset=utf-8"),
}
ASSET_PATHS = frozenset(ASSETS)

# Everything the page loads comes from this origin; the API calls go to this origin too.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


def decode_defaults(settings: ModelSettings) -> dict:
    """What a request that names no diffusion setting gets, as `/v1/models` advertises it.

    The page fills its settings from these (the `evotoken_defaults` extra of the model entry),
    so it never guesses what the server would do with an empty field: they are the settings
    the core resolves for an empty request, one entry per server-wide default.
    """
    resolved = DecodeSettings.resolve(defaults=settings)
    advertised = {"max_tokens": settings.max_tokens, "block_length": resolved.block_length,
                  "steps": resolved.steps, "steps_ratio": settings.steps_ratio}
    for name in DecodeSettings.field_names():
        if name in ModelSettings.model_fields and name not in advertised:
            advertised[name] = getattr(resolved, name)
    return advertised


@cache
def _read(name: str) -> bytes:
    """Read once per process: the files ship with the package and do not change while serving."""
    return (STATIC_DIR / name).read_bytes()


def _file(name: str, media_type: str) -> Response:
    return Response(_read(name), media_type=media_type, headers=SECURITY_HEADERS)


@router.get("/")
async def playground() -> Response:
    return _file("index.html", "text/html; charset=utf-8")


def _asset_route(path: str, name: str, media_type: str) -> None:
    async def asset() -> Response:
        return _file(name, media_type)

    router.add_api_route(path, asset, methods=["GET"], name=name)


for _path, (_name, _media) in ASSETS.items():
    _asset_route(_path, _name, _media)
