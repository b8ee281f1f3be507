"""The promotion plugin's part of the back end (`mpforge serve`), through the serve hooks:

* `POST /api/v1/{appid}/events`: attribution events (a launch's scene, channel, entry
  point, store, table), batched, rate limited per user or address (the `Api`'s events
  token buckets, sized by `Limits.events_burst` and `events_per_second`);
* the sandbox gateway's alipay.open.app.qrcode.create, which `mpforge qrcodes` calls,
  and `GET /qrcode/<name>.png`, the image of a code it issued.

The events table is the core's (revision 0001): databases in use created it there before
plugins could add tables.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from datetime import datetime, timezone

import segno
from anyio import to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from builder.serve.api_models import MAX_EVENTS, EventsReply, EventsRequest
from builder.serve.plugin_api import (
    CLIENT_ERRORS,
    ERROR,
    PREFIX,
    UNAVAILABLE,
    ApiError,
    Endpoint,
    FieldError,
    Operation,
    SandboxRefusal,
    SandboxState,
    biz_content,
    invalid_parameter,
    read_json,
    reply,
    serve_api,
    succeeded,
    text_field,
    validated,
)
from builder.serve.storage import Event

QRCODE_CREATE = "alipay.open.app.qrcode.create"
# Image URLs of sandbox 小程序码 when the server's address is unknown: a reserved name
# (RFC 2606) that never resolves.
QR_HOST = "https://qr.alipay-sandbox.invalid"
EVENTS = Operation(
    "recordEvents", "POST", f"{PREFIX}/events", f"Record attribution events (at most {MAX_EVENTS} a request)",
    request=EventsRequest, session="optional",
    responses={202: ("stored", (EventsReply,)), **CLIENT_ERRORS, 401: ("a session token that is not valid", ERROR),
               429: ("too many requests from this user or address", ERROR), **UNAVAILABLE},
    response_headers={429: {"Retry-After": "seconds"}})


async def record_events(request: Request) -> Response:
    api = serve_api(request)
    merchant = api.merchant(request)
    user = api.user(request, merchant.appid, required=False)
    # Behind a proxy the address is the proxy's unless uvicorn is told to trust its
    # X-Forwarded-For (server.run_serve: forwarded_allow_ips).
    address = request.client.host if request.client else ""
    caller = f"{merchant.appid}:{user.kind}:{user.id}" if user else f"ip:{address}"
    wait = api.event_buckets.take(caller)
    if wait:
        raise ApiError(429, "rate_limited", "too many event requests; slow down",
                       headers={"Retry-After": str(math.ceil(wait))})
    body = validated(EventsRequest, await read_json(request, api.limits.max_body_bytes))
    if user is None and body.anonymous_id is None:
        raise ApiError(422, "invalid_body", "without a session token, the body needs anonymousId",
                       fields=[FieldError(location="anonymousId", message="Field required")])
    events = [Event(kind=e.kind, at=datetime.fromtimestamp(e.at / 1000, timezone.utc), scene=e.scene,
                    channel=e.channel, entry_point=e.entry_point, store=e.store, table_no=e.table,
                    ch_info=e.ch_info, page=e.page) for e in body.events]
    await to_thread.run_sync(api.storage.add_events, merchant.appid, user, body.anonymous_id, events)
    return reply(202, EventsReply(accepted=len(events)))


def create_qrcode(state: SandboxState, app_id: str, params: Mapping[str, str]) -> dict[str, str]:
    """alipay.open.app.qrcode.create: qr_code_url and the round variants (SDK
    AlipayOpenAppQrcodeCreateResponse), the same URLs for the same request. Limits:
    describe <= 32 and query_param <= 256 characters (secondary, alipay-platform.md 1f),
    size s/m/l (SDK AlipayOpenAppQrcodeCreateModel). An app in
    `state.qrcode_refused_apps` gets Alipay's answer to an app without the 小程序码
    product (AD:`support/支付宝小程序/常见问题/调用小程序二维码接口报错“ISV权限不足”.md`).

    The URLs point at the sandbox's `/qrcode/` route (`state.public_url`), which serves
    a PNG of a QR code holding `https://qr.alipay.com/sbx<name>`, the form of Alipay's
    code content; the round variants are drawn as the same square code."""
    if app_id in state.qrcode_refused_apps:
        raise SandboxRefusal("40006", "isv.insufficient-isv-permissions",
                             "ISV权限不足，建议在开放平台控制台检查对应产品是否已经绑定")
    biz = biz_content(params)
    text_field(biz, "url_param")  # required: the page the code opens
    describe = text_field(biz, "describe")
    query_param, size = text_field(biz, "query_param", required=False), text_field(biz, "size", required=False)
    if len(describe) > 32:
        raise invalid_parameter("describe 长度不能超过32")
    if len(query_param) > 256:
        raise invalid_parameter("query_param 长度不能超过256")
    if size not in ("", "s", "m", "l"):
        raise invalid_parameter("size 只能是 s、m、l")
    name = state.issue_qrcode(app_id, json.dumps(biz, sort_keys=True))
    base = f"{state.public_url}/qrcode" if state.public_url else QR_HOST
    return succeeded(qr_code_url=f"{base}/{name}.png", qr_code_url_circle_blue=f"{base}/{name}-circle-blue.png",
                     qr_code_url_circle_white=f"{base}/{name}-circle-white.png")


def qrcode_png(content: str) -> bytes:
    """A PNG of a QR code holding `content`, as the sandbox's code images are drawn."""
    buffer = io.BytesIO()
    segno.make(content, error="m", micro=False).save(buffer, kind="png", scale=10, border=4)
    return buffer.getvalue()


async def qrcode_image(request: Request) -> Response:
    """GET /qrcode/<name>[-circle-blue|-circle-white].png: an issued code's image."""
    state: SandboxState = request.app.state.sandbox
    file = request.path_params["file"]
    name = file.removesuffix(".png").removesuffix("-circle-blue").removesuffix("-circle-white")
    content = state.qrcode_content(name)
    if content is None or not file.endswith(".png"):
        return Response("no such code", status_code=404, media_type="text/plain")
    return Response(qrcode_png(content), media_type="image/png")


ENDPOINTS = (Endpoint(EVENTS, record_events),)
SANDBOX_METHODS = {QRCODE_CREATE: create_qrcode}
SANDBOX_ROUTES = (Route("/qrcode/{file}", qrcode_image, methods=["GET"]),)
