"""The membership blocks: the member card, the stamp card, points rewards, the favourites
guide and the customer-service button.

Their data is the build's view (the spec's card design, levels, stamps and rewards, as a
customer who is not yet a member sees them); services/membership.js fills in the
customer's own card, points and stamps from the back end (GET membership/me) when the
page shows. Everything the merchant wrote stays in page data, never in code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from builder.plugin_api import Block, BlockType, Color, HttpsUrl, ShortText

if TYPE_CHECKING:
    from builder.plugin_api import PlanContext

    from .models import MembershipSection

SCRIPTS = "membership"  # the folder of the page scripts in templates/
STYLE = "membership/membership.acss"
USER_ID = "支付宝用户标识（user_id 或 open_id）"
# What each block collects (the privacy policy lists them, with why).
GONE = "您删除数据时一并删除"
CARD_COLLECTS = (
    f"{USER_ID}: 开通会员卡，记录会员等级和积分",
    "会员卡号，以及开卡表单要求手机号时该号码的 SHA-256 哈希值（不保存号码本身和表单中的其他信息）: "
    f"开通支付宝会员卡；商家在支付宝棋盘密云中按会员人群推送优惠和消息；{GONE}",
    f"积分记录（每笔订单、集点、兑换的积分变动）: 计算会员积分与等级；{GONE}",
    f"订阅消息的授权和已发送的消息: 只在您同意后发送订单和优惠提醒，并限制每天的条数；{GONE}",
)
STAMP_COLLECTS = (f"{USER_ID}: 记录集点卡的集点和兑换", f"集点记录（门店和时间）: 每日集点次数限制与集满发券；{GONE}")
REWARD_COLLECTS = (f"{USER_ID}: 用积分兑换优惠券", f"积分兑换记录: 扣减积分并防止重复兑换；{GONE}")
# The favourites guide keeps one flag on the device (my.setStorage); nothing leaves it.
GUIDE_COLLECTS: tuple[str, ...] = ()
CONTACT_COLLECTS = ("客服对话内容（由支付宝智能客服保存）: 解答您的咨询",)
ENTERPRISE_ONLY = "enterprise (企业) Alipay accounts only, with 在线客服 turned on"


def section_of(ctx: PlanContext) -> MembershipSection:
    section: MembershipSection | None = ctx.spec.section("membership")
    assert section is not None  # requires_section: the core refuses the block without the section
    return section


def _coupon_titles(ctx: PlanContext) -> dict[str, str]:
    coupon = ctx.spec.section("coupon")
    return {c.id: c.title for c in getattr(coupon, "coupons", None) or []}


class MemberCardBlock(Block):
    """The member card: brand colour, title, level, points, progress to the next level and
    the level's benefits. A customer without the card gets 领取会员卡, which opens Alipay's
    claim page through the 会员私域插件 (requirePlugin('alipassToolKit').openCard)."""

    type: Literal["member-card"]
    claim_text: ShortText = Field("领取会员卡", description="the button that claims the card")
    intro: ShortText | None = Field("开卡即享积分和会员权益", description="a line under the card for non-members")

    def page_data(self, ctx: PlanContext) -> dict[str, Any]:
        section = section_of(ctx)
        card = section.card
        first, second = section.levels[0], (section.levels[1] if len(section.levels) > 1 else None)
        return {"title": card.title, "brand_color": card.brand_color, "logo": ctx.asset(card.logo),
                "background": ctx.asset(card.background), "claim_text": self.claim_text, "intro": self.intro,
                "state": "loading", "member": False, "busy": False, "card_no": "", "points": 0,
                "level_name": first.name, "benefits": list(first.benefits),
                "next_text": f"再得 {second.min_points} 积分升级{second.name}" if second else "",
                "progress": 0,
                "levels": [{"id": level.id, "name": level.name, "min_points": level.min_points,
                            "benefits": list(level.benefits)} for level in section.levels]}


class StampCardBlock(Block):
    """The stamp card: a grid of stamps filled from the back end, and 扫码集点, which scans
    the till's rotating code (my.scan) and sends it to the back end."""

    type: Literal["stamp-card"]
    scan_text: ShortText = Field("扫码集点", description="the scan button")
    hint: ShortText | None = Field("结账时扫描收银台上的集点码", description="a line under the grid")

    def page_data(self, ctx: PlanContext) -> dict[str, Any]:
        section = section_of(ctx)
        stamp = section.stamp_card
        assert stamp is not None  # mpforge_validate refuses the block without membership.stamp_card
        reward = _coupon_titles(ctx).get(stamp.reward, stamp.reward)
        return {"title": stamp.title, "reward_title": reward, "scan_text": self.scan_text, "hint": self.hint,
                "state": "loading", "busy": False, "stamps": 0, "per_card": stamp.stamps, "cards_filled": 0,
                "slots": [{"n": n + 1, "on": False} for n in range(stamp.stamps)]}


