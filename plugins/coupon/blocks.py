"""Coupon blocks. Their data lists coupons with display text and a build-time state; on
every page show, services/coupon.js asks the back end for the newest text, the stock and
what the user holds, and recomputes each state (claimed, sold out, reserved...)."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from builder.plugin_api import Asset, Block, BlockType, Link, ShortText, StoreId

from .models import Coupon, CouponId, CouponSection

if TYPE_CHECKING:
    from builder.plugin_api import PlanContext

SCRIPT = "coupon/page.js"
# What claiming collects and the back end keeps (the privacy policy lists it): the user id
# my.getAuthCode yields, and the claims (builder/serve/user_data.py: what deleting keeps).
COLLECTS = ("支付宝用户标识（user_id 或 open_id）: 领取优惠券，核对每位顾客的限领数量和领取记录",
            "领券记录（哪张券、何时、从哪个渠道领取）: 核对每位顾客的限领数量和券的库存；"
            "您删除数据后只保留不含您身份的记录，删除后仍按限领数量计")
STATE_TEXT = {"available": "立即领取", "claimed": "已领取", "sold_out": "已抢光",
              "expired": "已过期", "limit_reached": "已达上限"}


def coupon_display(coupon: Coupon, today: date) -> dict[str, Any]:
    """What a coupon shows: value, threshold, validity, and its state as of the build."""
    if coupon.kind == "cash":
        value = f"¥{coupon.value:g}"
    elif coupon.kind == "discount":
        value = f"{coupon.rate * 10:g}折"  # type: ignore[operator]
    else:  # the item can be long: it goes on the detail line, the big slot says what kind it is
        value = "兑换券"
    threshold = f"满{coupon.min_spend:g}元可用" if coupon.min_spend else "无门槛"
    if coupon.validity.fixed:
        validity, end = f"{coupon.validity.start} 至 {coupon.validity.end}", coupon.validity.end
    else:
        validity, end = f"领取后{coupon.validity.days_after_claim}天内有效", None
    state = "expired" if end is not None and end < today else "available"
    return {"id": coupon.id, "title": coupon.title, "kind": coupon.kind, "value_text": value, "item": coupon.item,
            "threshold_text": threshold, "validity_text": validity, "terms": coupon.terms,
            "state": state, "state_text": STATE_TEXT[state]}


def _section(ctx: PlanContext) -> CouponSection:
    section = ctx.spec.section(CouponSection)
    assert section is not None  # the blocks require the section (BlockType.requires_section)
    return section


def _displays(ctx: PlanContext, ids: list[str]) -> list[dict[str, Any]]:
    by_id = {c.id: c for c in _section(ctx).coupons}
    return [coupon_display(by_id[i], ctx.today) for i in ids]


def _plugin(ctx: PlanContext, ids: list[str]) -> bool:
    """Whether one of these coupons is claimed through Alipay's coupon plugin: the block
    then mounts the plugin's component (and its page declares it)."""
    by_id = {c.id: c for c in _section(ctx).coupons}
    return any(by_id[i].claim_route == "plugin" for i in ids)


class CouponListBlock(Block):
    """Coupons with claim buttons: the chosen ones, or all that pass the filters."""

    type: Literal["coupon-list"]
    title: ShortText | None = None
    coupons: list[CouponId] | None = Field(
        None, description="coupon ids in display order; when omitted, all but follow rewards (audience followers) "
                          "and points or stamp rewards (audience reward)")
    kinds: list[Literal["cash", "discount", "exchange"]] | None = Field(None, description="only these kinds")
    audience: list[Literal["everyone", "new_customers", "members", "followers", "segment"]] | None = Field(
        None, description="only coupons for these audiences")
    store: StoreId | None = Field(None, description="only coupons usable at this store")

    def page_data(self, ctx: PlanContext) -> dict[str, Any]:
        # Without a list: every coupon but rewards: follow rewards are claimed after a
        # verified follow (life-account-follow), points and stamp rewards by the membership
        # plugin, never from a public list.
        chosen = self.coupons or [c.id for c in _section(ctx).coupons if c.audience not in ("followers", "reward")]
        by_id = {c.id: c for c in _section(ctx).coupons}
        kept = [i for i in chosen if self._passes(by_id[i])]
        return {"title": self.title, "coupons": _displays(ctx, kept), "plugin": _plugin(ctx, kept)}

    def _passes(self, coupon: Coupon) -> bool:
        return ((self.kinds is None or coupon.kind in self.kinds)
                and (self.audience is None or coupon.audience in self.audience)
                and (self.store is None or coupon.stores is None or self.store in coupon.stores))


class CouponCardBlock(Block):
    """One coupon, large, with its terms."""

    type: Literal["coupon-card"]
    coupon: CouponId

    def page_data(self, ctx: PlanContext) -> dict[str, Any]:
        return {"coupons": _displays(ctx, [self.coupon]), "plugin": _plugin(ctx, [self.coupon])}


class CouponBannerBlock(Block):
    """A wide banner featuring one coupon, optionally over an image."""

    type: Literal["coupon-banner"]
    coupon: CouponId
    image: Asset | None = None
    subtitle: ShortText | None = None

    def page_data(self, ctx: PlanContext) -> dict[str, Any]:
        return {"image": ctx.asset(self.image) if self.image else None, "subtitle": self.subtitle,
                "coupons": _displays(ctx, [self.coupon]), "plugin": _plugin(ctx, [self.coupon])}


class MyCouponsBlock(Block):
    """The coupons this user holds, from the back end at run time; with the coupon
    section's partner_id, a button opens them in the Alipay card pack."""

    type: Literal["my-coupons"]
    empty_text: ShortText = "还没有领取优惠券"
    more: Link | None = Field(None, description="where 'get more coupons' leads, e.g. the coupon centre")

    def page_data(self, ctx: PlanContext) -> dict[str, Any]:
        section = _section(ctx)
        return {"empty_text": self.empty_text, "more": ctx.link(self.more) if self.more else None,
                "mine": True, "coupons": [], "card_pack": section.partner_id is not None,
                "plugin": _plugin(ctx, [c.id for c in section.coupons])}


def _block(name: str, model: type[Block], description: str) -> BlockType:
    return BlockType(name=name, model=model, template=f"blocks/{name}.axml", style="coupon/coupon.acss",
                     script=SCRIPT, on_show="mfRefreshCoupons", requires_section="coupon", collects=COLLECTS,
                     description=description)


BLOCK_TYPES = [
    _block("coupon-list", CouponListBlock, "coupons with claim buttons, chosen or filtered"),
    _block("coupon-card", CouponCardBlock, "one coupon, large, with its terms"),
    _block("coupon-banner", CouponBannerBlock, "a banner featuring one coupon"),
    _block("my-coupons", MyCouponsBlock, "the coupons the user has claimed"),
]
