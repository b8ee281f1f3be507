"""membership: Alipay's regular-customer model (C-CARE) for one shop: the member card,
points and levels, the stamp card, subscription messages, favourites and customer
service, and the merchant's customer view with segments (棋盘密云).

The spec side: the `membership:` section (models.py), the member page and the blocks
(blocks.py, templates/), `services/membership.js`. The back end: the plugin's tables
(tables.py, Alembic branch `versions/`); the card (card_api.py: template, claim, points
pushed to Alipay's copy), points and rewards (points.py), stamps and the till's code
(stamps_api.py, till.py), subscription messages (messages.py), segments and the
customer view (segments.py, customer_view.py), the coupon audiences it answers
(audience.py), a customer's own data (privacy.py), and the sandbox's Alipay methods
(sandbox_*.py). docs/membership.md is the guide.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.plugin_api import (
    AppPlan,
    AppScript,
    BlockType,
    Page,
    Problem,
    Render,
    ValidSpec,
    hookimpl,
)

from .blocks import (
    BLOCK_TYPES,
    ENTERPRISE_ONLY,
    ContactButtonBlock,
    MemberCardBlock,
    PointsRewardsBlock,
    StampCardBlock,
)
from .card_images import card_image_problems
from .models import MembershipSection

if TYPE_CHECKING:  # the back end's types: a build never loads them
    from starlette.routing import BaseRoute, Route

    from builder.serve.plugin_api import BusinessEvent, Endpoint, PeriodicTask, SandboxMethod, TaskContext
    from builder.serve.storage import AlipayUser, Storage

LOG = logging.getLogger(__name__)
__version__ = "0.1.0"
__all__ = ["MembershipSection"]
MIGRATIONS = Path(__file__).parent / "versions"
TEMPLATES = Path(__file__).parent / "templates"
# Alipay's 会员私域插件 (formerly 支付宝卡包插件): its name in app.json and in requirePlugin.
CARD_PLUGIN = "alipassToolKit"
MOMENTS = ("order_paid", "coupon_claimed", "card_opened")


@hookimpl
def mpforge_spec_sections() -> dict[str, type]:
    return {"membership": MembershipSection}


@hookimpl
def mpforge_block_types() -> list[BlockType]:
    return BLOCK_TYPES


@hookimpl
def mpforge_template_dirs() -> list[Path]:
    return [TEMPLATES]


@hookimpl
def mpforge_pages(spec: ValidSpec) -> list[Page]:
    """The member page: the card, then the stamp card and the rewards the spec has."""
    section: MembershipSection | None = spec.section("membership")
    if section is None:
        return []
    blocks: list[Any] = [MemberCardBlock(type="member-card")]
    if section.stamp_card is not None:
        blocks.append(StampCardBlock(type="stamp-card"))
    if section.points.rewards:
        blocks.append(PointsRewardsBlock(type="points-rewards"))
    member = section.pages.member
    return [Page.model_validate({"id": member.id, "title": member.title, "blocks": blocks})]


@hookimpl
def mpforge_app_json(app_json: dict[str, Any], mini_project: dict[str, Any], spec: ValidSpec) -> None:
    """The 会员私域插件 the member card's claim page opens through (its provider as the
    plugin's page in the Alipay console shows it; "*": the newest version)."""
    section: MembershipSection | None = spec.section("membership")
    if section is not None:
        app_json.setdefault("plugins", {})[CARD_PLUGIN] = {"version": "*", "provider": section.card.plugin_provider}


@hookimpl
def mpforge_app_script(spec: ValidSpec, render: Render) -> AppScript | None:
    """App.mfMoment(moment): other plugins' generated code calls it, when it is there,
    after an order is paid or a coupon claimed, so the app asks for subscriptions
    without those plugins knowing membership."""
    section: MembershipSection | None = spec.section("membership")
    if section is None or spec.backend_url is None:
        return None
    return AppScript(members=render("membership/app.js"))


