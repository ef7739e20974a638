"""Errors the service raises on purpose, and how they are rendered.

Own routes answer ``{"detail": "<message>", "code": ..., "param": ...}`` (FastAPI's
``detail`` key). ``/v1/*`` answers in OpenAI's envelope:
``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from app.schemas import json_response

log = logging.getLogger(__name__)


class ServiceError(Exception):
    status = 400
    code = "invalid_request"
    type = "invalid_request_error"

    def __init__(self, message: str, *, param: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers


class InvalidInput(ServiceError):
    status = 422
    code = "invalid_input"


class InputTooLarge(ServiceError):
    status = 413
    code = "input_too_large"


class UnknownPrompt(ServiceError):
    """prompt_name names no prompt of the model (or the model has none)."""

    code = "unknown_prompt"


class ModelNotFound(ServiceError):
    status = 404
    code = "model_not_found"


class NotReady(ServiceError):
    status = 503
    code = "not_ready"
    type = "server_error"

    def __init__(self, message: str):
        super().__init__(message, headers={"Retry-After": "1"})


class Overloaded(ServiceError):
    """Admission control refused the request: the queue is at its cap (app.admission)."""

    status = 503
    code = "overloaded"
    type = "server_error"

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message, headers={"Retry-After": str(retry_after)})


def _openai_style(request: Request) -> bool:
    return request.url.path.startswith("/v1/")


def error_response(
    request: Request,
    status: int,
    message: str,
    *,
    code: str,
    type_: str = "invalid_request_error",
    param: str | None = None,
    headers: dict | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    if _openai_style(request):
        body: dict[str, Any] = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    else:
        body = {"detail": message, "code": code, "param": param, **(extra or {})}
    return json_response(body, status_code=status, headers=headers)


def _loc(err: dict) -> str:
    parts = [str(p) for p in err.get("loc", ()) if p != "body"]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "body"


def summarize_validation(errors: list[dict], content_type: str = "") -> tuple[int, str, str | None]:
    """Status, one readable message and the first offending field of a validation error."""
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "invalid JSON")
        pos = next((p for p in first.get("loc", ())[1:] if isinstance(p, int)), None)
        at = f" at character {pos}" if pos is not None else ""
        return 400, f"Malformed JSON body: {reason}{at}. Send a JSON object.", None
    if first.get("loc") == ("body",) and first.get("type") in ("missing", "model_attributes_type"):
        if "json" not in content_type.lower():
            return 422, "Send a JSON object body with Content-Type: application/json.", None
        if first.get("type") == "missing":
            return 422, "Request body is missing: send a JSON object.", None
        return 422, "The body must be a JSON object, not an array or a scalar.", None
    msgs, param = [], None
    for err in errors[:5]:
        where = _loc(err)
        param = param or where
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        msgs.append(msg if msg.startswith(where.split("[")[0]) else f"{where}: {msg}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return 422, "; ".join(msgs) + more, param


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> Response:
        return error_response(
            request,
            exc.status,
            exc.message,
            code=exc.code,
            type_=exc.type,
            param=exc.param,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        content_type = request.headers.get("content-type", "")
        status, message, param = summarize_validation(errors, content_type)
        clean = [{k: v for k, v in e.items() if k in ("type", "loc", "msg")} for e in errors]
        return error_response(
            request,
            status,
            message,
            code="invalid_json" if status == 400 else "invalid_input",
            param=param,
            extra={"errors": clean},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
            exc.status_code, "http_error"
        )
        return error_response(request, exc.status_code, str(exc.detail), code=code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", extra={"path": request.url.path})
        return error_response(
            request,
            500,
            "Internal server error; see the service logs.",
            code="internal_error",
            type_="server_error",
        )