class PointsRewardsBlock(Block):
    """Coupons a member gets for points, each with 兑换."""

    type: Literal["points-rewards"]
    title: ShortText | None = Field("积分兑换", description="the list's heading")

    def page_data(self, ctx: PlanContext) -> dict[str, Any]:
        titles = _coupon_titles(ctx)
        return {"title": self.title, "state": "loading", "points": 0, "member": False, "busy": "",
                "rewards": [{"coupon": r.coupon, "title": titles.get(r.coupon, r.coupon), "points": r.points,
                             "affordable": False} for r in section_of(ctx).points.rewards]}


class FavoriteGuideBlock(Block):
    """A tip pointing at the ··· menu (top right) to 收藏 the mini-program, until the
    customer closes it; shown once per device. Alipay has no API to favourite an app or
    to know whether it is favourited (docs/alipay-membership-facts.md §4.1)."""

    type: Literal["favorite-guide"]
    text: ShortText = Field("点击右上角「···」，选择「收藏」，下次使用更方便",
                            description="the tip's text")
    close_text: ShortText = Field("知道了", description="the button that closes the tip for good")

    def page_data(self, ctx: PlanContext) -> dict[str, Any]:
        return {"text": self.text, "close_text": self.close_text, "shown": False}


class ContactButtonBlock(Block):
    """Alipay's 智能客服 button (<contact-button>): a chat with the merchant's customer
    service. Enterprise Alipay accounts only, with 在线客服 turned on in the console."""

    type: Literal["contact-button"]
    tnt_inst_id: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$",
                             description="the company code from 云客服 (tnt-inst-id): one per enterprise account")
    scene: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$", description="the 云客服 scene code (scene)")
    size: int = Field(25, ge=10, le=100, description="the icon's size in px")
    color: Color = Field("#00a3ff", description="the icon's colour")
    icon: HttpsUrl | None = Field(None, description="an https picture to show instead of the default icon")
    label: ShortText | None = Field("联系客服", description="text beside the button")

    def page_data(self, ctx: PlanContext) -> dict[str, Any]:
        return {"tnt_inst_id": self.tnt_inst_id, "scene": self.scene, "size": self.size, "color": self.color,
                "icon": self.icon or "", "label": self.label}


def _block(name: str, model: type[Block], description: str, collects: tuple[str, ...], *,
           script: bool = True, **lifecycle: str) -> BlockType:
    """A block of services/membership.js (`script`), which needs the membership section, or
    one that stands alone (the customer-service button: its privacy entry is then listed
    only where it is used)."""
    return BlockType(name=name, model=model, template=f"blocks/{name}.axml", style=STYLE,
                     script=f"{SCRIPTS}/{name}.js" if script else None,
                     requires_section="membership" if script else None,
                     collects=collects, description=description, **lifecycle)


BLOCK_TYPES = [
    _block("member-card", MemberCardBlock, "the member card: level, points, benefits; 领取会员卡 for non-members",
           CARD_COLLECTS, on_show="mfMemberCardShow"),
    _block("stamp-card", StampCardBlock, "the stamp card: stamps collected, 扫码集点 at the till", STAMP_COLLECTS,
           on_show="mfStampCardShow"),
    _block("points-rewards", PointsRewardsBlock, "coupons for points, with 兑换", REWARD_COLLECTS,
           on_show="mfRewardsShow"),
    _block("favorite-guide", FavoriteGuideBlock, "a tip to 收藏 the mini-program from the ··· menu, once per device",
           GUIDE_COLLECTS, on_show="mfFavoriteGuideShow"),
    _block("contact-button", ContactButtonBlock, f"Alipay's 智能客服 button: {ENTERPRISE_ONLY}", CONTACT_COLLECTS,
           script=False),
]