@hookimpl
def mpforge_services(plan: AppPlan, spec: ValidSpec, render: Render) -> dict[str, str]:
    section: MembershipSection | None = spec.section("membership")
    if section is None or spec.backend_url is None:  # mpforge_validate reports a missing back end
        return {}
    templates = section.messages.templates if section.messages else []
    config = {
        "appid": spec.model.app.appid or "",
        "levels": [{"id": level.id, "minPoints": level.min_points} for level in section.levels],
        "subscriptions": {moment: [t.template_id for t in templates if t.ask_after == moment] for moment in MOMENTS},
        "followPoints": section.points.per_follow > 0,
    }
    return {"services/membership.js": render("membership/service.js", config=config)}


@hookimpl
def mpforge_validate(spec: ValidSpec) -> list[Problem]:
    section: MembershipSection | None = spec.section("membership")
    problems: list[Problem] = []
    if section is None:
        return _audience_problems(spec, set())
    problems += spec.duplicate_ids(section.levels, ("membership", "levels"), "level id")
    problems += spec.duplicate_ids(section.segments, ("membership", "segments"), "segment id")
    if spec.backend_url is None:
        problems.append(spec.problem(("membership",), "members, points and stamps are kept by the merchant back "
                                                      "end, and none is set",
                                     hint="add a top-level 'backend:' with 'base_url: https://...' (mpforge serve)"))
    problems += card_image_problems(spec, section.card)
    return problems + _coupon_problems(spec, section) + _segment_problems(spec, section) + _page_problems(spec, section)


def _coupon_problems(spec: ValidSpec, section: MembershipSection) -> list[Problem]:
    """Rewards and the full stamp card's coupon are issued by the back end itself (no
    coupon plugin dialog in between): they must be coupons with claim_route send; and
    with audience reward, or anyone could claim them without points or stamps."""
    coupon = spec.section("coupon")
    coupons = {c.id: c for c in getattr(coupon, "coupons", None) or []}
    wanted: list[tuple[tuple[str | int, ...], str]] = [
        (("membership", "points", "rewards", i, "coupon"), r.coupon) for i, r in enumerate(section.points.rewards)]
    if section.stamp_card is not None:
        wanted.append((("membership", "stamp_card", "reward"), section.stamp_card.reward))
    problems = []
    for path, coupon_id in wanted:
        found = coupons.get(coupon_id)
        if found is None:
            continue  # an unknown coupon id is the reference check's to report
        if found.claim_route != "send":
            problems.append(spec.problem(path, f"coupon '{coupon_id}' is a reward the back end issues, but its "
                                               f"claim_route is {found.claim_route}",
                                         hint=f"set claim_route: send on coupon '{coupon_id}' (the coupon plugin's "
                                              "dialog cannot finish a reward)"))
        if found.audience != "reward":
            problems.append(spec.problem(path, f"coupon '{coupon_id}' is a reward, but its audience is "
                                               f"{found.audience}: it can be claimed for nothing, without points or "
                                               "stamps",
                                         hint=f"set audience: reward on coupon '{coupon_id}' (given only as a "
                                              "reward, left out of coupon lists)", severity="warning"))
    return problems


def _segment_problems(spec: ValidSpec, section: MembershipSection) -> list[Problem]:
    """Segments' levels must be levels; a coupon for a segment must name a segment."""
    levels = {level.id for level in section.levels}
    problems = []
    for i, segment in enumerate(section.segments):
        for j, level in enumerate(segment.rule.levels or []):
            if level not in levels:
                problems.append(spec.problem(("membership", "segments", i, "rule", "levels", j),
                                             f"segment '{segment.id}' names level '{level}', which membership.levels "
                                             "does not have",
                                             hint=f"use one of: {', '.join(sorted(levels))}"))
    return problems + _audience_problems(spec, {segment.id for segment in section.segments})


