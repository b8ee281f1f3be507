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
import json
import logging
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from alipay.aop.api.AlipayClientConfig import AlipayClientConfig
from alipay.aop.api.DefaultAlipayClient import DefaultAlipayClient
from alipay.aop.api.domain.AlipayMarketingActivityOrdervoucherSendModel import (
    AlipayMarketingActivityOrdervoucherSendModel,
)
from alipay.aop.api.domain.AlipayMarketingCardActivateformQueryModel import AlipayMarketingCardActivateformQueryModel
from alipay.aop.api.domain.AlipayMarketingCardActivateurlApplyModel import AlipayMarketingCardActivateurlApplyModel
from alipay.aop.api.domain.AlipayMarketingCardFormtemplateSetModel import AlipayMarketingCardFormtemplateSetModel
from alipay.aop.api.domain.AlipayMarketingCardOpenModel import AlipayMarketingCardOpenModel
from alipay.aop.api.domain.AlipayMarketingCardTemplateCreateModel import AlipayMarketingCardTemplateCreateModel
from alipay.aop.api.domain.AlipayMarketingCardTemplateModifyModel import AlipayMarketingCardTemplateModifyModel
from alipay.aop.api.domain.AlipayMarketingCardUpdateModel import AlipayMarketingCardUpdateModel
from alipay.aop.api.domain.AlipayMerchantOrderSyncModel import AlipayMerchantOrderSyncModel
from alipay.aop.api.domain.AlipayMerchantQipanCrowdCreateModel import AlipayMerchantQipanCrowdCreateModel
from alipay.aop.api.domain.AlipayMerchantQipanCrowduserAddModel import AlipayMerchantQipanCrowduserAddModel
from alipay.aop.api.domain.AlipayMerchantQipanCrowduserDeleteModel import AlipayMerchantQipanCrowduserDeleteModel
from alipay.aop.api.domain.AlipayOpenAppMiniTemplatemessageSendModel import AlipayOpenAppMiniTemplatemessageSendModel
from alipay.aop.api.domain.AlipayOpenAppQrcodeCreateModel import AlipayOpenAppQrcodeCreateModel
from alipay.aop.api.domain.AlipayOpenPublicUserFollowQueryModel import AlipayOpenPublicUserFollowQueryModel
from alipay.aop.api.domain.AlipayTradeCloseModel import AlipayTradeCloseModel
from alipay.aop.api.domain.AlipayTradeCreateModel import AlipayTradeCreateModel
from alipay.aop.api.domain.AlipayTradeQueryModel import AlipayTradeQueryModel
from alipay.aop.api.domain.AlipayTradeRefundModel import AlipayTradeRefundModel
from alipay.aop.api.exception.Exception import RequestException, ResponseException
from alipay.aop.api.FileItem import FileItem
from alipay.aop.api.request.AlipayMarketingActivityOrdervoucherSendRequest import (
    AlipayMarketingActivityOrdervoucherSendRequest,
)
from alipay.aop.api.request.AlipayMarketingCardActivateformQueryRequest import (
    AlipayMarketingCardActivateformQueryRequest,
)
from alipay.aop.api.request.AlipayMarketingCardActivateurlApplyRequest import AlipayMarketingCardActivateurlApplyRequest
from alipay.aop.api.request.AlipayMarketingCardFormtemplateSetRequest import AlipayMarketingCardFormtemplateSetRequest
from alipay.aop.api.request.AlipayMarketingCardOpenRequest import AlipayMarketingCardOpenRequest
from alipay.aop.api.request.AlipayMarketingCardTemplateCreateRequest import AlipayMarketingCardTemplateCreateRequest
from alipay.aop.api.request.AlipayMarketingCardTemplateModifyRequest import AlipayMarketingCardTemplateModifyRequest
from alipay.aop.api.request.AlipayMarketingCardUpdateRequest import AlipayMarketingCardUpdateRequest
from alipay.aop.api.request.AlipayMerchantOrderSyncRequest import AlipayMerchantOrderSyncRequest
from alipay.aop.api.request.AlipayMerchantQipanCrowdCreateRequest import AlipayMerchantQipanCrowdCreateRequest
from alipay.aop.api.request.AlipayMerchantQipanCrowduserAddRequest import AlipayMerchantQipanCrowduserAddRequest
from alipay.aop.api.request.AlipayMerchantQipanCrowduserDeleteRequest import (
    AlipayMerchantQipanCrowduserDeleteRequest,
)
from alipay.aop.api.request.AlipayOfflineMaterialImageUploadRequest import AlipayOfflineMaterialImageUploadRequest
from alipay.aop.api.request.AlipayOpenAppMiniTemplatemessageSendRequest import (
    AlipayOpenAppMiniTemplatemessageSendRequest,
)
from alipay.aop.api.request.AlipayOpenAppQrcodeCreateRequest import AlipayOpenAppQrcodeCreateRequest
from alipay.aop.api.request.AlipayOpenPublicUserFollowQueryRequest import AlipayOpenPublicUserFollowQueryRequest
from alipay.aop.api.request.AlipaySystemOauthTokenRequest import AlipaySystemOauthTokenRequest
from alipay.aop.api.request.AlipayTradeCloseRequest import AlipayTradeCloseRequest
from alipay.aop.api.request.AlipayTradeCreateRequest import AlipayTradeCreateRequest
from alipay.aop.api.request.AlipayTradeQueryRequest import AlipayTradeQueryRequest
from alipay.aop.api.request.AlipayTradeRefundRequest import AlipayTradeRefundRequest
from alipay.aop.api.response.AlipayMarketingActivityOrdervoucherSendResponse import (
    AlipayMarketingActivityOrdervoucherSendResponse,
)
from alipay.aop.api.response.AlipayMarketingCardActivateformQueryResponse import (
    AlipayMarketingCardActivateformQueryResponse,
)
from alipay.aop.api.response.AlipayMarketingCardActivateurlApplyResponse import (
    AlipayMarketingCardActivateurlApplyResponse,
)
from alipay.aop.api.response.AlipayMarketingCardFormtemplateSetResponse import (
    AlipayMarketingCardFormtemplateSetResponse,
)
from alipay.aop.api.response.AlipayMarketingCardOpenResponse import AlipayMarketingCardOpenResponse
from alipay.aop.api.response.AlipayMarketingCardTemplateCreateResponse import AlipayMarketingCardTemplateCreateResponse
from alipay.aop.api.response.AlipayMarketingCardTemplateModifyResponse import AlipayMarketingCardTemplateModifyResponse
from alipay.aop.api.response.AlipayMarketingCardUpdateResponse import AlipayMarketingCardUpdateResponse
from alipay.aop.api.response.AlipayMerchantOrderSyncResponse import AlipayMerchantOrderSyncResponse
from alipay.aop.api.response.AlipayMerchantQipanCrowdCreateResponse import AlipayMerchantQipanCrowdCreateResponse
from alipay.aop.api.response.AlipayMerchantQipanCrowduserAddResponse import AlipayMerchantQipanCrowduserAddResponse
from alipay.aop.api.response.AlipayMerchantQipanCrowduserDeleteResponse import (
    AlipayMerchantQipanCrowduserDeleteResponse,
)
from alipay.aop.api.response.AlipayOfflineMaterialImageUploadResponse import AlipayOfflineMaterialImageUploadResponse
from alipay.aop.api.response.AlipayOpenAppMiniTemplatemessageSendResponse import (
    AlipayOpenAppMiniTemplatemessageSendResponse,
)
from alipay.aop.api.response.AlipayOpenAppQrcodeCreateResponse import AlipayOpenAppQrcodeCreateResponse
from alipay.aop.api.response.AlipayOpenPublicUserFollowQueryResponse import AlipayOpenPublicUserFollowQueryResponse
from alipay.aop.api.response.AlipaySystemOauthTokenResponse import AlipaySystemOauthTokenResponse
from alipay.aop.api.response.AlipayTradeCloseResponse import AlipayTradeCloseResponse
from alipay.aop.api.response.AlipayTradeCreateResponse import AlipayTradeCreateResponse
from alipay.aop.api.response.AlipayTradeQueryResponse import AlipayTradeQueryResponse
from alipay.aop.api.response.AlipayTradeRefundResponse import AlipayTradeRefundResponse

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
# alipay.open.app.qrcode.create limits (secondary: developer.alibaba.com apiId=1447);
# `size` is one of s/m/l (SDK model docstring).
QR_DESCRIBE_MAX = 32
QR_QUERY_PARAM_MAX = 256
QR_SIZES = ("s", "m", "l")
# 棋盘密云 crowds (docs/alipay-membership-facts.md 3): at most 1000 users a call, a name of
# at most 15 characters, users by these id types only (never a 2088 user id).
CROWD_BATCH = 1000
CROWD_NAME_MAX = 15
CROWD_ID_TYPES = ("OPEN_ID", "SHA256_MOBILE")

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


