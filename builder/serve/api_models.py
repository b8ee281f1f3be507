"""The JSON the back end's routes take and give, as pydantic models (camelCase on the
wire, as the mini-program's JavaScript writes it). The OpenAPI document is built from
their JSON schemas, so it cannot drift from what is checked.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from builder.spec_models import ID_PATTERN

# Event times are the device's clock in milliseconds since 1970 (JavaScript's Date.now());
# a device's clock can be wrong, so the server also keeps when it received them.
EARLIEST_EVENT_MS = 1_577_836_800_000  # 2020-01-01
LATEST_EVENT_MS = 4_102_444_800_000  # 2100-01-01
MAX_EVENTS = 50

class Request(BaseModel):
    """A request body: camelCase names only, nothing unknown."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, validate_by_name=False,
                              validate_by_alias=True, frozen=True)


class Reply(BaseModel):
    """A response body: built in Python by field name, written in camelCase."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, serialize_by_alias=True,
                              frozen=True)


# --- session -----------------------------------------------------------------------------

class SessionRequest(Request):
    auth_code: str = Field(min_length=1, max_length=256, description="from my.getAuthCode (scope auth_base)")


class SessionReply(Reply):
    token: str = Field(description="send as 'Authorization: Bearer <token>'")
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="seconds the token stays valid")


# --- claims ------------------------------------------------------------------------------

class ClaimRequest(Request):
    ch_info: str | None = Field(None, min_length=1, max_length=128,
                                description="the chInfo Alipay passed the mini-program at launch, if any")


ClaimResult = Literal["CLAIMED", "RESERVED", "PENDING", "SOLD_OUT", "LIMIT_REACHED", "NOT_ELIGIBLE", "REFUSED"]


class ClaimReply(Reply):
    """A claim's outcome. A replayed Idempotency-Key gets the same status and body, except
    PENDING, which is retried."""

    result: ClaimResult = Field(description=(
        "CLAIMED (201): the voucher is issued. RESERVED (201): claim it with Alipay's coupon plugin, passing "
        "activityId and outBizNo. PENDING (503): Alipay did not answer; retry with the same Idempotency-Key. "
        "SOLD_OUT, LIMIT_REACHED (409): nothing reserved. NOT_ELIGIBLE (409): a new_customers coupon, and the user "
        "already holds or has reserved a voucher of another coupon of this mini-program; nothing reserved. "
        "REFUSED (409): Alipay refused the voucher "
        "(alipaySubCode says why); the stock was given back"))
    claim_id: str
    coupon_id: str
    voucher_code: str | None = None
    activity_id: str | None = None
    out_biz_no: str | None = None
    alipay_sub_code: str | None = None
    message: str


# --- the user's coupons ------------------------------------------------------------------

class MyClaim(Reply):
    claim_id: str
    coupon_id: str
    status: Literal["issued", "reserved"] = Field(description=(
        "issued: the voucher is in the user's card pack (voucherCode); reserved: handed to Alipay's coupon plugin, "
        "which issues it"))
    voucher_code: str | None
    activity_id: str | None = Field(None, description="reserved: what Alipay's coupon plugin takes, with outBizNo")
    out_biz_no: str | None = Field(None, description="reserved: the reservation's out_biz_no for the coupon plugin")
    claimed_at: datetime
    expires_on: date = Field(description="the last day the voucher can be used (China time)")
    title: str
    value_text: str
    threshold_text: str


class MyClaimsReply(Reply):
    claims: list[MyClaim] = Field(description="newest first")


# --- events ------------------------------------------------------------------------------

class EventIn(Request):
    kind: str = Field(pattern=r"^[a-z][a-z0-9_.-]{0,39}$", description="e.g. launch, page_view, share, claim_tap")
    at: int = Field(ge=EARLIEST_EVENT_MS, le=LATEST_EVENT_MS, description="when, in ms since 1970 (Date.now())")
    scene: str | None = Field(None, pattern=r"^[0-9]{1,16}$", description="Alipay's scene value, e.g. 1011")
    channel: str | None = Field(None, min_length=1, max_length=64)
    entry_point: str | None = Field(None, min_length=1, max_length=64)
    store: str | None = Field(None, min_length=1, max_length=64)
    table: str | None = Field(None, min_length=1, max_length=32)
    ch_info: str | None = Field(None, min_length=1, max_length=128)
    page: str | None = Field(None, min_length=1, max_length=128)


class EventsRequest(Request):
    anonymous_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{8,64}$",
                                     description="the device's own id; required without a session token")
    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS)


class EventsReply(Reply):
    accepted: int


# --- content -----------------------------------------------------------------------------

CONTENT_COUPONS_MAX = 200  # as the spec's coupon section
CONTENT_PRODUCTS_MAX = 2000  # as the spec's catalogue


class CouponText(Request):
    """What a published content version may change about a coupon: its words. What the
    server enforces (dates, stock, audience, route) stays the spec's."""

    id: str = Field(pattern=ID_PATTERN, description="a coupon id of the served spec")
    title: str = Field(min_length=1, max_length=80)
    value_text: str = Field(min_length=1, max_length=40, description="e.g. ¥5, 8.5折")
    threshold_text: str = Field(min_length=1, max_length=80, description="e.g. 满50元可用, 无门槛")
    validity_text: str = Field(min_length=1, max_length=80)
    terms: str | None = Field(None, min_length=1, max_length=2000)


