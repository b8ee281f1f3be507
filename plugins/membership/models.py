"""The `membership:` spec section: Alipay's regular-customer model (C-CARE) for one shop.

* `card`: the Alipay member card (商家会员卡) customers claim into their Alipay card pack:
  its design (the template the back end creates with alipay.marketing.card.template.create)
  and the claim form's fields (alipay.marketing.card.formtemplate.set).
* `levels`: named by the points a member has earned in all (never lowered by spending).
* `points`: how they are earned (per yuan of a paid order, per stamp, once for following
  the life account) and spent (`rewards`: a coupon for so many points).
* `stamp_card`: for a shop without ordering: a stamp per visit, granted by scanning the
  till's rotating signed code; `stamps` of them give the reward coupon.
* `messages`: subscription messages (订阅消息) the app asks for after an order or a claim,
  sent by the back end (alipay.open.app.mini.templatemessage.send).
* `segments`: customers chosen by rules, shown in the merchant's customer view, exported,
  pushed to 棋盘密云 as a crowd, and usable as a coupon's audience.
* `pages`: the member page the plugin adds.

docs/membership.md is the guide; docs/alipay-membership-facts.md the Alipay facts behind it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from builder.plugin_api import PageOptions, StrictModel
from builder.spec_models import Asset, Color, Id, PageId, ShortText
from plugins.coupon import CouponId

AlipayAppId = Annotated[str, Field(pattern=r"^20[0-9]{14}$", title="Alipay app id",
                                   description="16 digits starting 20")]
TemplateId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$", title="Alipay template id")]
FormField = Literal["mobile", "name", "gender", "birthday", "email"]
Points = Annotated[int, Field(ge=0, le=100_000_000)]


def _mobile_only() -> list[FormField]:
    return ["mobile"]


class CardDesign(StrictModel):
    """The member card as the card pack shows it (TemplateStyleInfoDTO). The images are
    uploaded with alipay.offline.material.image.upload when the template is made."""

    title: Annotated[str, Field(min_length=1, max_length=20)] = Field(
        description="the card's name in the card pack (card_show_name), e.g. 港湾咖啡会员卡")
    logo: Asset = Field(description="square logo, at least 500×500 px, at most 1 MB (png or jpg)")
    background: Asset = Field(description="the card's picture, at least 1020×643 px, at most 2 MB, no rounded "
                                          "corners")
    text_color: Color = Field("#333333", description="colour of the card detail page's text (Alipay's bg_color, "
                                                     "which despite its name is the font colour)")
    brand_color: Color = Field("#1677ff", description="the card's colour in the mini-program's own pages")
    form: list[FormField] = Field(
        default_factory=_mobile_only, max_length=5,
        description="what the claim form asks (required fields); name, mobile, birthday and email need an "
                    "approved 用户信息申请 on the Alipay account")
    plugin_provider: AlipayAppId = Field(
        description="provider app id of Alipay's 会员私域插件 (formerly 支付宝卡包插件, alias alipassToolKit) as the "
                    "plugin's page in the Alipay console shows it; the card's claim page opens through it")
    valid_years: int = Field(10, ge=1, le=50, description="a card opened today is valid this many years")


class Level(StrictModel):
    id: Id
    name: Annotated[str, Field(min_length=1, max_length=10)] = Field(description="e.g. 银卡")
    min_points: Points = Field(description="points earned in all (spending does not lower them) to reach it")
    benefits: list[ShortText] = Field(default_factory=list, max_length=10,
                                      description="what the level gives, shown on the member page")


class PointsReward(StrictModel):
    """A coupon a member gets for points (the coupon plugin issues it)."""

    coupon: CouponId
    points: int = Field(ge=1, le=100_000_000)


class PointsRules(StrictModel):
    per_yuan: int = Field(1, ge=0, le=1000, description="points per whole yuan of a paid order (ordering plugin); "
                                                         "0: none")
    per_stamp: int = Field(0, ge=0, le=100_000, description="points per stamp of the stamp card")
    per_follow: int = Field(0, ge=0, le=100_000, description="points once, for following the life account")
    rewards: list[PointsReward] = Field(default_factory=list, description="coupons members get for points")


class StampCard(StrictModel):
    """A paper stamp card, on the phone: the till shows a code that changes every
    `code_seconds`, signed by the back end; a customer scans it for a stamp."""

    title: ShortText = Field("集点卡", description="the card's name on the page")
    stamps: int = Field(ge=2, le=30, description="stamps that fill a card and give the reward")
    reward: CouponId = Field(description="the coupon a full card gives")
    code_seconds: int = Field(30, ge=10, le=300, description="how long one till code is valid")
    per_day: int = Field(1, ge=1, le=10, description="stamps one customer may get per day (China time)")


MessageEvent = Literal["order_ready", "coupon_expiring", "points_changed"]


class MessageTemplate(StrictModel):
    """A subscription-message template of the Alipay account (商家平台 > 订阅消息), and
    when mpforge sends it. The template's keywords are filled in order from `fields`."""

    id: Id
    template_id: TemplateId = Field(description="the template id Alipay gave when it was added")
    event: MessageEvent = Field(description="order_ready: the order board marks an order ready; "
                                            "coupon_expiring: a claimed coupon expires tomorrow; "
                                            "points_changed: points earned or spent")
    ask_after: Literal["order_paid", "coupon_claimed", "card_opened"] = Field(
        description="when the app asks the customer to subscribe (my.requestSubscribeMessage): after paying an "
                    "order, claiming a coupon, or claiming the member card")
    fields: list[Literal["order_no", "store", "status", "coupon", "expires", "points", "balance", "shop"]] = Field(
        min_length=1, max_length=10, description="the values of the template's keyword1, keyword2, ... in order")
    page: PageId | None = Field(None, description="the page the message opens (default: the home page)")


