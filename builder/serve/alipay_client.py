"""`AlipayClient`: the one place mpforge's back end calls Alipay's OpenAPI.

Every call goes through Alipay's official Python SDK (`alipay-sdk-python`,
`DefaultAlipayClient`): the SDK's request and model classes build the call, the SDK signs
it with the app private key (RSA2) and verifies the response's signature with the Alipay
public key before anything in it is read. The tests point `server_url` at the sandbox
gateway (`builder.serve.sandbox`), so this code path is the one under test.

Outcomes: a typed result; `AlipayError` when Alipay refuses (its `sub_code` says why);
`UnverifiedResponse` (an `AlipayError`) when the answer is unsigned or its signature does
not verify; `AlipayUnavailable` when no usable answer came (timeout, connection failure,
HTTP error, Alipay's 20000). Keys never appear in a message, a repr or a log record.

Calls block (the SDK uses http.client); an async caller runs them in a worker thread.
"""

from __future__ import annotations

import http.client
import logging
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from alipay.aop.api.AlipayClientConfig import AlipayClientConfig
from alipay.aop.api.DefaultAlipayClient import DefaultAlipayClient
from alipay.aop.api.domain.AlipayMarketingActivityOrdervoucherSendModel import (
    AlipayMarketingActivityOrdervoucherSendModel,
)
from alipay.aop.api.domain.AlipayOpenAppQrcodeCreateModel import AlipayOpenAppQrcodeCreateModel
from alipay.aop.api.domain.AlipayOpenPublicUserFollowQueryModel import AlipayOpenPublicUserFollowQueryModel
from alipay.aop.api.exception.Exception import RequestException, ResponseException
from alipay.aop.api.request.AlipayMarketingActivityOrdervoucherSendRequest import (
    AlipayMarketingActivityOrdervoucherSendRequest,
)
from alipay.aop.api.request.AlipayOpenAppQrcodeCreateRequest import AlipayOpenAppQrcodeCreateRequest
from alipay.aop.api.request.AlipayOpenPublicUserFollowQueryRequest import AlipayOpenPublicUserFollowQueryRequest
from alipay.aop.api.request.AlipaySystemOauthTokenRequest import AlipaySystemOauthTokenRequest
from alipay.aop.api.response.AlipayMarketingActivityOrdervoucherSendResponse import (
    AlipayMarketingActivityOrdervoucherSendResponse,
)
from alipay.aop.api.response.AlipayOpenAppQrcodeCreateResponse import AlipayOpenAppQrcodeCreateResponse
from alipay.aop.api.response.AlipayOpenPublicUserFollowQueryResponse import AlipayOpenPublicUserFollowQueryResponse
from alipay.aop.api.response.AlipaySystemOauthTokenResponse import AlipaySystemOauthTokenResponse

from builder.serve import rsa2
from builder.serve.alipay_errors import (
    SERVICE_UNAVAILABLE,
    SUCCESS,
    AlipayError,
    AlipayUnavailable,
    UnverifiedResponse,
)
from builder.serve.keys import KeySource, load_private_key, load_public_key, private_pem, public_pem

PRODUCTION_GATEWAY = "https://openapi.alipay.com/gateway.do"
# alipay.open.app.qrcode.create limits (secondary: developer.alibaba.com apiId=1447, see
# /work/shared/alipay-platform.md 1f); `size` is one of s/m/l (SDK model docstring).
QR_DESCRIBE_MAX = 32
QR_QUERY_PARAM_MAX = 256
QR_SIZES = ("s", "m", "l")

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class OAuthToken:
    """alipay.system.oauth.token's answer (fields: SDK AlipaySystemOauthTokenResponse).
    Apps on Alipay's OpenID scheme may get no user_id: then open_id is who the user is."""

    user_id: str | None
    open_id: str | None
    access_token: str = field(repr=False)
    expires_in: int  # seconds
    refresh_token: str = field(repr=False)
    re_expires_in: int  # seconds
    auth_start: str | None  # "yyyy-MM-dd HH:mm:ss", Beijing time

    def __post_init__(self) -> None:
        if not self.user_id and not self.open_id:
            raise ValueError("an OAuth token names its user by user_id or open_id")


