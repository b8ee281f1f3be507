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

Methods: alipay.system.oauth.token, alipay.marketing.activity.ordervoucher.send,
alipay.open.public.user.follow.query, alipay.open.app.qrcode.create; what they remember
lives in `SandboxState`. `GET /qrcode/<name>.png` serves the image of a code
qrcode.create issued. `sandbox_server.SandboxServer` runs the app for the tests, on
port 80 because the SDK cannot reach any other port (see there).

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
import hashlib
import io
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from urllib.parse import parse_qsl, urlsplit

import segno
from Crypto.PublicKey import RSA
from Crypto.PublicKey.RSA import RsaKey
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from builder.serve import rsa2
from builder.serve.alipay_errors import SERVICE_UNAVAILABLE, SUCCESS
from builder.serve.sandbox_state import AUTH_CODE_PREFIX, Refusal, SandboxState, sandbox_user_id

# Gateway code -> msg, as Alipay words them (AD:`mini/api/开放能力API/运动数据/my.getRunData.md`
# error table; 40004 from AD:`support/支付宝小程序/常见问题/BIZ_ERROR（没有操作权限）.md`).
MESSAGES = {
    SUCCESS: "Success",
    SERVICE_UNAVAILABLE: "Service Currently Unavailable",
    "40001": "Missing Required Arguments",
    "40002": "Invalid Arguments",
    "40004": "Business Failed",
    "40006": "Insufficient Permissions",
}
OAUTH_TOKEN = "alipay.system.oauth.token"
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"  # "yyyy-MM-dd HH:mm:ss", Alipay's common request parameter
# POST /sandbox/follow answers pages of any origin (see the module docstring).
FOLLOW_CORS = {"Access-Control-Allow-Origin": "*"}
# Image URLs of sandbox 小程序码 when the server's address is unknown: a reserved name
# (RFC 2606) that never resolves.
QR_HOST = "https://qr.alipay-sandbox.invalid"

# ordervoucher.send's business refusals. UNVERIFIED NAMES: the API's own error table
# (opendocs) was out of reach and no public source quotes it, so these sub_codes are the
# sandbox's; code 40004 "Business Failed" is Alipay's shape for business failures. The
# repeat rule is Alipay's (SDK AlipayMarketingActivityOrdervoucherSendModel, out_biz_no:
# "参数不变的情况下，再次请求返回与上一次相同的结果"). Callers must not branch on these names
# until they are checked against Alipay's table.
VOUCHER_REFUSALS = {
    Refusal.UNKNOWN_ACTIVITY: ("ACTIVITY_NOT_EXIST", "活动不存在"),
    Refusal.STOCK_EXHAUSTED: ("VOUCHER_STOCK_NOT_ENOUGH", "券库存不足"),
    Refusal.USER_LIMIT_REACHED: ("USER_VOUCHER_LIMIT_EXCEEDED", "用户领券数量超过限制"),
    Refusal.OUT_BIZ_NO_REUSED: ("OUT_BIZ_NO_REPEATED", "外部业务单号重复且参数不一致"),
}


class _Refused(Exception):
    """The gateway's refusal: code, sub_code, sub_msg; `signed` False only when no app key
    pair is known to sign with."""

    def __init__(self, code: str, sub_code: str, sub_msg: str, *, signed: bool = True) -> None:
        super().__init__(sub_code)
        self.code, self.sub_code, self.sub_msg, self.signed = code, sub_code, sub_msg, signed


def _invalid_parameter(what: str) -> _Refused:
    # A business parameter missing or out of range. Per-API names are unverified; this is
    # the shape of AD:`support/支付宝小程序/常见问题/INVALID_PARAMETER（订单数据同步报错）.md`.
    return _Refused("40004", "INVALID_PARAMETER", what)


def _biz(params: Mapping[str, str]) -> dict[str, object]:
    try:
        biz = json.loads(params.get("biz_content", ""))
    except json.JSONDecodeError:
        raise _Refused("40002", "isv.invalid-parameter", "biz_content is not JSON") from None
    if not isinstance(biz, dict):
        raise _Refused("40002", "isv.invalid-parameter", "biz_content is not a JSON object")
    return biz


def _text(biz: Mapping[str, object], name: str, *, required: bool = True) -> str:
    value = biz.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value:
        raise _invalid_parameter(f"{name} 不能为空")
    return value


def _user(state: SandboxState, app_id: str, biz: Mapping[str, object]) -> str:
    """The user_id a call names, by user_id or by this app's open_id."""
    if biz.get("user_id"):
        return _text(biz, "user_id")
    if biz.get("open_id"):
        user_id = state.user_for_open_id(app_id, _text(biz, "open_id"))
        if user_id is None:
            raise _invalid_parameter("open_id 无效")
        return user_id
    raise _invalid_parameter("user_id 和 open_id 不能同时为空")


