"""The JSON the back end's routes take and give, as pydantic models (camelCase on the
wire, as the mini-program's JavaScript writes it). The OpenAPI document is built from
their JSON schemas, so it cannot drift from what is checked.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

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


ClaimResult = Literal["CLAIMED", "RESERVED", "PENDING", "SOLD_OUT", "LIMIT_REACHED", "REFUSED"]


class ClaimReply(Reply):
    """A claim's outcome. A replayed Idempotency-Key gets the same status and body, except
    PENDING, which is retried."""

    result: ClaimResult = Field(description=(
        "CLAIMED (201): the voucher is issued. RESERVED (201): claim it with Alipay's coupon plugin, passing "
        "activityId and outBizNo. PENDING (503): Alipay did not answer; retry with the same Idempotency-Key. "
        "SOLD_OUT, LIMIT_REACHED (409): nothing reserved. REFUSED (409): Alipay refused the voucher "
        "(alipaySubCode says why); the stock was given back"))
    claim_id: str
    coupon_id: str
    voucher_code: str | None = None
    activity_id: str | None = None
    out_biz_no: str | None = None
    alipay_sub_code: str | None = None
    message: str


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
    activity_id: str
    per_user_limit: int
    audience: str
    stores: list[str] | None
    start: str | None = Field(description="fixed validity: first day (YYYY-MM-DD)")
    end: str | None = Field(description="fixed validity: last day (YYYY-MM-DD)")
    days_after_claim: int | None
    claim_route: Literal["send", "plugin"]


class ContentReply(Reply):
    appid: str
    name: str
    today: str
    coupons: list[CouponContent]


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
