"""The sandbox gateway: Alipay's OpenAPI gateway as the tests need it, a Starlette app.

No machine here reaches Alipay, so `AlipayClient` (the official SDK underneath) is tested
against this app instead. It checks what Alipay checks and answers as Alipay answers:

* `POST /gateway.do` in the SDK's encoding: common parameters (app_id, method, charset,
  sign_type, timestamp, version, sign) in the query string, the rest (biz_content, or
  code and grant_type for oauth) form-encoded in the body;
* the app must be known (else 40002 isv.invalid-app-id, answered unsigned: without a
  known app there is no key pair to sign with, and Alipay's own answer carries no sign,
  secondary: github.com/shadowsocks/shadowsocks-manager/issues/139), the request must be
  signed (40001 isv.missing-signature) with RSA2 over its sorted parameters by the app's
  private key (40002 isv.invalid-signature), its timestamp within the tolerance of the
  gateway clock (40002 isv.invalid-timestamp, signed, as in
  github.com/Srar/AlipayF2F/issues/14) and its method one of those below (40002
  isv.invalid-method);
* every other answer is HTTP 200 with `{"<method_with_underscores>_response": {...},
  "sign": "<RSA2 over the exact JSON text of that object>"}`, the shape of every response
  example in AD (e.g. AD:`support/支付宝小程序/常见问题/调用小程序二维码接口报错“ISV权限不足”.md`);
  alipay.system.oauth.token reports errors as `error_response` (AD:`support/支付宝小程序/
  常见问题/获取会员基础信息常见问题.md`).

Methods: the core answers alipay.system.oauth.token (logging in); the plugins answer
theirs through the `mpforge_sandbox_methods` hook (the coupon plugin
alipay.marketing.activity.ordervoucher.send, life_account
alipay.open.public.user.follow.query, promotion alipay.open.app.qrcode.create), made
of `sandbox_methods`, and may add routes through `mpforge_sandbox_routes` (promotion:
`GET /qrcode/<name>.png`, the image of a code qrcode.create issued). The app loads the
plugins as a build with default options does (installed ones, none disabled), unless
given its `Hooks`. What the methods remember lives in `SandboxState`, which routes find
as `request.app.state.sandbox`. `sandbox_server.SandboxServer` runs the app for the
tests, on port 80 because the SDK cannot reach any other port (see there).

A request with a file (multipart/form-data, as the SDK sends alipay.offline.material.
image.upload) has its text fields checked as above; its files, which are not signed,
reach the method base64-encoded under their field names.

One route is the sandbox's own, for a local development run (`mpforge serve --sandbox`)
to stand in for what a user does in Alipay's app, never part of the back end's API:

* `POST /sandbox/follow` with JSON `{"appId": "<app id>", "login": "<name>",
  "following": true}` makes the user of auth code `sandbox-user-<name>` follow the
  life account of that app (`"following": false`, the default true, unfollows), so
  that alipay.open.public.user.follow.query then says so. It answers 200
  `{"appId", "userId", "following"}`, 404 for an app the sandbox does not know, 400
  for a body that is not that object. It is meant for the preview's follow button,
  which runs in a browser page of another origin: so this route, and only it, answers
  CORS preflights and allows any origin (what it changes is the sandbox's alone).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from email import policy
from email.parser import BytesParser
from urllib.parse import parse_qsl, urlsplit

from Crypto.PublicKey import RSA
from Crypto.PublicKey.RSA import RsaKey
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from builder.errors import UserError
from builder.hooks import Hooks
from builder.pipeline import load_plugins
from builder.serve import rsa2
from builder.serve.alipay_errors import SERVICE_UNAVAILABLE
from builder.serve.sandbox_methods import MESSAGES, SandboxMethod, SandboxRefusal
from builder.serve.sandbox_state import AUTH_CODE_PREFIX, SandboxState, sandbox_user_id

OAUTH_TOKEN = "alipay.system.oauth.token"
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"  # "yyyy-MM-dd HH:mm:ss", Alipay's common request parameter
# POST /sandbox/follow answers pages of any origin (see the module docstring).
FOLLOW_CORS = {"Access-Control-Allow-Origin": "*"}


def oauth_token(state: SandboxState, app_id: str, params: Mapping[str, str]) -> dict[str, str]:
    """Auth code `sandbox-user-<id>` logs in as user <id>, every time (real codes work once,
    3 minutes to 24 hours: AD:`mini/api/开放能力API/用户授权/my.getAuthCode.md`, which also
    names isv.code-invalid). Fields: SDK AlipaySystemOauthTokenResponse; success carries no
    code/msg, as in Alipay's example response."""
    # grant_type refresh_token is not simulated: its request has no code, so it is refused.
    code = params.get("code", "")
    login = code.removeprefix(AUTH_CODE_PREFIX)
    if not code.startswith(AUTH_CODE_PREFIX) or not login:
        raise SandboxRefusal("40002", "isv.code-invalid", "授权码code无效")
    user_id, open_id = state.log_in(app_id, login)
    token = hashlib.sha256(f"token:{app_id}:{user_id}:{state.clock().isoformat()}".encode()).hexdigest()
    answer = {"user_id": user_id, "open_id": open_id, "access_token": f"authusrB{token[:32]}", "expires_in": "3600",
              "refresh_token": f"authusrB{token[32:]}", "re_expires_in": "3600",
              "auth_start": state.clock().strftime(TIMESTAMP_FORMAT)}
    state.grant_token(app_id, answer["access_token"], user_id)
    if app_id in state.open_id_apps:
        del answer["user_id"]  # apps on the OpenID scheme get no user_id (alipay-platform.md 1d)
    return answer


