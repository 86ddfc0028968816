"""Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`, always.

Every failure the server knows about is an `APIError` with its status; FastAPI's own
exceptions (validation, unknown route, wrong method) are rewritten into the same shape so a
client never has to parse two formats. Anything else is a bug: 500, logged with its traceback.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("evotoken.server")


class ErrorInfo(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorInfo


class APIError(Exception):
    """A failure with an HTTP status and OpenAI's error fields."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.body = ErrorResponse(error=ErrorInfo(message=message, type=type, param=param, code=code))
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body.model_dump(), status_code=self.status, headers=self.headers)

    def payload(self) -> dict:
        return self.body.model_dump()


_STATUS_MEANING = {
    400: "Bad input: a field is invalid, unsupported, or does not fit the model",
    401: "Missing or wrong API key (only when keys are configured)",
    404: "Unknown model",
    413: "Request body larger than the server's limit",
    429: "Queue full; retry after `Retry-After` seconds",
    500: "A bug, or decoding failed",
    503: "Not ready yet, shutting down, or the engine stopped",
    504: "Waited longer than the request timeout for a batch slot",
}


def error_responses(*statuses: int) -> dict:
    """OpenAPI `responses` for the errors a route can answer, all in OpenAI's error shape."""
    return {status: {"model": ErrorResponse, "description": _STATUS_MEANING[status]} for status in statuses}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def unsupported(param: str, why: str = "is not supported by this server") -> APIError:
    return APIError(400, f"{param} {why}", param=param, code="unsupported_parameter")


def model_not_found(name: str) -> APIError:
    return APIError(404, f"The model `{name}` does not exist.", param="model", code="model_not_found")


def queue_full(retry_after: int) -> APIError:
    return APIError(429, "The server is at capacity: too many requests are queued. Retry later.",
                    type="rate_limit_exceeded", code="queue_full",
                    headers={"Retry-After": str(retry_after)})


def queue_timeout(seconds: float) -> APIError:
    return APIError(504, f"The request waited more than {seconds:g} s in the queue.",
                    type="timeout", code="queue_timeout")


def unavailable(message: str) -> APIError:
    return APIError(503, message, type="server_error", code="service_unavailable")


def does_not_fit(message: str) -> APIError:
    """A request that runs out of device memory even as the only row: retrying it here cannot
    succeed, so it is the client's 400, not a 5xx for a load balancer to retry."""
    return APIError(400, f"The request does not fit in this server's device memory ({message}); "
                    "shorten the prompt or lower max_tokens or n.",
                    param="max_tokens", code="request_too_large")


def engine_failed(message: str) -> APIError:
    return APIError(500, f"Decoding failed: {message}", type="server_error", code="engine_error")


_TYPE_TAGS = {"str", "int", "float", "bool", "none", "list", "dict", "literal"}


def _is_type_tag(part) -> bool:
    """pydantic puts union branches in `loc` ("str", "list[int]", "ContentPart"); fields are snake_case."""
    return isinstance(part, str) and (part in _TYPE_TAGS or "[" in part or part[:1].isupper()
                                      or part.startswith("function-"))


def _param_of(loc: tuple) -> str | None:
    """`("body", "messages", 0, "content")` -> "messages.0.content"."""
    parts = [str(p) for p in loc[1:] if not _is_type_tag(p)]
    return ".".join(parts) or None


def _validation_message(error: dict, param: str | None) -> str:
    if error.get("type") == "extra_forbidden":
        return f"Unrecognized request argument supplied: {param}"
    if error.get("type") == "json_invalid":
        return "We could not parse the JSON body of your request."
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{param}: {message}" if param else message


def declare_errors_only_in_openai_shape(app: FastAPI) -> None:
    """Drop FastAPI's automatic 422 from /openapi.json: validation errors are 400 here
    (`install_error_handlers`), and the routes declare that 400 with the shape actually sent."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = build()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
        return app.openapi_schema

    app.openapi = openapi


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        # A body that is not JSON names no field: its `loc` is ("body", <character offset>).
        param = None if first.get("type") == "json_invalid" else _param_of(tuple(first.get("loc", ())))
        if first.get("type") == "missing" and param is None:
            return bad_request("The request body is missing or is not a JSON object.").response()
        return bad_request(_validation_message(first, param), param=param).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        if exc.status_code == 404:
            error = APIError(404, f"Unknown route {request.method} {request.url.path}", code="not_found")
        elif exc.status_code == 405:
            error = APIError(405, f"Method {request.method} is not allowed on {request.url.path}",
                             code="method_not_allowed")
        else:
            error = APIError(exc.status_code, str(exc.detail), code=None)
        error.headers.update(getattr(exc, "headers", None) or {})
        return error.response()

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        return APIError(500, "Internal server error.", type="server_error", code="internal_error").response()