@dataclass(frozen=True)
class QrCode:
    """alipay.open.app.qrcode.create's image URLs: square, and round with a blue or white slogan."""

    url: str
    url_circle_blue: str | None
    url_circle_white: str | None


def _one_user(user_id: str | None, open_id: str | None) -> None:
    if (user_id is None) == (open_id is None):
        raise ValueError("name the user by exactly one of user_id= or open_id=")


def _from_sdk_http_error(exc: TypeError) -> bool:
    """True for the TypeError the SDK raises for any HTTP status but 200: WebUtils.do_post
    builds its message as str + bytes. Any other TypeError is a bug and is re-raised."""
    return traceback.extract_tb(exc.__traceback__)[-1].name in ("do_post", "do_multipart_post")


class AlipayClient:
    """An app's connection to Alipay's gateway (RSA2 keys named by `KeySource`s).

    `server_url` must carry no port: the SDK always connects to 80 or 443
    (WebUtils.get_http_connection) and fails on a URL with an explicit port.
    """

    def __init__(self, *, app_id: str, app_private_key: KeySource, alipay_public_key: KeySource,
                 server_url: str = PRODUCTION_GATEWAY, timeout: float = 15.0) -> None:
        if urlsplit(server_url).port is not None:
            raise ValueError(f"server_url {server_url!r} has a port; Alipay's SDK only connects to 80 or 443")
        self.app_id = app_id
        self.server_url = server_url
        alipay_key = load_public_key(alipay_public_key)
        config = AlipayClientConfig()
        config.app_id = app_id
        config.sign_type = "RSA2"
        config.app_private_key = private_pem(load_private_key(app_private_key))
        config.alipay_public_key = public_pem(alipay_key)
        config.server_url = server_url
        config.timeout = timeout
        # No logger for the SDK: it would log every request URL and response body (auth
        # codes, tokens, user ids). This class logs what happened instead.
        self._sdk = DefaultAlipayClient(config)
        self._alipay_key = alipay_key

    def __repr__(self) -> str:
        return f"AlipayClient(app_id={self.app_id!r}, server_url={self.server_url!r})"

    def _call(self, method: str, request: Any, response: Any) -> Any:
        """Execute through the SDK; the parsed, verified SDK response, or the exception."""
        try:
            text = self._sdk.execute(request)
        except ResponseException:
            LOG.warning("alipay %s: response unsigned or signature invalid; refused", method)
            raise UnverifiedResponse(method) from None
        except TypeError as exc:
            if not _from_sdk_http_error(exc):
                raise
            LOG.warning("alipay %s: unavailable (HTTP error status)", method)
            raise AlipayUnavailable(method, "HTTP error status from the gateway") from None
        except (RequestException, OSError, http.client.HTTPException) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            LOG.warning("alipay %s: unavailable (%s)", method, reason)
            raise AlipayUnavailable(method, reason) from None
        response.parse_response_content(text)
        # alipay.system.oauth.token answers success without code/msg, only its fields.
        code = response.code or SUCCESS
        if code == SERVICE_UNAVAILABLE:
            LOG.warning("alipay %s: unavailable (%s %s)", method, code, response.sub_code)
            raise AlipayUnavailable(method, f"{code} {response.sub_code}")
        if code != SUCCESS or response.sub_code:
            LOG.info("alipay %s: refused %s %s", method, code, response.sub_code)
            raise AlipayError(method, code, response.sub_code or "", response.msg or "", response.sub_msg or "")
        LOG.info("alipay %s: ok", method)
        return response

    def oauth_token(self, auth_code: str) -> OAuthToken:
        """Exchange a mini-program auth code (my.getAuthCode) for the user's identity and token.
        A bad, used or expired code is AlipayError with sub_code isv.code-invalid."""
        request = AlipaySystemOauthTokenRequest()
        request.grant_type = "authorization_code"
        request.code = auth_code
        answer = self._call("alipay.system.oauth.token", request, AlipaySystemOauthTokenResponse())
        return OAuthToken(user_id=answer.user_id or None, open_id=answer.open_id or None,
                          access_token=answer.access_token, expires_in=int(answer.expires_in),
                          refresh_token=answer.refresh_token, re_expires_in=int(answer.re_expires_in),
                          auth_start=answer.auth_start or None)

    def send_order_voucher(self, activity_id: str, out_biz_no: str, *, user_id: str | None = None,
                           open_id: str | None = None, merchant_order_url: str | None = None,
                           ch_info: str | None = None) -> str:
        """Issue one merchant voucher (商家券) of `activity_id` to a user; its voucher_code.

        Idempotent per out_biz_no: Alipay answers a repeat with unchanged parameters with the
        voucher it issued the first time, and issues nothing new. So after
        AlipayUnavailable (or UnverifiedResponse) the voucher may or may not exist: retry
        with the SAME out_biz_no, never a fresh one, and the user gets exactly one voucher.
        `merchant_order_url` (an alipays:// link) is required for exchange vouchers;
        `ch_info` passes on the chInfo Alipay gave the mini-program at launch.
        """
        _one_user(user_id, open_id)
        model = AlipayMarketingActivityOrdervoucherSendModel()
        model.activity_id = activity_id
        model.out_biz_no = out_biz_no
        model.user_id = user_id
        model.open_id = open_id
        model.merchant_order_url = merchant_order_url
        model.ch_info = ch_info
        LOG.info("alipay voucher send: activity %s, out_biz_no %s", activity_id, out_biz_no)
        answer = self._call("alipay.marketing.activity.ordervoucher.send",
                            AlipayMarketingActivityOrdervoucherSendRequest(biz_model=model),
                            AlipayMarketingActivityOrdervoucherSendResponse())
        return str(answer.voucher_code)

    def follow_query(self, *, user_id: str | None = None, open_id: str | None = None) -> bool:
        """Whether the user follows this app's life account (生活号): is_follow T/F.
        Called with the life account's app id, the one the follow belongs to."""
        _one_user(user_id, open_id)
        model = AlipayOpenPublicUserFollowQueryModel()
        model.user_id = user_id
        model.open_id = open_id
        answer = self._call("alipay.open.public.user.follow.query", AlipayOpenPublicUserFollowQueryRequest(
            biz_model=model), AlipayOpenPublicUserFollowQueryResponse())
        return bool(answer.is_follow == "T")

    def create_qrcode(self, url_param: str, query_param: str, describe: str, size: str | None = None,
                      color: str | None = None) -> QrCode:
        """A 小程序码 opening page `url_param` with launch query `query_param` (App onLaunch
        options.query). describe <= 32 characters, query_param <= 256; size s, m or l;
        color (hex) only tints the round codes."""
        if len(describe) > QR_DESCRIBE_MAX:
            raise ValueError(f"describe has {len(describe)} characters; Alipay allows {QR_DESCRIBE_MAX}")
        if len(query_param) > QR_QUERY_PARAM_MAX:
            raise ValueError(f"query_param has {len(query_param)} characters; Alipay allows {QR_QUERY_PARAM_MAX}")
        if size is not None and size not in QR_SIZES:
            raise ValueError(f"size {size!r} is not one of {', '.join(QR_SIZES)}")
        model = AlipayOpenAppQrcodeCreateModel()
        model.url_param = url_param
        model.query_param = query_param
        model.describe = describe
        model.size = size
        model.color = color
        answer = self._call("alipay.open.app.qrcode.create", AlipayOpenAppQrcodeCreateRequest(biz_model=model),
                            AlipayOpenAppQrcodeCreateResponse())
        return QrCode(url=str(answer.qr_code_url), url_circle_blue=answer.qr_code_url_circle_blue or None,
                      url_circle_white=answer.qr_code_url_circle_white or None)

    def verify_notification(self, params: Mapping[str, str]) -> bool:
        """Whether an asynchronous notification (its form fields, URL-decoded) is from Alipay
        and for this app: sign_type RSA2, an RSA2 signature by the Alipay key over the sorted
        fields less sign and sign_type, and app_id (the receiver) this app's."""
        signature = params.get("sign")
        if not signature or params.get("sign_type") != "RSA2" or params.get("app_id") != self.app_id:
            return False
        return rsa2.verify(self._alipay_key, rsa2.notification_sign_content(params), signature)