CORE_METHODS: Mapping[str, SandboxMethod] = {OAUTH_TOKEN: oauth_token}


def sandbox_methods(plugins: Hooks) -> dict[str, SandboxMethod]:
    """The core's methods and the plugins'; a plugin answering a core method is refused."""
    added = plugins.sandbox_methods()
    taken = sorted(set(added) & set(CORE_METHODS))
    if taken:
        raise UserError(f"a plugin answers the sandbox method {', '.join(taken)}, which the core answers; "
                        "leave that method out of its mpforge_sandbox_methods")
    return {**CORE_METHODS, **added}


def _check(params: Mapping[str, str], app_keys: Mapping[str, RsaKey], state: SandboxState,
           methods: Mapping[str, SandboxMethod]) -> SandboxMethod:
    """The gateway's checks, in order; the method's handler when all pass."""
    app_key = app_keys.get(params.get("app_id", ""))
    if app_key is None:
        raise SandboxRefusal("40002", "isv.invalid-app-id", "无效的AppID参数", signed=False)
    if not params.get("sign"):
        raise SandboxRefusal("40001", "isv.missing-signature", "缺少签名参数")
    if not rsa2.verify(app_key, rsa2.request_sign_content(params), params["sign"]):
        raise SandboxRefusal("40002", "isv.invalid-signature",
                             "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配")
    try:
        sent = datetime.strptime(params.get("timestamp", ""), TIMESTAMP_FORMAT)
    except ValueError:
        raise SandboxRefusal("40002", "isv.invalid-timestamp", "非法的时间戳参数") from None
    if abs(state.clock() - sent) > state.timestamp_tolerance:
        raise SandboxRefusal("40002", "isv.invalid-timestamp", "非法的时间戳参数")
    handler = methods.get(params.get("method", ""))
    if handler is None:
        raise SandboxRefusal("40002", "isv.invalid-method", "不存在的方法名")
    return handler


def _response_text(key: str, body: Mapping[str, str], alipay_key: RsaKey | None, tamper: bool) -> str:
    """`{"<key>": body, "sign": ...}` with the sign over the exact text of body. Tampered:
    signed first, then a value changed, as a man in the middle would."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    if alipay_key is None:
        return f'{{{json.dumps(key)}:{text}}}'
    signature = rsa2.sign(alipay_key, text)
    if tamper:
        changed = dict(body)
        last = list(changed)[-1]
        changed[last] = changed[last] + "0"
        text = json.dumps(changed, ensure_ascii=False, separators=(",", ":"))
    return f'{{{json.dumps(key)}:{text},"sign":"{signature}"}}'


class AbsoluteFormTarget:
    """ASGI middleware: a request target in absolute form becomes a path. The SDK sends
    `POST http://host/gateway.do?... HTTP/1.1` (WebUtils.get_http_connection puts the
    whole URL in the request line), which a server must accept (RFC 9112, 3.2.2) and
    Alipay's does; uvicorn hands it on unchanged as the path, so no route would match."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "://" in scope["path"]:
            path = urlsplit(scope["path"]).path or "/"
            scope = {**scope, "path": path, "raw_path": path.encode("utf-8")}
        await self.app(scope, receive, send)