@dataclass(frozen=True)
class TradeState:
    """alipay.trade.query's answer (SDK AlipayTradeQueryResponse): trade_status is
    WAIT_BUYER_PAY, TRADE_CLOSED, TRADE_SUCCESS or TRADE_FINISHED; total_amount in yuan,
    as Alipay writes it ("88.88")."""

    trade_no: str
    out_trade_no: str
    trade_status: str
    total_amount: str


@dataclass(frozen=True)
class Refund:
    """alipay.trade.refund's answer: fund_change "Y" when this call moved money ("N" for
    a repeat of an out_request_no), refund_fee the trade's cumulative refund in yuan."""

    trade_no: str
    out_trade_no: str
    fund_change: str
    refund_fee: str


@dataclass(frozen=True)
class OrderItem:
    """One line of an order synchronised to the order centre (ItemOrderInfo): unit_price
    in yuan ("19.00")."""

    name: str
    quantity: int
    unit_price: str
    item_id: str | None = None


@dataclass(frozen=True)
class OrderSync:
    """alipay.merchant.order.sync's answer (SDK AlipayMerchantOrderSyncResponse): Alipay's
    order id, and the order_status and record_id it reports when it does."""

    order_id: str
    order_status: str | None
    record_id: str | None


@dataclass(frozen=True)
class CrowdUser:
    """One user of a 棋盘密云 crowd (QipanMerchantCrowdUser): by OPEN_ID, with the app id
    the open_id belongs to, or by SHA256_MOBILE, the SHA-256 hex of the mobile number."""

    id_type: str
    id: str
    app_id: str | None = None

    def __post_init__(self) -> None:
        if self.id_type not in CROWD_ID_TYPES:
            raise ValueError(f"crowd id type {self.id_type!r} is not one of {', '.join(CROWD_ID_TYPES)}")
        if (self.id_type == "OPEN_ID") != (self.app_id is not None):
            raise ValueError("an OPEN_ID crowd user names the app its open_id belongs to (and only it does)")

    def to_alipay(self) -> dict[str, str]:
        fields = {"encrypt_identity_type": self.id_type, "encrypt_identity_id": self.id}
        if self.app_id is not None:
            fields["alipay_app_id"] = self.app_id
        return fields