def _audience_problems(spec: ValidSpec, segments: set[str]) -> list[Problem]:
    """A coupon for a segment (audience: segment) must name one of membership.segments,
    which the back end checks the customer against at each claim."""
    coupon = spec.section("coupon")
    problems = []
    for i, c in enumerate(getattr(coupon, "coupons", None) or []):
        if c.audience == "segment" and c.segment not in segments:
            problems.append(spec.problem(("coupon", "coupons", i, "segment"),
                                         f"coupon '{c.id}' is for segment '{c.segment}', which membership.segments "
                                         "does not have",
                                         hint=f"use one of: {', '.join(sorted(segments))}" if segments else
                                         "add the segment under membership.segments (the membership plugin)"))
    return problems


def _page_problems(spec: ValidSpec, section: MembershipSection) -> list[Problem]:
    """The stamp-card block needs a stamp card; the customer-service button works on
    enterprise accounts only. (A message's page is a PageId: the core checks it exists.)"""
    problems = []
    for i, page in enumerate(spec.model.pages):
        for j, block in enumerate(page.blocks):
            if isinstance(block, StampCardBlock) and section.stamp_card is None:
                problems.append(spec.problem(("pages", i, "blocks", j), "the stamp-card block shows "
                                                                        "membership.stamp_card, and the spec has none",
                                             hint="add membership.stamp_card (stamps, reward) or remove the block"))
            if isinstance(block, ContactButtonBlock):
                problems.append(spec.problem(("pages", i, "blocks", j),
                                             f"the contact-button works for {ENTERPRISE_ONLY}; elsewhere it shows "
                                             "nothing",
                                             hint="check the Alipay account is an enterprise one before publishing",
                                             severity="warning", rule="review/contact-button-enterprise"))
    return problems


# --- the back end (`mpforge serve`): imported only when the back end calls -----------------

@hookimpl
def mpforge_serve_migrations() -> list[Path]:
    return [MIGRATIONS]


@hookimpl
def mpforge_serve_routes() -> list[Endpoint]:
    from . import card_api, messages, points, stamps_api

    return [*card_api.ENDPOINTS, *points.ENDPOINTS, *stamps_api.ENDPOINTS, *messages.ENDPOINTS]


@hookimpl
def mpforge_serve_pages() -> list[BaseRoute]:
    from .customer_view import CustomerView
    from .till import Till

    return [*Till().routes(), *CustomerView().routes()]


@hookimpl
def mpforge_serve_tasks() -> list[PeriodicTask]:
    from . import card_api, messages, points, stamps_api

    return [*card_api.TASKS, *points.TASKS, *messages.TASKS, *stamps_api.TASKS]


@hookimpl
def mpforge_serve_event(context: TaskContext, event: BusinessEvent) -> None:
    from . import messages, points

    # Each on its own: a failure to credit points must not keep "your order is ready" from
    # being sent (points owed are credited later by the order_points task).
    for listener in (points.on_event, messages.on_event):
        try:
            listener(context, event)
        except Exception:
            LOG.exception("membership: %s failed on the event %s %s of app %s", listener.__module__, event.kind,
                          event.ref, event.appid)


@hookimpl
def mpforge_serve_in_audience(storage: Storage, appid: str, user: AlipayUser, audience: str,
                              sections: Mapping[str, Any]) -> bool | None:
    from .audience import in_audience

    return in_audience(storage, appid, user, audience, sections)


@hookimpl
def mpforge_serve_user_data(storage: Storage, appid: str, user: AlipayUser) -> dict[str, Any]:
    from .privacy import user_data

    return user_data(storage, appid, user)


@hookimpl
def mpforge_serve_forget_user(storage: Storage, appid: str, user: AlipayUser) -> None:
    from .privacy import forget_user

    forget_user(storage, appid, user)


@hookimpl
def mpforge_sandbox_methods() -> dict[str, SandboxMethod]:
    from . import sandbox_card, sandbox_messages, sandbox_qipan

    return {**sandbox_card.SANDBOX_METHODS, **sandbox_messages.SANDBOX_METHODS, **sandbox_qipan.SANDBOX_METHODS}


@hookimpl
def mpforge_sandbox_routes() -> list[Route]:
    from . import sandbox_card

    return list(sandbox_card.SANDBOX_ROUTES)