def create_sandbox_app(apps: Mapping[str, str], alipay_private_key_pem: str, state: SandboxState, *,
                       plugins: Hooks | None = None) -> Starlette:
    """The gateway app: `apps` maps each app_id to its app public key (PEM); Alipay's
    responses are signed with `alipay_private_key_pem`. `plugins` add methods and
    routes (default: the plugins a build loads with default options)."""
    plugins = plugins or load_plugins()
    methods = sandbox_methods(plugins)
    app_keys = {app_id: RSA.import_key(pem) for app_id, pem in apps.items()}
    alipay_key = RSA.import_key(alipay_private_key_pem)

    async def gateway(request: Request) -> Response:
        faults = state.faults
        if faults.http_status != 200:
            return Response("sandbox: injected HTTP error", status_code=faults.http_status, media_type="text/plain")
        # The SDK encodes with the request charset, utf-8.
        params = dict(parse_qsl(request.url.query, keep_blank_values=True))
        files: dict[str, str] = {}
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            fields, files = _multipart(content_type, await request.body())
            params.update(fields)
        else:
            params.update(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
        method = params.get("method", "")
        key = method.replace(".", "_") + "_response"
        signer: RsaKey | None = alipay_key
        try:
            if faults.busy:
                raise SandboxRefusal(SERVICE_UNAVAILABLE, "isp.unknow-error", "系统繁忙")
            # Files are not signed (the SDK signs the text parameters only): the method
            # gets them after the checks, base64-encoded under their field names.
            body = _check(params, app_keys, state, methods)(state, params["app_id"], {**params, **files})
        except SandboxRefusal as refused:
            if method == OAUTH_TOKEN:
                key = "error_response"
            signer = alipay_key if refused.signed else None
            body = {"code": refused.code, "msg": MESSAGES[refused.code], "sub_code": refused.sub_code,
                    "sub_msg": refused.sub_msg}
        if faults.delay_seconds:
            await asyncio.sleep(faults.delay_seconds)
        return Response(_response_text(key, body, signer, faults.tamper), media_type="application/json")

    async def follow(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers={**FOLLOW_CORS, "Access-Control-Allow-Methods": "POST",
                                                      "Access-Control-Allow-Headers": "Content-Type"})
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            return _sandbox_error(400, "the body is not a JSON object")
        app_id, login, following = body.get("appId"), body.get("login"), body.get("following", True)
        if not isinstance(app_id, str) or not isinstance(login, str) or not login or not isinstance(following, bool):
            return _sandbox_error(400, 'send {"appId": "<app id>", "login": "<name of sandbox-user-<name>>", '
                                       '"following": true|false}')
        if app_id not in app_keys:
            return _sandbox_error(404, f"the sandbox knows no app {app_id!r}")
        user_id = sandbox_user_id(login)
        state.set_following(app_id, user_id, following)
        return JSONResponse({"appId": app_id, "userId": user_id, "following": following}, headers=FOLLOW_CORS)

    app = Starlette(routes=[Route("/gateway.do", gateway, methods=["POST"]),
                            Route("/sandbox/follow", follow, methods=["POST", "OPTIONS"]),
                            *plugins.sandbox_routes()],
                    middleware=[Middleware(AbsoluteFormTarget)])
    app.state.sandbox = state
    # For plugin routes that post signed notifications, as Alipay does (signed_notification).
    app.state.alipay_private_key_pem = alipay_private_key_pem
    return app


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, str]]:
    """(text fields, files base64-encoded) of a multipart/form-data body: how the SDK
    sends a request with a file (WebUtils.do_multipart_post, e.g. the image of
    alipay.offline.material.image.upload), its text parameters as fields."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=policy.default).parsebytes(head + body)
    fields: dict[str, str] = {}
    files: dict[str, str] = {}
    for part in message.iter_parts() if message.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            continue
        if part.get_filename() is None:
            fields[name] = payload.decode("utf-8", errors="replace")
        else:
            files[name] = base64.b64encode(payload).decode("ascii")
    return fields, files


def _sandbox_error(status: int, message: str) -> Response:
    return JSONResponse({"error": {"message": message}}, status_code=status, headers=FOLLOW_CORS)


def signed_notification(alipay_private_key_pem: str, params: Mapping[str, str]) -> dict[str, str]:
    """An asynchronous notification as Alipay would post it: `params` plus sign_type RSA2
    and sign over the sorted fields less sign and sign_type."""
    fields = {**params, "sign_type": "RSA2"}
    return {**fields, "sign": rsa2.sign(RSA.import_key(alipay_private_key_pem), rsa2.notification_sign_content(fields))}