class ProductText(Request):
    """What a published content version may change about a catalogue product: its name,
    prices and whether it is sold out (a price change needs no new mini-program version)."""

    id: str = Field(pattern=ID_PATTERN, description="a product id of the served spec's catalogue")
    name: str = Field(min_length=1, max_length=80)
    price: Decimal = Field(ge=0, le=1_000_000, decimal_places=2, description="yuan")
    original_price: Decimal | None = Field(None, ge=0, le=1_000_000, decimal_places=2,
                                           description="yuan, shown struck through; above price")
    sold_out: bool = False

    @model_validator(mode="after")
    def _original_above_price(self) -> ProductText:
        if self.original_price is not None and self.original_price <= self.price:
            raise ValueError("originalPrice must be higher than price (it is shown struck through)")
        return self


class ContentDocument(Request):
    """The runtime content, as `mpforge publish` sends it (the spec's own content is built
    the same way): the app's name, its coupons' words in display order, and its catalogue
    products' names, prices and sold-out state. A coupon of the spec left out is not
    shown (it stays claimable by its id); a product left out keeps the build's data."""

    name: str = Field(min_length=1, max_length=80)
    coupons: list[CouponText] = Field(max_length=CONTENT_COUPONS_MAX)
    products: list[ProductText] = Field(default_factory=list, max_length=CONTENT_PRODUCTS_MAX)


class CouponContent(Reply):
    id: str
    title: str
    kind: Literal["cash", "discount", "exchange"]
    value_text: str
    threshold_text: str
    validity_text: str
    terms: str | None
    state: Literal["available", "expired"] = Field(description="as of today (China time)")
    state_text: str
    sold_out: bool = Field(description="no stock left, as of this answer")
    activity_id: str
    per_user_limit: int
    audience: str
    stores: list[str] | None
    start: str | None = Field(description="fixed validity: first day (YYYY-MM-DD)")
    end: str | None = Field(description="fixed validity: last day (YYYY-MM-DD)")
    days_after_claim: int | None
    claim_route: Literal["send", "plugin"]


class ProductContent(Reply):
    id: str
    name: str
    price_text: str = Field(description="e.g. ¥28.00")
    original_price_text: str | None
    sold_out: bool


class ContentReply(Reply):
    appid: str
    version: int = Field(description="the published content version shown; 0: the spec's own content")
    name: str
    today: str
    coupons: list[CouponContent]
    products: list[ProductContent] = Field(description="catalogue products whose name, price or stock may have "
                                                       "changed since the build")


class ContentVersionReply(Reply):
    version: int
    published_at: datetime
    restored_from: int | None = Field(description="the version this one copies, when it was made by a restore")


class ContentVersionsReply(Reply):
    current: int = Field(description="the version GET content shows; 0: the spec's own content")
    versions: list[ContentVersionReply] = Field(description="oldest first")


# --- errors ------------------------------------------------------------------------------

class FieldError(Reply):
    location: str
    message: str


class ErrorDetail(Reply):
    code: str
    message: str
    alipay_sub_code: str | None = None
    fields: list[FieldError] | None = None


class ErrorReply(Reply):
    error: ErrorDetail