def oauth_token(state: SandboxState, app_id: str, params: Mapping[str, str]) -> dict[str, str]:
    """Auth code `sandbox-user-<id>` logs in as user <id>, every time (real codes work once,
    3 minutes to 24 hours: AD:`mini/api/开放能力API/用户授权/my.getAuthCode.md`, which also
    names isv.code-invalid). Fields: SDK AlipaySystemOauthTokenResponse; success carries no
    code/msg, as in Alipay's example response."""
    # grant_type refresh_token is not simulated: its request has no code, so it is refused.
    code = params.get("code", "")
    login = code.removeprefix(AUTH_CODE_PREFIX)
    if not code.startswith(AUTH_CODE_PREFIX) or not login:
        raise _Refused("40002", "isv.code-invalid", "授权码code无效")
    user_id, open_id = state.log_in(app_id, login)
    token = hashlib.sha256(f"token:{app_id}:{user_id}:{state.clock().isoformat()}".encode()).hexdigest()
    answer = {"user_id": user_id, "open_id": open_id, "access_token": f"authusrB{token[:32]}", "expires_in": "3600",
              "refresh_token": f"authusrB{token[32:]}", "re_expires_in": "3600",
              "auth_start": state.clock().strftime(TIMESTAMP_FORMAT)}
    if app_id in state.open_id_apps:
        del answer["user_id"]  # apps on the OpenID scheme get no user_id (alipay-platform.md 1d)
    return answer


def send_order_voucher(state: SandboxState, app_id: str, params: Mapping[str, str]) -> dict[str, str]:
    """alipay.marketing.activity.ordervoucher.send: voucher_code (SDK
    AlipayMarketingActivityOrdervoucherSendResponse). Stock and the per-user limit are the
    activity's (SandboxState.add_activity); a repeat of an out_biz_no returns its voucher."""
    biz = _biz(params)
    activity_id, out_biz_no = _text(biz, "activity_id"), _text(biz, "out_biz_no")
    user_id = _user(state, app_id, biz)
    request = tuple(sorted((k, json.dumps(v, ensure_ascii=False)) for k, v in biz.items() if k != "out_biz_no"))
    result = state.issue_voucher(activity_id, out_biz_no, user_id, request)
    if isinstance(result, Refusal):
        sub_code, sub_msg = VOUCHER_REFUSALS[result]
        raise _Refused("40004", sub_code, sub_msg)
    return {"code": SUCCESS, "msg": MESSAGES[SUCCESS], "voucher_code": result.voucher_code}


def follow_query(state: SandboxState, app_id: str, params: Mapping[str, str]) -> dict[str, str]:
    """alipay.open.public.user.follow.query, asked by the life account's app: is_follow
    "T" or "F" (SDK AlipayOpenPublicUserFollowQueryResponse; T/F per the Java SDK's
    AlipayOpenPublicUserFollowQueryResponse docstring)."""
    following = state.is_following(app_id, _user(state, app_id, _biz(params)))
    return {"code": SUCCESS, "msg": MESSAGES[SUCCESS], "is_follow": "T" if following else "F"}


def create_qrcode(state: SandboxState, app_id: str, params: Mapping[str, str]) -> dict[str, str]:
    """alipay.open.app.qrcode.create: qr_code_url and the round variants (SDK
    AlipayOpenAppQrcodeCreateResponse), the same URLs for the same request. Limits:
    describe <= 32 and query_param <= 256 characters (secondary, alipay-platform.md 1f),
    size s/m/l (SDK AlipayOpenAppQrcodeCreateModel). An app in
    `state.qrcode_refused_apps` gets Alipay's answer to an app without the 小程序码
    product (AD:`support/支付宝小程序/常见问题/调用小程序二维码接口报错“ISV权限不足”.md`).

    The URLs point at this server's `/qrcode/` route (`state.public_url`), which serves
    a PNG of a QR code holding `https://qr.alipay.com/sbx<name>`, the form of Alipay's
    code content; the round variants are drawn as the same square code."""
    if app_id in state.qrcode_refused_apps:
        raise _Refused("40006", "isv.insufficient-isv-permissions",
                       "ISV权限不足，建议在开放平台控制台检查对应产品是否已经绑定")
    biz = _biz(params)
    _text(biz, "url_param")  # required: the page the code opens
    describe = _text(biz, "describe")
    query_param, size = _text(biz, "query_param", required=False), _text(biz, "size", required=False)
    if len(describe) > 32:
        raise _invalid_parameter("describe 长度不能超过32")
    if len(query_param) > 256:
        raise _invalid_parameter("query_param 长度不能超过256")
    if size not in ("", "s", "m", "l"):
        raise _invalid_parameter("size 只能是 s、m、l")
    name = state.issue_qrcode(app_id, json.dumps(biz, sort_keys=True))
    base = f"{state.public_url}/qrcode" if state.public_url else QR_HOST
    return {"code": SUCCESS, "msg": MESSAGES[SUCCESS], "qr_code_url": f"{base}/{name}.png",
            "qr_code_url_circle_blue": f"{base}/{name}-circle-blue.png",
            "qr_code_url_circle_white": f"{base}/{name}-circle-white.png"}


