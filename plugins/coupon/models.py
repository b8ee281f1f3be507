"""The `coupon:` spec section: merchant coupons (商家券), the backend that issues them,
and the pages the plugin adds."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal
from urllib.parse import quote

from pydantic import Field, WithJsonSchema, model_validator

from builder.plugin_api import (
    HttpsUrl,
    Id,
    PageId,
    PageOptions,
    Ref,
    ShortText,
    StoreId,
    StrictModel,
    Text,
    page_path,
    ref_field,
)


class CouponRef(Ref):
    kind = "coupon"
    provided_by = "coupon"
    defined_in = "coupon.coupons"


CouponId = ref_field(CouponRef, "id of a coupon in coupon.coupons")

Yuan = Annotated[Decimal, Field(gt=0, le=100_000, decimal_places=2, title="amount in yuan"),
                 WithJsonSchema({"type": "number", "exclusiveMinimum": 0, "maximum": 100_000})]


class Validity(StrictModel):
    """Either fixed dates (`start` to `end`, inclusive, local dates) or N days after claiming.

    One model rather than a union of two, so a mistake gets one clear message.
    """

    start: date | None = None
    end: date | None = None
    days_after_claim: int | None = Field(None, ge=1, le=365)

    @model_validator(mode="after")
    def _one_kind(self) -> Validity:
        dates = self.start is not None or self.end is not None
        if dates == (self.days_after_claim is not None):
            raise ValueError("give either 'start' and 'end', or 'days_after_claim'")
        if dates and (self.start is None or self.end is None):
            raise ValueError("fixed validity needs both 'start' and 'end'")
        if dates and self.end <= self.start:  # type: ignore[operator]
            raise ValueError(f"'end' ({self.end}) must be after 'start' ({self.start})")
        return self

    @property
    def fixed(self) -> bool:
        return self.days_after_claim is None


class Coupon(StrictModel):
    id: Id
    kind: Literal["cash", "discount", "exchange"] = Field(
        description="cash: 'value' yuan off; discount: pay 'rate' of the price; exchange: get 'item'")
    title: ShortText
    value: Yuan | None = Field(None, description="cash coupons: yuan off")
    rate: float | None = Field(None, gt=0, lt=1, description="discount coupons: share of the price paid, 0.85 = 8.5折")
    item: ShortText | None = Field(None, description="exchange coupons: what the user gets")
    min_spend: Annotated[Decimal, Field(ge=0, le=100_000, decimal_places=2),
                         WithJsonSchema({"type": "number", "minimum": 0})] = Field(
        Decimal(0), description="minimum order in yuan; 0 means no threshold (无门槛)")
    validity: Validity
    stock: int = Field(ge=1, le=10_000_000, description="total coupons that can be issued")
    per_user_limit: int = Field(1, ge=1, le=100)
    audience: Literal["everyone", "new_customers", "members", "followers", "segment", "reward"] = Field(
        "everyone", description="followers: people following the merchant's life account; members: holders of "
                                "the member card (membership plugin); segment: customers of `segment`; reward: "
                                "given only for points or a full stamp card (membership plugin), never claimed by "
                                "itself, and left out of coupon lists")
    segment: Id | None = Field(None, description="audience segment: the id of a membership segment whose "
                                                 "customers may claim it (checked by the back end at each claim)")
    activity_id: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$",
                             description="the Alipay merchant-coupon activity (or template) id the backend "
                                         "issues against")
    stores: list[StoreId] | None = Field(None, description="stores where it can be used; all when omitted")
    terms: Text | None = None
    detail_page: PageId | None = Field(
        None, description="exchange coupons: the page of this app the voucher links to (Alipay's "
                          "merchant_order_url, sent as an alipays:// link when the coupon is issued)")
    claim_route: Literal["send", "plugin"] = Field(
        "send", description="send: the back end issues the voucher (alipay.marketing.activity.ordervoucher.send); "
                            "plugin: the back end reserves it and Alipay's coupon plugin (领券组件) puts it in the "
                            "user's card pack with Alipay's own dialog")
    code_mode: Literal["MERCHANT_API", "MERCHANT_UPLOAD"] | None = Field(
        None, description="exchange coupons: how voucher codes are made, as the Alipay activity was created "
                          "(MERCHANT_API: generated on issue; MERCHANT_UPLOAD: codes the merchant uploaded)")

    @model_validator(mode="after")
    def _segment_with_its_audience(self) -> Coupon:
        if (self.audience == "segment") != (self.segment is not None):
            raise ValueError("'segment' goes with audience: segment, and audience: segment needs 'segment' (the id "
                             "of a membership segment)")
        return self

    @model_validator(mode="after")
    def _kind_fields(self) -> Coupon:
        if self.kind != "exchange":
            for name in ("detail_page", "code_mode"):
                if getattr(self, name) is not None:
                    raise ValueError(f"'{name}' is for exchange coupons only")
        needed = {"cash": "value", "discount": "rate", "exchange": "item"}[self.kind]
        extra = [f for f in ("value", "rate", "item") if f != needed and getattr(self, f) is not None]
        if getattr(self, needed) is None:
            raise ValueError(f"a {self.kind} coupon needs '{needed}'")
        if extra:
            raise ValueError(f"a {self.kind} coupon takes '{needed}', not {', '.join(repr(f) for f in extra)}")
        if self.kind == "cash" and self.min_spend and self.min_spend < self.value:  # type: ignore[operator]
            raise ValueError(f"'min_spend' ({self.min_spend}) must not be below the cash value ({self.value}); "
                             "use 0 for a coupon without threshold")
        if self.per_user_limit > self.stock:
            raise ValueError(f"'per_user_limit' ({self.per_user_limit}) must not exceed 'stock' ({self.stock})")
        return self

    def merchant_order_url(self, appid: str) -> str | None:
        """The alipays:// link into this app that Alipay attaches to an exchange voucher
        (ordervoucher.send's merchant_order_url), or None without a detail page."""
        if self.detail_page is None:
            return None
        page = quote(page_path(self.detail_page), safe="")
        return f"alipays://platformapi/startapp?appId={appid}&page={page}"


class Backend(StrictModel):
    """Where spec_version 1 first put the back end; the top-level `backend` is its place now."""

    base_url: HttpsUrl
    claim_path: str | None = Field(None, pattern=r"^/[A-Za-z0-9_\-./]*$",
                                   description="no longer used: claims go to the back end's "
                                               "/api/v1/{appid}/coupons/{id}/claims")


class CouponPages(StrictModel):
    """Pages the plugin adds; set one to null to leave it out."""

    centre: PageOptions | None = PageOptions(id="coupons", title="领券中心")
    mine: PageOptions | None = PageOptions(id="my-coupons", title="我的券")


class CouponSection(StrictModel):
    """Merchant coupons (商家券) and how the mini-program claims them."""

    backend: Backend | None = Field(None, description="deprecated: set the top-level 'backend' instead")
    partner_id: str | None = Field(None, pattern=r"^2088[0-9]{12}$",
                                   description="the merchant's Alipay PID (2088...): 'my coupons' then opens the "
                                               "user's vouchers of this merchant in the Alipay card pack "
                                               "(my.openMerchantVoucherList, enterprise mini-programs)")
    pages: CouponPages = CouponPages()
    coupons: list[Coupon] = Field(min_length=1, max_length=200)
