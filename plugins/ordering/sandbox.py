"""The sandbox gateway's part of ordering: alipay.trade.create, alipay.trade.query,
alipay.trade.close, alipay.trade.refund and alipay.merchant.order.sync (its order
centre: `order_center`) as Alipay answers them (fields: the SDK's
response classes; rules and sub_codes: docs/alipay-payment-facts.md), and
`POST /sandbox/pay`, which stands in for the buyer paying in Alipay's cashier.

A trade created with timeout_express (`15m`, `2h`, `1d`; `1c`: at the next midnight) is
closed once that time has passed on the gateway's clock, unpaid, as Alipay closes it:
the next call that looks at it finds it TRADE_CLOSED.

The trades live in `SandboxTrades`, the plugin's state in the gateway's SandboxState.

`POST /sandbox/pay` with JSON `{"appId", "outTradeNo"}` (optionally `"notify": false`:
pay without notifying, a lost notification; `"totalAmount": "..."`: notify with another
amount, as a tampered trade would) marks the trade TRADE_SUCCESS and posts a signed
notification (form-encoded, RSA2 by the sandbox's Alipay key, as
builder.serve.sandbox.signed_notification makes it) to the trade's notify_url. Paying a
paid trade posts its notification again, as Alipay's retries do. The answer:
`{"tradeNo", "tradeStatus", "notifyStatus", "notifyAnswer"}` (the notify_url's HTTP
status and body; null when not notified or unreachable); 404 for an unknown trade, 409
for a trade that is closed.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from builder.serve.plugin_api import SandboxRefusal, SandboxState, biz_content, invalid_parameter, succeeded
from builder.serve.sandbox import TIMESTAMP_FORMAT, signed_notification

PLUGIN = "ordering"
OUT_TRADE_NO = re.compile(r"[A-Za-z0-9_]{1,64}")  # letters, digits and _ (facts 1)
AMOUNT = re.compile(r"[0-9]{1,9}(\.[0-9]{1,2})?")
MIN_AMOUNT, MAX_AMOUNT = Decimal("0.01"), Decimal("100000000")  # total_amount's range (facts 1)
WAIT_BUYER_PAY, TRADE_SUCCESS, TRADE_CLOSED = "WAIT_BUYER_PAY", "TRADE_SUCCESS", "TRADE_CLOSED"
NOTIFY_TIMEOUT = 10.0
# timeout_express: 1m to 15d, whole numbers (facts 1); 1c closes at the next midnight.
TIMEOUT_EXPRESS = re.compile(r"([1-9][0-9]{0,4})([mhd])|1c")
TIMEOUT_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
MAX_TIMEOUT = timedelta(days=15)


@dataclass
class Trade:
    app_id: str
    trade_no: str
    out_trade_no: str
    total_amount: Decimal
    subject: str
    buyer_id: str
    notify_url: str
    request: str  # the create call's business parameters: a repeat must send the same
    status: str = WAIT_BUYER_PAY
    created: str = ""
    paid: str = ""
    expires: datetime | None = None  # timeout_express, on the gateway's clock
    refunds: dict[str, Decimal] = field(default_factory=dict)  # out_request_no -> amount

    @property
    def refunded(self) -> Decimal:
        return sum(self.refunds.values(), Decimal(0))


class SandboxTrades:
    """The sandbox's trades by (app_id, out_trade_no); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._trades: dict[tuple[str, str], Trade] = {}

    def get(self, app_id: str, out_trade_no: str, now: datetime | None = None) -> Trade | None:
        """A copy of the trade (closed first if its timeout passed by `now`)."""
        with self._lock:
            trade = self._current(app_id, out_trade_no, now)
            return None if trade is None else replace(trade, refunds=dict(trade.refunds))

    def out_trade_no(self, app_id: str, trade_no: str) -> str | None:
        """The out_trade_no of the app's trade `trade_no` (what my.tradePay is given)."""
        with self._lock:
            return next((t.out_trade_no for t in self._trades.values()
                         if t.app_id == app_id and t.trade_no == trade_no), None)

    def _current(self, app_id: str, out_trade_no: str, now: datetime | None) -> Trade | None:
        """The stored trade, closed if its timeout passed by `now`; under the lock."""
        trade = self._trades.get((app_id, out_trade_no))
        if (trade is not None and now is not None and trade.status == WAIT_BUYER_PAY and trade.expires is not None
                and now >= trade.expires):
            trade.status = TRADE_CLOSED
        return trade

    def create(self, trade: Trade, now: datetime) -> Trade:
        """The trade stored; a repeat of its out_trade_no answers the first, if unpaid and
        asked the same (Alipay's refusals otherwise)."""
        with self._lock:
            earlier = self._current(trade.app_id, trade.out_trade_no, now)
            if earlier is None:
                self._trades[(trade.app_id, trade.out_trade_no)] = trade
                return trade
            if earlier.status == TRADE_SUCCESS:
                raise SandboxRefusal("40004", "ACQ.TRADE_HAS_SUCCESS", "交易已被支付")
            if earlier.status == TRADE_CLOSED:
                raise SandboxRefusal("40004", "ACQ.TRADE_HAS_CLOSE", "交易已经关闭")
            if earlier.request != trade.request:
                # UNVERIFIED sub_code (facts 1: secondary source only).
                raise SandboxRefusal("40004", "ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改")
            return earlier

    def pay(self, app_id: str, out_trade_no: str, now: datetime) -> Trade | None:
        """Mark the trade paid (a paid or closed one stays as it is); None for an unknown trade."""
        with self._lock:
            trade = self._current(app_id, out_trade_no, now)
            if trade is None:
                return None
            if trade.status == WAIT_BUYER_PAY:
                trade.status, trade.paid = TRADE_SUCCESS, now.strftime(TIMESTAMP_FORMAT)
            return replace(trade, refunds=dict(trade.refunds))

    def close(self, app_id: str, out_trade_no: str, now: datetime) -> Trade:
        """Close a trade waiting for the buyer (alipay.trade.close's rule); Alipay's
        refusals otherwise."""
        with self._lock:
            trade = self._current(app_id, out_trade_no, now)
            if trade is None:
                raise SandboxRefusal("40004", "ACQ.TRADE_NOT_EXIST", "交易不存在")
            if trade.status != WAIT_BUYER_PAY:
                raise SandboxRefusal("40004", "ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
            trade.status = TRADE_CLOSED
            return replace(trade, refunds=dict(trade.refunds))

    def refund(self, app_id: str, out_trade_no: str, out_request_no: str, amount: Decimal) -> tuple[Trade, bool]:
        """(the trade, whether money moved): a repeated out_request_no moves none."""
        with self._lock:
            trade = self._current(app_id, out_trade_no, None)
            if trade is None:
                raise SandboxRefusal("40004", "ACQ.TRADE_NOT_EXIST", "交易不存在")
            if out_request_no in trade.refunds:
                return replace(trade, refunds=dict(trade.refunds)), False
            if trade.status != TRADE_SUCCESS:
                raise SandboxRefusal("40004", "ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
            if amount > trade.total_amount - trade.refunded:
                raise SandboxRefusal("40004", "ACQ.REASON_TRADE_REFUND_FEE_ERR", "退款金额无效")
            trade.refunds[out_request_no] = amount
            if trade.refunded == trade.total_amount:
                trade.status = TRADE_CLOSED  # refunded in full (facts 4)
            return replace(trade, refunds=dict(trade.refunds)), True


def trades(state: SandboxState) -> SandboxTrades:
    return state.plugin_state(PLUGIN, SandboxTrades)


def _amount(biz: Mapping[str, object], name: str) -> Decimal:
    value = biz.get(name)
    if not isinstance(value, str) or not AMOUNT.fullmatch(value):
        raise invalid_parameter(f"{name} 格式错误")
    amount = Decimal(value)
    if not MIN_AMOUNT <= amount <= MAX_AMOUNT:
        raise invalid_parameter(f"{name} 超出范围")
    return amount


def _acq_invalid(message: str) -> SandboxRefusal:
    # ACQ.INVALID_PARAMETER, as trade.create answers a missing buyer (facts 1, secondary).
    return SandboxRefusal("40004", "ACQ.INVALID_PARAMETER", message)


def _expires(biz: Mapping[str, object], now: datetime) -> datetime | None:
    """When the trade closes unpaid, by timeout_express (none: never, in the sandbox)."""
    text = biz.get("timeout_express")
    if text is None:
        return None
    match = TIMEOUT_EXPRESS.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise _acq_invalid("参数无效：timeout_express")
    if text == "1c":
        return datetime.combine(now.date() + timedelta(days=1), datetime.min.time())
    length = int(match.group(1)) * TIMEOUT_UNITS[match.group(2)]
    if length > MAX_TIMEOUT:
        raise _acq_invalid("参数无效：timeout_express")
    return now + length


def _trade_fields(trade: Trade) -> dict[str, str]:
    return {"trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no}


def trade_create(state: SandboxState, app_id: str, params: Mapping[str, str]) -> dict[str, str]:
    """alipay.trade.create: out_trade_no, total_amount, subject required; JSAPI_PAY needs
    op_app_id (this app's); the buyer by buyer_id or buyer_open_id (a user who logged in to
    this app) is required in the mini-program scenario. Answers trade_no and out_trade_no
    (SDK AlipayTradeCreateResponse)."""
    biz = biz_content(params)
    out_trade_no = biz.get("out_trade_no")
    if not isinstance(out_trade_no, str) or not OUT_TRADE_NO.fullmatch(out_trade_no):
        raise _acq_invalid("参数无效：out_trade_no")
    amount = _amount(biz, "total_amount")
    subject = biz.get("subject")
    if not isinstance(subject, str) or not subject or len(subject) > 256:
        raise _acq_invalid("参数无效：subject")
    product_code = biz.get("product_code", "FACE_TO_FACE_PAYMENT")
    if product_code == "JSAPI_PAY" and biz.get("op_app_id") != app_id:
        raise _acq_invalid("参数无效：op_app_id")  # UNVERIFIED wording: the sandbox's
    if product_code not in ("JSAPI_PAY", "FACE_TO_FACE_PAYMENT"):
        raise SandboxRefusal("40004", "ACQ.ACCESS_FORBIDDEN", "产品未签约")  # as an unsigned product (facts 1)
    buyer_id = biz.get("buyer_id")
    open_id = biz.get("buyer_open_id")
    if isinstance(open_id, str) and open_id:
        buyer_id = state.user_for_open_id(app_id, open_id)
    if not isinstance(buyer_id, str) or not buyer_id:
        raise _acq_invalid("参数无效：买家不能为空")
    notify_url = params.get("notify_url", "")
    request = json.dumps(biz, sort_keys=True) + notify_url
    trade_no = "2026" + hashlib.sha256(f"trade:{app_id}:{out_trade_no}".encode()).hexdigest()[:24]
    now = state.clock()
    trade = trades(state).create(Trade(app_id=app_id, trade_no=trade_no, out_trade_no=out_trade_no,
                                       total_amount=amount, subject=subject, buyer_id=buyer_id,
                                       notify_url=notify_url, request=request,
                                       created=now.strftime(TIMESTAMP_FORMAT), expires=_expires(biz, now)), now)
    return succeeded(**_trade_fields(trade))


def _trade_of(state: SandboxState, app_id: str, biz: Mapping[str, object]) -> Trade:
    out_trade_no = biz.get("out_trade_no")
    trade = trades(state).get(app_id, out_trade_no, state.clock()) if isinstance(out_trade_no, str) else None
    if trade is None:
        raise SandboxRefusal("40004", "ACQ.TRADE_NOT_EXIST", "交易不存在")
    return trade


def trade_query(state: SandboxState, app_id: str, params: Mapping[str, str]) -> dict[str, str]:
    """alipay.trade.query by out_trade_no (SDK AlipayTradeQueryResponse's key fields)."""
    trade = _trade_of(state, app_id, biz_content(params))
    answer = {**_trade_fields(trade), "trade_status": trade.status, "total_amount": f"{trade.total_amount:.2f}",
              "buyer_user_id": trade.buyer_id}
    if trade.paid:
        answer["send_pay_date"] = trade.paid
    return succeeded(**answer)


def trade_close(state: SandboxState, app_id: str, params: Mapping[str, str]) -> dict[str, str]:
    """alipay.trade.close by out_trade_no: only a trade waiting for the buyer closes;
    ACQ.TRADE_STATUS_ERROR for a paid or closed one, ACQ.TRADE_NOT_EXIST for none
    (facts 4). Answers trade_no and out_trade_no (SDK AlipayTradeCloseResponse)."""
    trade = _trade_of(state, app_id, biz_content(params))
    return succeeded(**_trade_fields(trades(state).close(app_id, trade.out_trade_no, state.clock())))


def trade_refund(state: SandboxState, app_id: str, params: Mapping[str, str]) -> dict[str, str]:
    """alipay.trade.refund: once per out_request_no (a repeat: fund_change N); refund_fee is
    the trade's cumulative refund (SDK AlipayTradeRefundResponse)."""
    biz = biz_content(params)
    trade = _trade_of(state, app_id, biz)
    amount = _amount(biz, "refund_amount")
    out_request_no = biz.get("out_request_no")
    if not isinstance(out_request_no, str) or not out_request_no:
        # Alipay allows leaving it out for a full refund (it then uses out_trade_no);
        # mpforge always sends one, so the sandbox requires it.
        raise _acq_invalid("参数无效：out_request_no")
    trade, moved = trades(state).refund(app_id, trade.out_trade_no, out_request_no, amount)
    return succeeded(**_trade_fields(trade), fund_change="Y" if moved else "N",
                     refund_fee=f"{trade.refunded:.2f}", buyer_user_id=trade.buyer_id,
                     gmt_refund_pay=state.clock().strftime(TIMESTAMP_FORMAT))


def notification(trade: Trade, total_amount: str | None = None) -> dict[str, str]:
    """The fields of the trade's payment notification (facts 3), before signing."""
    notify_id = hashlib.sha256(f"notify:{trade.trade_no}:{trade.status}".encode()).hexdigest()[:32]
    return {"notify_time": trade.paid, "notify_type": "trade_status_sync", "notify_id": notify_id,
            "app_id": trade.app_id, "auth_app_id": trade.app_id, "charset": "utf-8", "version": "1.0",
            "trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no, "buyer_id": trade.buyer_id,
            "trade_status": trade.status, "total_amount": total_amount or f"{trade.total_amount:.2f}",
            "receipt_amount": f"{trade.total_amount:.2f}", "buyer_pay_amount": f"{trade.total_amount:.2f}",
            "subject": trade.subject, "gmt_create": trade.created, "gmt_payment": trade.paid}


async def pay(request: Request) -> Response:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        body = None
    state: SandboxState = request.app.state.sandbox
    if isinstance(body, dict) and isinstance(body.get("tradeNo"), str) and isinstance(body.get("appId"), str):
        # my.tradePay's view: the page has only the trade_no
        body.setdefault("outTradeNo", trades(state).out_trade_no(body["appId"], body["tradeNo"]) or "")
    if (not isinstance(body, dict) or not isinstance(body.get("appId"), str)
            or not isinstance(body.get("outTradeNo"), str) or not isinstance(body.get("notify", True), bool)
            or not isinstance(body.get("totalAmount", ""), str)):
        return _error(400, 'send {"appId": "<app id>", "outTradeNo": "<out_trade_no>" (or "tradeNo": "<trade_no>"), '
                           '"notify": true|false, "totalAmount": "<yuan, to notify another amount>"}')
    trade = trades(state).pay(body["appId"], body["outTradeNo"], state.clock())
    if trade is None:
        return _error(404, "the sandbox has no such trade (alipay.trade.create first)")
    if trade.status != TRADE_SUCCESS:
        return _error(409, f"the trade is {trade.status}; it cannot be paid")
    answer: dict[str, object] = {"tradeNo": trade.trade_no, "tradeStatus": trade.status, "notifyStatus": None,
                                 "notifyAnswer": None}
    if body.get("notify", True) and trade.notify_url:
        try:
            amount = body.get("totalAmount") or None
            if amount is not None:
                Decimal(amount)
        except InvalidOperation:
            return _error(400, "totalAmount is not an amount in yuan")
        fields = signed_notification(request.app.state.alipay_private_key_pem, notification(trade, amount))
        try:
            async with httpx.AsyncClient(timeout=NOTIFY_TIMEOUT) as client:
                sent = await client.post(trade.notify_url, data=fields)
            answer.update(notifyStatus=sent.status_code, notifyAnswer=sent.text)
        except httpx.HTTPError:
            pass  # unreachable: as Alipay, the sandbox does not retry; trade.query tells
    return JSONResponse(answer)


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": {"message": message}}, status_code=status)


@dataclass
class CenterOrder:
    """An order as the sandbox's order centre holds it: its template, the statuses
    accepted (in order), its link page, and every accepted call's biz_content."""

    trade_no: str
    biz_type: str
    statuses: list[str] = field(default_factory=list)
    link_page: str | None = None
    calls: list[dict[str, object]] = field(default_factory=list)


class SandboxOrderCenter:
    """The sandbox's order centre: orders by (app_id, out_biz_no); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._orders: dict[tuple[str, str], CenterOrder] = {}

    def get(self, app_id: str, out_biz_no: str) -> CenterOrder | None:
        with self._lock:
            found = self._orders.get((app_id, out_biz_no))
            return None if found is None else replace(found, statuses=list(found.statuses), calls=list(found.calls))

    def sync(self, app_id: str, out_biz_no: str, biz: dict[str, object], ext: Mapping[str, str]) -> int:
        """Accept one sync by Alipay's rules (ORDER_ERROR_STATUS, MERCHANT_LINK_EXIST,
        INVALID_PARAMETER for a changed template); how many calls the order has had."""
        status, link = ext["merchant_order_status"], ext.get("merchant_order_link_page")
        with self._lock:
            order = self._orders.get((app_id, out_biz_no)) or CenterOrder(trade_no=str(biz.get("trade_no", "")),
                                                                          biz_type=ext["merchant_biz_type"])
            if order.biz_type != ext["merchant_biz_type"]:
                raise invalid_parameter("merchant_biz_type 不可修改")
            if status in order.statuses or (
                    status in STATUS_ORDER and any(s in STATUS_ORDER and STATUS_ORDER.index(s) > STATUS_ORDER.index(
                        status) for s in order.statuses)):
                raise SandboxRefusal("40004", "ORDER_ERROR_STATUS", "订单状态错误")
            if link is not None and order.link_page is not None and link != order.link_page:
                raise SandboxRefusal("40004", "MERCHANT_LINK_EXIST", "商户链接已存在")
            order.statuses.append(status)
            order.link_page = order.link_page or link
            order.calls.append(biz)
            self._orders[(app_id, out_biz_no)] = order
            return len(order.calls)


# The restaurant template's statuses in the order Alipay takes them (names as real
# integrations send them, not from a primary source: facts 5); others only never twice.
STATUS_ORDER = ("MERCHANT_PAID", "MERCHANT_CONFIRMED", "MERCHENT_SERVICING", "MERCHANT_FINISHED")


def order_center(state: SandboxState) -> SandboxOrderCenter:
    return state.plugin_state(f"{PLUGIN}.order_center", SandboxOrderCenter)


def _ext_info(biz: Mapping[str, object]) -> dict[str, str]:
    entries = biz.get("ext_info")
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("ext_key"), str) and isinstance(e.get("ext_value"), str)
            for e in entries):
        raise invalid_parameter("ext_info 格式错误")
    return {e["ext_key"]: e["ext_value"] for e in entries}


def merchant_order_sync(state: SandboxState, app_id: str, params: Mapping[str, str]) -> dict[str, str]:
    """alipay.merchant.order.sync (facts 5): out_biz_no required; trade_no a trade of this
    app, paid, whose buyer (buyer_id, or buyer_open_id's user) and total_amount
    (pay_amount; amount = pay_amount + discount_amount) the order repeats; each item named,
    its unit_price a number (商品信息不完整 otherwise); ext_info with merchant_biz_type and
    merchant_order_status (INVALID_PARAMETER without), tiny_app_id (TINY_APP_ID_NULL
    without; this app's), statuses only forward (ORDER_ERROR_STATUS), the link page never
    changed (MERCHANT_LINK_EXIST). Answers order_id, order_status and record_id (SDK
    AlipayMerchantOrderSyncResponse; order_status: the status synced, a sandbox choice)."""
    biz = biz_content(params)
    out_biz_no = biz.get("out_biz_no")
    if not isinstance(out_biz_no, str) or not out_biz_no:
        raise invalid_parameter("out_biz_no 不能为空")
    ext = _ext_info(biz)
    if not ext.get("merchant_biz_type") or not ext.get("merchant_order_status"):
        raise invalid_parameter("merchant_biz_type 或 merchant_order_status 没有传入")
    if ext.get("tiny_app_id") != app_id:
        raise SandboxRefusal("40004", "TINY_APP_ID_NULL", "交易没有关联小程序id")
    trade_no = biz.get("trade_no")
    out_trade_no = trades(state).out_trade_no(app_id, trade_no) if isinstance(trade_no, str) else None
    trade = trades(state).get(app_id, out_trade_no) if out_trade_no is not None else None
    if trade is None or not trade.paid:
        raise invalid_parameter("trade_no 不存在或未支付")
    open_id = biz.get("buyer_open_id")
    buyer = state.user_for_open_id(app_id, open_id) if isinstance(open_id, str) else biz.get("buyer_id")
    if buyer != trade.buyer_id:
        raise invalid_parameter("buyer_id 与交易买家不一致")
    amount, pay_amount = _amount(biz, "amount"), _amount(biz, "pay_amount")
    discount_text = biz.get("discount_amount", "0")
    if not isinstance(discount_text, str) or not AMOUNT.fullmatch(discount_text):
        raise invalid_parameter("discount_amount 格式错误")
    discount = Decimal(discount_text)
    if pay_amount != trade.total_amount or amount != pay_amount + discount:
        raise invalid_parameter("金额不一致：amount = pay_amount + discount_amount，pay_amount 为交易金额")
    items = biz.get("item_order_list")
    if not isinstance(items, list) or not items or not all(
            isinstance(i, dict) and isinstance(i.get("item_name"), str) and i["item_name"]
            and isinstance(i.get("unit_price"), (int, float)) for i in items):
        raise invalid_parameter("商品信息不完整")
    calls = order_center(state).sync(app_id, out_biz_no, biz, ext)
    order_id = "2026" + hashlib.sha256(f"centre:{app_id}:{out_biz_no}".encode()).hexdigest()[:24]
    return succeeded(order_id=order_id, order_status=ext["merchant_order_status"], record_id=f"{order_id}{calls:04d}")


SANDBOX_METHODS = {"alipay.trade.create": trade_create, "alipay.trade.query": trade_query,
                   "alipay.trade.close": trade_close, "alipay.trade.refund": trade_refund,
                   "alipay.merchant.order.sync": merchant_order_sync}
SANDBOX_ROUTES = [Route("/sandbox/pay", pay, methods=["POST"])]