class Messages(StrictModel):
    templates: list[MessageTemplate] = Field(min_length=1, max_length=20)
    per_user_per_day: int = Field(3, ge=1, le=20, description="at most this many messages to one customer a day")


class SegmentRule(StrictModel):
    """Every condition given must hold; none given: every customer."""

    member: bool | None = Field(None, description="true: members only; false: customers without the card")
    levels: list[Id] | None = Field(None, description="members of these levels")
    inactive_days: int | None = Field(None, ge=1, le=3650, description="no visit for at least this many days")
    active_days: int | None = Field(None, ge=1, le=3650, description="visited within this many days")
    min_orders: int | None = Field(None, ge=1, le=100_000, description="at least this many paid orders")
    min_points: Points | None = Field(None, description="at least this many points now")
    channel: Id | None = Field(None, description="came first through this promotion channel")


class Segment(StrictModel):
    id: Id
    name: Annotated[str, Field(min_length=1, max_length=15)] = Field(
        description="shown in the customer view, and the crowd's name in 棋盘密云 (at most 15 characters)")
    rule: SegmentRule = Field(default_factory=SegmentRule)
    description: ShortText | None = None


class MembershipPages(StrictModel):
    """The member page the plugin adds (member card, stamp card, rewards)."""

    member: PageOptions = PageOptions(id="member", title="会员中心")


class MembershipSection(StrictModel):
    """Regular customers: the member card, points and levels, the stamp card, subscription
    messages and customer segments."""

    card: CardDesign
    levels: list[Level] = Field(min_length=1, max_length=10,
                                description="lowest first; the first must start at 0 points")
    points: PointsRules = Field(default_factory=PointsRules)
    stamp_card: StampCard | None = Field(None, description="a stamp card for visits, stamped at the till")
    messages: Messages | None = Field(None, description="subscription messages; none when omitted")
    segments: list[Segment] = Field(default_factory=list, max_length=50)
    pages: MembershipPages = Field(default_factory=MembershipPages)

    @model_validator(mode="after")
    def _levels_ascend(self) -> MembershipSection:
        if self.levels[0].min_points != 0:
            raise ValueError(f"the first level, '{self.levels[0].id}', must start at min_points: 0 (every member "
                             "has a level)")
        for lower, higher in zip(self.levels, self.levels[1:], strict=False):
            if higher.min_points <= lower.min_points:
                raise ValueError(f"level '{higher.id}' needs more min_points than '{lower.id}' "
                                 f"({higher.min_points} <= {lower.min_points}); list levels lowest first")
        return self

    def level_for(self, earned: int) -> Level:
        """The highest level `earned` points (in all) reach."""
        return [level for level in self.levels if level.min_points <= earned][-1]
