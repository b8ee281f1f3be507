"""How the back end answers: an `ApiError` raised anywhere in a handler becomes the JSON
error `{"error": {"code", "message", ...}}`; `reply` writes a success; `read_json` and
`validated` read a request's body. Shared by the core's routes, the plugins' (through
builder.serve.plugin_api) and the merchant pages' login."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from builder.serve.api_models import ErrorDetail, FieldError

NO_STORE = {"Cache-Control": "no-store"}
ModelT = TypeVar("ModelT", bound=BaseModel)


class ApiError(Exception):
    """An answer other than success, raised by a handler and written as an ErrorReply."""

    def __init__(self, status: int, code: str, message: str, *, alipay_sub_code: str | None = None,
                 fields: list[FieldError] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers or {}
        self.detail = ErrorDetail(code=code, message=message, alipay_sub_code=alipay_sub_code, fields=fields)


def reply(status: int, body: BaseModel, headers: dict[str, str] | None = None) -> JSONResponse:
    """`body` as the JSON answer, never cached."""
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers={**NO_STORE, **(headers or {})})


async def read_json(request: Request, limit: int) -> Any:
    """The request's JSON (None for an empty body), read up to `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "body_too_large", f"the body may have at most {limit} bytes")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise ApiError(413, "body_too_large", f"the body may have at most {limit} bytes")
    if not data.strip():
        return None
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the body is not JSON") from None


def validated(model: type[ModelT], data: Any) -> ModelT:
    """`data` as a `model`; an ApiError 422 saying which fields do not validate."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # Where and why, never the input itself: it may hold an auth code.
        fields = [FieldError(location=".".join(str(part) for part in error["loc"]) or "(body)", message=error["msg"])
                  for error in exc.errors(include_url=False, include_input=False, include_context=False)]
        raise ApiError(422, "invalid_body", "the body does not validate", fields=fields) from None