def _crowd_batch(users: Sequence[CrowdUser]) -> list[dict[str, str]]:
    if len(users) > CROWD_BATCH:
        raise ValueError(f"{len(users)} crowd users in one call; Alipay takes at most {CROWD_BATCH}")
    return [user.to_alipay() for user in users]


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

    def send_template_message(self, user_template_id: str, data: Mapping[str, str], *, page: str | None = None,
                              to_user_id: str | None = None, to_open_id: str | None = None) -> None:
        """Send a subscription message (订阅消息) of template `user_template_id` to a user
        who subscribed to it: `data` the keywords' values in order ({"keyword1": "..."},
        each at most 50 characters), sent as the JSON string Alipay takes
        ({"keyword1": {"value": "..."}}); `page` what it opens (a page path, optionally
        with a query). Refusals (AlipayError, 40004): USER_TEMPLATE_ILLEGAL,
        USER_TEMPLATE_LACK_KEYWORD, USER_KEYWORD_LENGTH_ERROR (docs/alipay-membership-facts.md 2.2)."""
        _one_user(to_user_id, to_open_id)
        model = AlipayOpenAppMiniTemplatemessageSendModel()
        model.user_template_id = user_template_id
        model.to_user_id = to_user_id
        model.to_open_id = to_open_id
        model.page = page
        model.data = json.dumps({key: {"value": value} for key, value in data.items()}, ensure_ascii=False,
                                separators=(",", ":"))
        LOG.info("alipay template message send: template %s", user_template_id)
        self._call("alipay.open.app.mini.templatemessage.send", AlipayOpenAppMiniTemplatemessageSendRequest(
            biz_model=model), AlipayOpenAppMiniTemplatemessageSendResponse())

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

    def trade_create(self, *, out_trade_no: str, total_amount: str, subject: str, notify_url: str,
                     buyer_id: str | None = None, buyer_open_id: str | None = None,
                     product_code: str = "JSAPI_PAY", op_app_id: str | None = None,
                     timeout_express: str = "15m") -> str:
        """Create the trade a mini-program pays with my.tradePay; its trade_no (what
        tradePay takes, not out_trade_no).

        total_amount: yuan with 2 decimals ("38.00"); the buyer (who must be the user
        opening the cashier) by user_id or, on the OpenID scheme, open_id. product_code
        JSAPI_PAY (小程序支付) sends op_app_id, the mini-program's app id (default: this
        client's); FACE_TO_FACE_PAYMENT (当面付) contracts send none. notify_url is a
        request parameter, not a business field (the SDK's request.notify_url): where
        Alipay posts the payment notification. seller_id is left out on purpose (a wrong
        one is ACQ.INVALID_RECEIVE_ACCOUNT). Facts: docs/alipay-payment-facts.md 1.
        A repeat with the same out_trade_no and parameters is safe: Alipay answers with
        the same trade while it is unpaid.
        """
        if (buyer_id is None) == (buyer_open_id is None):
            raise ValueError("name the buyer by exactly one of buyer_id= or buyer_open_id=")
        model = AlipayTradeCreateModel()
        model.out_trade_no = out_trade_no
        model.total_amount = total_amount
        model.subject = subject
        model.product_code = product_code
        if product_code == "JSAPI_PAY":
            model.op_app_id = op_app_id or self.app_id
        model.buyer_id = buyer_id
        model.buyer_open_id = buyer_open_id
        model.timeout_express = timeout_express
        request = AlipayTradeCreateRequest(biz_model=model)
        request.notify_url = notify_url
        LOG.info("alipay trade create: out_trade_no %s", out_trade_no)
        answer = self._call("alipay.trade.create", request, AlipayTradeCreateResponse())
        return str(answer.trade_no)

    def trade_query(self, out_trade_no: str) -> TradeState:
        """The trade's state now (ACQ.TRADE_NOT_EXIST: an AlipayError, for a trade Alipay
        does not know). What decides a payment whose notification never came."""
        model = AlipayTradeQueryModel()
        model.out_trade_no = out_trade_no
        answer = self._call("alipay.trade.query", AlipayTradeQueryRequest(biz_model=model),
                            AlipayTradeQueryResponse())
        return TradeState(trade_no=str(answer.trade_no), out_trade_no=str(answer.out_trade_no),
                          trade_status=str(answer.trade_status), total_amount=str(answer.total_amount))

    def trade_close(self, out_trade_no: str) -> None:
        """Close a trade still waiting for the buyer (WAIT_BUYER_PAY), so it can no longer
        be paid. AlipayError otherwise: ACQ.TRADE_STATUS_ERROR (paid or closed already),
        ACQ.TRADE_NOT_EXIST."""
        model = AlipayTradeCloseModel()
        model.out_trade_no = out_trade_no
        LOG.info("alipay trade close: out_trade_no %s", out_trade_no)
        self._call("alipay.trade.close", AlipayTradeCloseRequest(biz_model=model), AlipayTradeCloseResponse())

    def trade_refund(self, *, out_trade_no: str, refund_amount: str, out_request_no: str,
                     refund_reason: str | None = None) -> Refund:
        """Refund `refund_amount` (yuan) of a paid trade. Idempotent per out_request_no:
        Alipay refunds a request number once, so after AlipayUnavailable retry with the
        SAME out_request_no (a repeat answers fund_change "N")."""
        model = AlipayTradeRefundModel()
        model.out_trade_no = out_trade_no
        model.refund_amount = refund_amount
        model.out_request_no = out_request_no
        model.refund_reason = refund_reason
        LOG.info("alipay trade refund: out_trade_no %s, out_request_no %s", out_trade_no, out_request_no)
        answer = self._call("alipay.trade.refund", AlipayTradeRefundRequest(biz_model=model),
                            AlipayTradeRefundResponse())
        return Refund(trade_no=str(answer.trade_no), out_trade_no=str(answer.out_trade_no),
                      fund_change=str(answer.fund_change), refund_fee=str(answer.refund_fee))

    def merchant_order_sync(self, *, out_biz_no: str, trade_no: str, amount: str, items: Sequence[OrderItem],
                            ext_info: Mapping[str, str], order_create_time: str, order_modified_time: str,
                            order_pay_time: str | None = None, buyer_id: str | None = None,
                            buyer_open_id: str | None = None,
                            shop_info: Mapping[str, str] | None = None) -> OrderSync:
        """Synchronise a paid order to the buyer's Alipay order centre (小程序订单中心).

        out_biz_no names the order for good (every update reuses it); trade_no is its
        trade, paid in the mini-program, whose buyer the buyer must be; amount, yuan, is
        sent as pay_amount too (no discount: amount = pay_amount + discount_amount).
        ext_info carries merchant_biz_type, merchant_order_status (only forward),
        tiny_app_id and, once only, merchant_order_link_page; times are
        "yyyy-MM-dd HH:mm:ss", order_modified_time new on every update. Item unit prices go
        as JSON numbers, as Alipay's FAQ requires. Refusals (AlipayError): ORDER_ERROR_STATUS,
        MERCHANT_LINK_EXIST, TINY_APP_ID_NULL, NO_PERMISSOON (the product not signed),
        INVALID_PARAMETER. Facts: docs/alipay-payment-facts.md 5.
        """
        _one_user(buyer_id, buyer_open_id)
        model = AlipayMerchantOrderSyncModel()
        model.out_biz_no = out_biz_no
        model.buyer_id = buyer_id
        model.buyer_open_id = buyer_open_id
        model.trade_no = trade_no
        model.order_type = "TRADE_ORDER"
        model.amount = amount
        model.pay_amount = amount
        model.discount_amount = "0.00"
        model.order_create_time = order_create_time
        model.order_pay_time = order_pay_time
        model.order_modified_time = order_modified_time
        model.item_order_list = [{"item_name": item.name, "quantity": item.quantity,
                                  "unit_price": float(item.unit_price), "item_id": item.item_id} for item in items]
        model.ext_info = [{"ext_key": key, "ext_value": value} for key, value in ext_info.items()]
        if shop_info is not None:
            model.shop_info = dict(shop_info)
        LOG.info("alipay merchant order sync: out_biz_no %s, status %s", out_biz_no,
                 ext_info.get("merchant_order_status"))
        answer = self._call("alipay.merchant.order.sync", AlipayMerchantOrderSyncRequest(biz_model=model),
                            AlipayMerchantOrderSyncResponse())
        return OrderSync(order_id=str(answer.order_id), order_status=answer.order_status or None,
                         record_id=answer.record_id or None)

    # --- the member card (docs/alipay-membership-facts.md 1) ---------------------------

    def upload_image(self, name: str, content: bytes, image_type: str) -> str:
        """Upload an image for a card template (alipay.offline.material.image.upload, a
        multipart request: the file is image_content); its image_id. image_type: jpg, png, ..."""
        request = AlipayOfflineMaterialImageUploadRequest()
        request.image_name = name
        request.image_type = image_type
        request.image_content = FileItem(file_name=name, file_content=content)
        LOG.info("alipay image upload: %s (%d bytes)", name, len(content))
        answer = self._call("alipay.offline.material.image.upload", request, AlipayOfflineMaterialImageUploadResponse())
        return str(answer.image_id)

    def card_template_create(self, template: Mapping[str, Any]) -> str:
        """Create a member card template from its biz_content fields (request_id,
        card_type, write_off_type, template_style_info, column_info_list, field_rule_list,
        card_level_conf, ...: SDK AlipayMarketingCardTemplateCreateModel); its template_id."""
        model = AlipayMarketingCardTemplateCreateModel.from_alipay_dict(dict(template))
        answer = self._call("alipay.marketing.card.template.create",
                            AlipayMarketingCardTemplateCreateRequest(biz_model=model),
                            AlipayMarketingCardTemplateCreateResponse())
        return str(answer.template_id)

    def card_template_modify(self, template_id: str, template: Mapping[str, Any]) -> None:
        """Change a template's design (the same fields as create, with template_id)."""
        model = AlipayMarketingCardTemplateModifyModel.from_alipay_dict({**template, "template_id": template_id})
        self._call("alipay.marketing.card.template.modify", AlipayMarketingCardTemplateModifyRequest(biz_model=model),
                   AlipayMarketingCardTemplateModifyResponse())

    def card_form_template_set(self, template_id: str, required: Sequence[str], optional: Sequence[str] = ()) -> None:
        """The claim form's fields (OPEN_FORM_FIELD_*); Alipay says to set it once per template."""
        model = AlipayMarketingCardFormtemplateSetModel()
        model.template_id = template_id
        fields: dict[str, str] = {"required": json.dumps({"common_fields": list(required)})}
        if optional:
            fields["optional"] = json.dumps({"common_fields": list(optional)})
        model.fields = fields
        self._call("alipay.marketing.card.formtemplate.set", AlipayMarketingCardFormtemplateSetRequest(
            biz_model=model), AlipayMarketingCardFormtemplateSetResponse())

    def card_activate_url(self, template_id: str) -> str:
        """The claim link (apply_card_url) the mini-program opens; no callback, as a
        mini-program needs none. Alipay says to apply once per template."""
        model = AlipayMarketingCardActivateurlApplyModel()
        model.template_id = template_id
        answer = self._call("alipay.marketing.card.activateurl.apply", AlipayMarketingCardActivateurlApplyRequest(
            biz_model=model), AlipayMarketingCardActivateurlApplyResponse())
        return str(answer.apply_card_url)

    def card_form_query(self, template_id: str, request_id: str, auth_token: str) -> dict[str, str]:
        """What the user filled in the claim form (OPEN_FORM_FIELD_* -> value), with the
        user's access token (oauth.token of the claim's auth_code) as auth_token."""
        model = AlipayMarketingCardActivateformQueryModel()
        model.biz_type = "MEMBER_CARD"
        model.template_id = template_id
        model.request_id = request_id
        request = AlipayMarketingCardActivateformQueryRequest(biz_model=model)
        request.add_other_text_param("auth_token", auth_token)  # a common parameter (SDK P_AUTH_TOKEN)
        answer = self._call("alipay.marketing.card.activateform.query", request,
                            AlipayMarketingCardActivateformQueryResponse())
        infos = json.loads(answer.infos) if answer.infos else []
        return {str(k): str(v) for item in infos if isinstance(item, dict) for k, v in item.items()}

    def card_open(self, *, auth_token: str, out_serial_no: str, template_id: str, user_id: str,
                  card: Mapping[str, str]) -> str:
        """Open the user's member card (card_ext_info: external_card_no, open_date,
        valid_date, level, point); its biz_card_no, which later updates name."""
        model = AlipayMarketingCardOpenModel()
        model.out_serial_no = out_serial_no
        model.card_template_id = template_id
        model.card_user_info = {"user_uni_id": user_id, "user_uni_id_type": "UID"}
        model.card_ext_info = dict(card)
        request = AlipayMarketingCardOpenRequest(biz_model=model)
        request.add_other_text_param("auth_token", auth_token)
        LOG.info("alipay card open: out_serial_no %s", out_serial_no)
        answer = self._call("alipay.marketing.card.open", request, AlipayMarketingCardOpenResponse())
        return str(answer.card_info.biz_card_no)

    def card_update(self, biz_card_no: str, occur_time: str, card: Mapping[str, str]) -> None:
        """Change what the user's card shows (card_info: point, level, with the open_date
        and valid_date it was opened with)."""
        model = AlipayMarketingCardUpdateModel()
        model.target_card_no = biz_card_no
        model.target_card_no_type = "BIZ_CARD"
        model.occur_time = occur_time
        model.card_info = dict(card)
        self._call("alipay.marketing.card.update", AlipayMarketingCardUpdateRequest(biz_model=model),
                   AlipayMarketingCardUpdateResponse())
    def qipan_crowd_create(self, *, name: str, external_code: str, users: Sequence[CrowdUser],
                           description: str | None = None) -> str:
        """alipay.merchant.qipan.crowd.create: a 棋盘密云 crowd of `users` (at most 1000;
        add more with qipan_crowd_add); its crowd_code. `name` at most 15 characters;
        `external_code` the merchant's own, unique per merchant. Facts:
        docs/alipay-membership-facts.md 3."""
        if not name or len(name) > CROWD_NAME_MAX:
            raise ValueError(f"crowd name {name!r}: 1 to {CROWD_NAME_MAX} characters")
        model = AlipayMerchantQipanCrowdCreateModel()
        model.crowd_name = name
        model.external_crowd_code = external_code
        model.crowd_desc = description
        model.user_list = _crowd_batch(users)
        LOG.info("alipay qipan crowd create: %s, %d users", external_code, len(users))
        answer = self._call("alipay.merchant.qipan.crowd.create", AlipayMerchantQipanCrowdCreateRequest(
            biz_model=model), AlipayMerchantQipanCrowdCreateResponse())
        return str(answer.crowd_code)

    def qipan_crowd_add(self, crowd_code: str, users: Sequence[CrowdUser]) -> None:
        """alipay.merchant.qipan.crowduser.add: at most 1000 users into the crowd."""
        model = AlipayMerchantQipanCrowduserAddModel()
        model.crowd_code = crowd_code
        model.user_list = _crowd_batch(users)
        LOG.info("alipay qipan crowd %s: add %d users", crowd_code, len(users))
        self._call("alipay.merchant.qipan.crowduser.add", AlipayMerchantQipanCrowduserAddRequest(biz_model=model),
                   AlipayMerchantQipanCrowduserAddResponse())

    def qipan_crowd_delete(self, crowd_code: str, users: Sequence[CrowdUser]) -> None:
        """alipay.merchant.qipan.crowduser.delete: at most 1000 users out of the crowd."""
        model = AlipayMerchantQipanCrowduserDeleteModel()
        model.crowd_code = crowd_code
        model.user_list = _crowd_batch(users)
        LOG.info("alipay qipan crowd %s: delete %d users", crowd_code, len(users))
        self._call("alipay.merchant.qipan.crowduser.delete", AlipayMerchantQipanCrowduserDeleteRequest(
            biz_model=model), AlipayMerchantQipanCrowduserDeleteResponse())

    def verify_notification(self, params: Mapping[str, str]) -> bool:
        """Whether an asynchronous notification (its form fields, URL-decoded) is from Alipay
        and for this app: sign_type RSA2, an RSA2 signature by the Alipay key over the sorted
        fields less sign and sign_type, and app_id (the receiver) this app's."""
        signature = params.get("sign")
        if not signature or params.get("sign_type") != "RSA2" or params.get("app_id") != self.app_id:
            return False
        return rsa2.verify(self._alipay_key, rsa2.notification_sign_content(params), signature)