def qrcode_png(content: str) -> bytes:
    """A PNG of a QR code holding `content`, as the sandbox's code images are drawn."""
    buffer = io.BytesIO()
    segno.make(content, error="m", micro=False).save(buffer, kind="png", scale=10, border=4)
    return buffer.getvalue()


Handler = Callable[[SandboxState, str, Mapping[str, str]], dict[str, str]]
METHODS: Mapping[str, Handler] = {
    OAUTH_TOKEN: oauth_token,
    "alipay.marketing.activity.ordervoucher.send": send_order_voucher,
    "alipay.open.public.user.follow.query": follow_query,
    "alipay.open.app.qrcode.create": create_qrcode,
}


def _check(params: Mapping[str, str], app_keys: Mapping[str, RsaKey], state: SandboxState) -> Handler:
    """The gateway's checks, in order; the method's handler when all pass."""
    app_key = app_keys.get(params.get("app_id", ""))
    if app_key is None:
        raise _Refused("40002", "isv.invalid-app-id", "无效的AppID参数", signed=False)
    if not params.get("sign"):
        raise _Refused("40001", "isv.missing-signature", "缺少签名参数")
    if not rsa2.verify(app_key, rsa2.request_sign_content(params), params["sign"]):
        raise _Refused("40002", "isv.invalid-signature", "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配")
    try:
        sent = datetime.strptime(params.get("timestamp", ""), TIMESTAMP_FORMAT)
    except ValueError:
        raise _Refused("40002", "isv.invalid-timestamp", "非法的时间戳参数") from None
    if abs(state.clock() - sent) > state.timestamp_tolerance:
        raise _Refused("40002", "isv.invalid-timestamp", "非法的时间戳参数")
    handler = METHODS.get(params.get("method", ""))
    if handler is None:
        raise _Refused("40002", "isv.invalid-method", "不存在的方法名")
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


def create_sandbox_app(apps: Mapping[str, str], alipay_private_key_pem: str, state: SandboxState) -> Starlette:
    """The gateway app: `apps` maps each app_id to its app public key (PEM); Alipay's
    responses are signed with `alipay_private_key_pem`."""
    app_keys = {app_id: RSA.import_key(pem) for app_id, pem in apps.items()}
    alipay_key = RSA.import_key(alipay_private_key_pem)

    async def gateway(request: Request) -> Response:
        faults = state.faults
        if faults.http_status != 200:
            return Response("sandbox: injected HTTP error", status_code=faults.http_status, media_type="text/plain")
        # The SDK encodes with the request charset, utf-8.
        params = dict(parse_qsl(request.url.query, keep_blank_values=True))
        params.update(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
        method = params.get("method", "")
        key = method.replace(".", "_") + "_response"
        signer: RsaKey | None = alipay_key
        try:
            if faults.busy:
                raise _Refused(SERVICE_UNAVAILABLE, "isp.unknow-error", "系统繁忙")
            body = _check(params, app_keys, state)(state, params["app_id"], params)
        except _Refused as refused:
            if method == OAUTH_TOKEN:
                key = "error_response"
            signer = alipay_key if refused.signed else None
            body = {"code": refused.code, "msg": MESSAGES[refused.code], "sub_code": refused.sub_code,
                    "sub_msg": refused.sub_msg}
        if faults.delay_seconds:
            await asyncio.sleep(faults.delay_seconds)
        return Response(_response_text(key, body, signer, faults.tamper), media_type="application/json")

    async def qrcode_image(request: Request) -> Response:
        """GET /qrcode/<name>[-circle-blue|-circle-white].png: an issued code's image."""
        name = request.path_params["file"].removesuffix(".png").removesuffix("-circle-blue").removesuffix(
            "-circle-white")
        content = state.qrcode_content(name)
        if content is None or not request.path_params["file"].endswith(".png"):
            return Response("no such code", status_code=404, media_type="text/plain")
        return Response(qrcode_png(content), media_type="image/png")

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

    return Starlette(routes=[Route("/gateway.do", gateway, methods=["POST"]),
                             Route("/qrcode/{file}", qrcode_image, methods=["GET"]),
                             Route("/sandbox/follow", follow, methods=["POST", "OPTIONS"])],
                     middleware=[Middleware(AbsoluteFormTarget)])


def _sandbox_error(status: int, message: str) -> Response:
    return JSONResponse({"error": {"message": message}}, status_code=status, headers=FOLLOW_CORS)


def signed_notification(alipay_private_key_pem: str, params: Mapping[str, str]) -> dict[str, str]:
    """An asynchronous notification as Alipay would post it: `params` plus sign_type RSA2
    and sign over the sorted fields less sign and sign_type."""
    fields = {**params, "sign_type": "RSA2"}
    return {**fields, "sign": rsa2.sign(RSA.import_key(alipay_private_key_pem), rsa2.notification_sign_content(fields))}
