"""life_account: the merchant's life account (生活号): follow button, profile, article feed,
and a coupon as a reward for following.

Following uses Alipay's built-in `lifestyle` component, which only works for a life
account linked to the same Alipay account as the mini-program, and shows nothing until
the mini-program has been published once and the account linked (so it is empty in the
IDE and during the first review). Its `onFollow` event fires after a follow; the reward
coupon is then claimed through the coupon plugin's service, and the back end issues it
only when Alipay confirms the follow (alipay.open.public.user.follow.query, which the
sandbox answers through this plugin's `serve.py`).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from builder.plugin_api import (
    Asset,
    Block,
    BlockType,
    Page,
    PageOptions,
    Problem,
    ShortText,
    StrictModel,
    Text,
    ValidSpec,
    WebPage,
    hookimpl,
)
from plugins.coupon import CouponId

if TYPE_CHECKING:
    from builder.plugin_api import PlanContext
    from builder.serve.plugin_api import SandboxMethod

__version__ = "1.0.0"
TEMPLATES = Path(__file__).parent / "templates"
SCRIPT = "life_account/page.js"
# A follow reward is claimed for the user, so the follow blocks collect their id.
FOLLOW_COLLECTS = ("支付宝用户标识（user_id 或 open_id）: 确认关注生活号并发放关注礼",)


class Article(StrictModel):
    title: ShortText
    cover: Asset
    summary: Text | None = None
    date: date
    url: WebPage


class LifeAccountSection(StrictModel):
    """The merchant's life account (生活号), linked to this mini-program in the Alipay console."""

    # [0-9], not \d: pydantic's patterns take \d to mean any Unicode digit ('２', '٣').
    public_id: str = Field(pattern=r"^20[0-9]{14}$",
                           description="the life account's APPID: 16 digits starting with 20")
    name: ShortText
    avatar: Asset
    description: Text | None = None
    memo: ShortText | None = Field(None, description="one line shown in Alipay's follow component")
    follow_reward: CouponId | None = Field(None, description="coupon claimed for the user when they follow; the "
                                                                "back end issues it once Alipay confirms the follow")
    articles: list[Article] = Field(default_factory=list, max_length=50)
    page: PageOptions | None = Field(None, description="add a profile + feed page with this id")


def _section(ctx: PlanContext) -> LifeAccountSection:
    section = ctx.spec.section(LifeAccountSection)
    assert section is not None  # the blocks require the section (BlockType.requires_section)
    return section


def _follow_data(ctx: PlanContext) -> dict[str, Any]:
    section = _section(ctx)
    return {"public_id": section.public_id, "memo": section.memo, "name": section.name,
            "reward": section.follow_reward}


class FollowBlock(Block):
    """Alipay's follow button for the life account."""

    type: Literal["life-account-follow"]

    def page_data(self, ctx: PlanContext) -> dict[str, Any]:
        return _follow_data(ctx)


class CardBlock(Block):
    """The account's avatar, name and description, with the follow button."""

    type: Literal["life-account-card"]

    def page_data(self, ctx: PlanContext) -> dict[str, Any]:
        section = _section(ctx)
        return {**_follow_data(ctx), "avatar": ctx.asset(section.avatar), "description": section.description}


class FeedBlock(Block):
    """The account's articles; a tap opens the article inside the mini-program."""

    type: Literal["life-account-feed"]
    title: ShortText | None = None
    limit: int | None = Field(None, ge=1, le=50, description="show only the newest N articles")

    def page_data(self, ctx: PlanContext) -> dict[str, Any]:
        articles = sorted(_section(ctx).articles, key=lambda a: a.date, reverse=True)[: self.limit]
        return {"title": self.title, "articles": [
            {"title": a.title, "cover": ctx.asset(a.cover), "summary": a.summary, "date": a.date.isoformat(),
             "link": ctx.web(a.url)} for a in articles]}


BLOCK_TYPES = [
    BlockType(name="life-account-follow", model=FollowBlock, template="blocks/life-account-follow.axml",
              style="life_account/life_account.acss", script=SCRIPT, requires_section="life_account",
              collects=FOLLOW_COLLECTS,
              description="Alipay's follow button for the life account (empty until the app is published once and "
                          "the account linked to it)"),
    BlockType(name="life-account-card", model=CardBlock, template="blocks/life-account-card.axml",
              style="life_account/life_account.acss", script=SCRIPT, requires_section="life_account",
              collects=FOLLOW_COLLECTS, description="the life account's profile with a follow button"),
    BlockType(name="life-account-feed", model=FeedBlock, template="blocks/life-account-feed.axml",
              style="life_account/life_account.acss", requires_section="life_account",
              description="the life account's articles"),
]


@hookimpl
def mpforge_spec_sections() -> dict[str, type]:
    return {"life_account": LifeAccountSection}


@hookimpl
def mpforge_block_types() -> list[BlockType]:
    return BLOCK_TYPES


@hookimpl
def mpforge_template_dirs() -> list[Path]:
    return [TEMPLATES]


@hookimpl
def mpforge_validate(spec: ValidSpec) -> list[Problem]:
    """An article feed with no articles shows nothing (its title included); a follow
    reward is issued by the back end after it checked the follow."""
    section = spec.section(LifeAccountSection)
    if section is None:
        return []
    return _reward_problems(spec, section) + _feed_problems(spec, section)


def _reward_problems(spec: ValidSpec, section: LifeAccountSection) -> list[Problem]:
    coupons = getattr(spec.section("coupon"), "coupons", None) or []
    reward = next((c for c in coupons if c.id == section.follow_reward), None)
    if reward is None:
        return []
    problems = []
    if reward.claim_route != "send":
        problems.append(spec.problem(("life_account", "follow_reward"),
                                     f"follow reward '{reward.id}' is claimed through Alipay's coupon plugin",
                                     hint="the back end issues a follow reward itself once Alipay confirms the "
                                          "follow (alipay.open.public.user.follow.query): give the coupon "
                                          "claim_route: send"))
    if reward.audience != "followers":
        problems.append(spec.problem(("life_account", "follow_reward"),
                                     f"follow reward '{reward.id}' is for audience '{reward.audience}'",
                                     hint="set its audience to followers, so the back end checks the follow "
                                          "before issuing it", severity="warning"))
    return problems


def _feed_problems(spec: ValidSpec, section: LifeAccountSection) -> list[Problem]:
    if section.articles:
        return []
    return [spec.problem(("pages", i, "blocks", j), "an article feed, but life_account has no articles: it shows "
                                                    "nothing", hint="add life_account.articles, or remove the block",
                         severity="warning")
            for i, page in enumerate(spec.model.pages) for j, block in enumerate(page.blocks)
            if isinstance(block, FeedBlock)]


@hookimpl
def mpforge_pages(spec: ValidSpec) -> list[Page]:
    section: LifeAccountSection | None = spec.section("life_account")
    if section is None or section.page is None:
        return []
    return [Page(id=section.page.id, title=section.page.title,
                 blocks=[CardBlock(type="life-account-card"), FeedBlock(type="life-account-feed")])]


# --- the back end (`mpforge serve`): serve.py, imported only when the back end calls ---


@hookimpl
def mpforge_sandbox_methods() -> dict[str, SandboxMethod]:
    from .serve import SANDBOX_METHODS

    return dict(SANDBOX_METHODS)
