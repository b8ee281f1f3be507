"""The `ordering:` spec section: how customers order from the catalogue (点单): the modes
offered, each store's opening hours by weekday (China time), the minimum order, the
packaging fee, the order number's prefix and the Alipay product the trade is paid with.

Amounts are yuan here, as the merchant writes them; the back end prices in integer fen
(pricing.py).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, WithJsonSchema

from builder.plugin_api import PageOptions, StoreId, StrictModel

Yuan = Annotated[Decimal, Field(ge=0, le=100_000, decimal_places=2, title="amount in yuan"),
                 WithJsonSchema({"type": "number", "minimum": 0, "maximum": 100_000})]
Mode = Literal["dine_in", "takeaway", "delivery"]
BasicMode = Literal["dine_in", "takeaway"]  # `modes`; delivery is offered by `delivery`, with its fee
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = datetime.weekday()
SPAN = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])")


def _span(text: str) -> str:
    match = SPAN.fullmatch(text)
    if match is None:
        raise ValueError(f"opening hours {text!r} are not HH:MM-HH:MM (24-hour clock, e.g. 09:00-21:30)")
    start, end = minutes(text)
    if end > 24 * 60 or end <= start:
        raise ValueError(f"opening hours {text!r} end before they start (use two spans to pass midnight, "
                         "e.g. 18:00-24:00 today and 00:00-02:00 the next day)")
    return text


def minutes(span: str) -> tuple[int, int]:
    """A valid span's start and end in minutes after midnight."""
    start, _, end = span.partition("-")
    (sh, sm), (eh, em) = (map(int, start.split(":")), map(int, end.split(":")))
    return sh * 60 + sm, eh * 60 + em


Span = Annotated[str, AfterValidator(_span), Field(description="HH:MM-HH:MM, China time (24:00 ends at midnight)")]
Spans = list[Span]


class StoreHours(StrictModel):
    """When one store takes orders; a weekday left out: closed that day."""

    store: StoreId
    mon: Spans = Field(default_factory=list)
    tue: Spans = Field(default_factory=list)
    wed: Spans = Field(default_factory=list)
    thu: Spans = Field(default_factory=list)
    fri: Spans = Field(default_factory=list)
    sat: Spans = Field(default_factory=list)
    sun: Spans = Field(default_factory=list)

    def spans(self, weekday: int) -> list[str]:
        """The spans of `weekday` (0 = Monday)."""
        spans: list[str] = getattr(self, WEEKDAYS[weekday])
        return spans


def _both_modes() -> list[BasicMode]:
    return ["dine_in", "takeaway"]


class Delivery(StrictModel):
    fee: Yuan = Field(description="added to every delivery order")


class OrderingPages(StrictModel):
    """The pages the plugin adds, by id and title; `orders: null` leaves "my orders" out.

    The menu leads to the confirm page, which leads to the order's page."""

    menu: PageOptions = PageOptions(id="menu", title="点单")
    confirm: PageOptions = PageOptions(id="order-confirm", title="确认订单")
    order: PageOptions = PageOptions(id="order", title="订单详情")
    orders: PageOptions | None = PageOptions(id="orders", title="我的订单")


OrderCenterStatus = Annotated[str, Field(pattern=r"^[A-Z][A-Z_]{0,63}$")]


class OrderCenterStatuses(StrictModel):
    """The template's merchant_order_status for each order status; null: not synced.

    Alipay takes them only forward (已付款 > 已确认 > 服务中 > 已完成, steps may be skipped)."""

    paid: OrderCenterStatus | None = Field("MERCHANT_PAID", description="已付款")
    accepted: OrderCenterStatus | None = Field("MERCHANT_CONFIRMED", description="已确认")
    ready: OrderCenterStatus | None = Field(None, description="ready to pick up (the template's 服务中, if any)")
    completed: OrderCenterStatus | None = Field("MERCHANT_FINISHED", description="已完成")
    refunded: OrderCenterStatus | None = Field(None, description="refunded (the template's status, if it has one)")


class OrderCenter(StrictModel):
    """Paid orders synchronised to the buyer's Alipay order centre (alipay.merchant.order.sync).

    Needs the 小程序订单中心 product signed on the Alipay account and an industry order
    template; the status names are the template's."""

    biz_type: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")] = Field(
        description="the merchant_biz_type of the signed industry template, e.g. qr_food_order (扫码点餐)")
    statuses: OrderCenterStatuses = Field(
        default_factory=OrderCenterStatuses,
        description="the template's merchant_order_status for each order status (defaults: the restaurant "
                    "template's names as integrations use them; check them against your template)")


class OrderingSection(StrictModel):
    """Ordering from the catalogue, paid with Alipay (my.tradePay)."""

    modes: list[BasicMode] = Field(
        default_factory=_both_modes, min_length=1,
        description="dine_in: at a table (the table sticker names it); takeaway: picked up at the counter")
    delivery: Delivery | None = Field(None, description="delivery is offered only when given, with its fee")
    hours: list[StoreHours] = Field(default_factory=list, description="each store's ordering hours by weekday; "
                                                                      "a store not listed takes orders any time")
    minimum: Yuan = Field(Decimal(0), description="the least the products of an order may cost")
    packaging_fee: Yuan = Field(Decimal(0), description="added to each takeaway and delivery order")
    order_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,8}$")] = Field(
        "MP", description="letters and digits starting every order number (Alipay's out_trade_no)")
    product_code: Literal["JSAPI_PAY", "FACE_TO_FACE_PAYMENT"] = Field(
        "JSAPI_PAY", description="the Alipay product the trades are paid with: JSAPI_PAY (小程序支付, with the "
                                 "mini-program's app id as op_app_id) or FACE_TO_FACE_PAYMENT (当面付 contracts)")
    pay_within_minutes: int = Field(
        15, ge=1, le=120, description="an order not paid within this many minutes is closed and its stock given "
                                      "back (Alipay closes the trade too: timeout_express)")
    pages: OrderingPages = Field(default_factory=OrderingPages,
                                 description="the menu, confirm, order and my-orders pages the plugin adds")
    order_center: OrderCenter | None = Field(
        None, description="synchronise paid orders to the buyer's Alipay order centre (alipay.merchant.order.sync); "
                          "needs the 小程序订单中心 product and an industry order template (biz_type), whose status "
                          "names these are; off when omitted")

    def offered(self) -> list[Mode]:
        modes: list[Mode] = list(self.modes)
        return [*modes, "delivery"] if self.delivery is not None else modes

    def store_hours(self, store: str) -> StoreHours | None:
        return next((h for h in self.hours if h.store == store), None)
