"""coupon: merchant coupons (商家券) with claim buttons, a coupon centre and "my coupons".

The mini-program cannot issue Alipay merchant coupons itself: issuing is an OpenAPI
call signed with the merchant's key. So the generated `services/coupon.js` claims through
the merchant back end (`utils/backend.js`; `mpforge serve`, or a server implementing its
OpenAPI document), which either issues the voucher (`claim_route: send`) or reserves one
whose out_biz_no Alipay's coupon plugin (领券组件) then claims (`claim_route: plugin`).
`docs/backend.md` in the output says where the back end is and which coupon goes which way.
The claim routes and the sandbox's ordervoucher.send are this plugin's too (`serve.py`,
through the serve hooks).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.plugin_api import AppPlan, Block, BlockType, Page, PagePlan, Problem, Render, ValidSpec, hookimpl

from .blocks import BLOCK_TYPES, CouponBannerBlock, CouponCardBlock, CouponListBlock, MyCouponsBlock
from .models import CouponId, CouponSection

if TYPE_CHECKING:  # the back end's types: a build never loads them
    from builder.serve.plugin_api import Endpoint, SandboxMethod

__version__ = "1.0.0"
__all__ = ["CouponId", "CouponSection"]
TEMPLATES = Path(__file__).parent / "templates"
BLOCK_NAMES = {bt.name for bt in BLOCK_TYPES}


@hookimpl
def mpforge_spec_sections() -> dict[str, type]:
    return {"coupon": CouponSection}


@hookimpl
def mpforge_block_types() -> list[BlockType]:
    return BLOCK_TYPES


@hookimpl
def mpforge_template_dirs() -> list[Path]:
    return [TEMPLATES]


@hookimpl
def mpforge_pages(spec: ValidSpec) -> list[Page]:
    section: CouponSection | None = spec.section("coupon")
    if section is None:
        return []
    pages = []
    centre, mine = section.pages.centre, section.pages.mine
    if centre:
        pages.append(Page(id=centre.id, title=centre.title, blocks=[CouponListBlock(type="coupon-list")]))
    if mine:
        more = {"page": centre.id} if centre else None
        pages.append(Page(id=mine.id, title=mine.title, blocks=[MyCouponsBlock(type="my-coupons", more=more)]))
    return pages


@hookimpl
def mpforge_reference_targets(spec: ValidSpec) -> dict[str, list[str]]:
    section: CouponSection | None = spec.section("coupon")
    return {"coupon": [c.id for c in section.coupons] if section else []}


@hookimpl
def mpforge_validate(spec: ValidSpec) -> list[Problem]:
    section: CouponSection | None = spec.section("coupon")
    if section is None:
        return []
    problems = spec.duplicate_ids(section.coupons, ("coupon", "coupons"), "coupon id")
    problems += _backend_problems(spec, section)
    for i, coupon in enumerate(section.coupons):
        path = ("coupon", "coupons", i)
        validity = coupon.validity
        if validity.end is not None and validity.end < spec.today:
            problems.append(spec.problem((*path, "validity", "end"),
                                         f"coupon '{coupon.id}' expired on {validity.end}; it will show as expired",
                                         severity="warning"))
        if coupon.kind == "exchange" and coupon.detail_page is None:
            problems.append(spec.problem((*path, "kind"), f"exchange coupon '{coupon.id}' has no detail_page",
                                         hint="Alipay issues exchange vouchers with a link to the merchant's page "
                                              "for them (merchant_order_url): set detail_page",
                                         severity="warning", rule="review/exchange-detail"))
        elif coupon.detail_page is not None and not spec.model.app.appid:
            problems.append(spec.problem((*path, "detail_page"), "the voucher's link into the app needs app.appid",
                                         hint="set app.appid to the mini-program's 16-digit app id",
                                         severity="warning", rule="review/exchange-detail"))
    return problems + _public_rewards(spec, section)


def _backend_problems(spec: ValidSpec, section: CouponSection) -> list[Problem]:
    """Claims go to the back end under /api/v1/{appid}: it must be given, and the app id too."""
    if spec.backend_url is None:
        return [spec.problem(("coupon",), "coupons are claimed through the merchant back end, and none is set",
                             hint="add a top-level 'backend:' with 'base_url: https://...' (mpforge serve, or a "
                                  "server implementing its OpenAPI document)")]
    problems = []
    if section.backend is not None and spec.model.backend is not None:
        problems.append(spec.problem(("coupon", "backend"), "coupon.backend is ignored: the top-level backend is used",
                                     hint="remove coupon.backend (where spec_version 1 first had the back end)",
                                     severity="warning"))
    if section.backend is not None and section.backend.claim_path is not None:
        problems.append(spec.problem(("coupon", "backend", "claim_path"), "claim_path is no longer used",
                                     hint="claims go to {base_url}/api/v1/{appid}/coupons/{id}/claims; remove it",
                                     severity="warning"))
    if not spec.model.app.appid:
        problems.append(spec.problem(("app",), "the back end serves this app under its app id, and it has none",
                                     hint="set app.appid to the mini-program's 16-digit app id; until then "
                                          "coupons cannot be claimed", severity="warning"))
    return problems


def _public_rewards(spec: ValidSpec, section: CouponSection) -> list[Problem]:
    """A followers' coupon (a follow reward) shown in a public coupon block: anyone can try
    to claim it without following, and the back end refuses them. A reward coupon (for
    points or stamps) shown there is an error: it can never be claimed from it."""
    rewards = {c.id for c in section.coupons if c.audience == "followers"}
    paid_for = {c.id for c in section.coupons if c.audience == "reward"}
    problems = []
    for i, page in enumerate(spec.model.pages):
        for j, block in enumerate(page.blocks):
            shown = _shown_coupons(block)
            if shown is not None and shown & paid_for:
                problems.append(spec.problem(
                    ("pages", i, "blocks", j), f"shows reward coupon {', '.join(sorted(shown & paid_for))}, which "
                                               "is given only for points or a full stamp card and cannot be claimed "
                                               "here",
                    hint="list it in the member page's rewards (membership.points.rewards) instead"))
            public = sorted(shown & rewards) if shown is not None else []
            if isinstance(block, CouponListBlock) and block.audience and "followers" in block.audience:
                public = public or ["(followers' coupons)"]
            if public:
                problems.append(spec.problem(
                    ("pages", i, "blocks", j), f"shows follow-reward coupon {', '.join(public)} to everyone",
                    hint="follow rewards are claimed through the life-account follow block after a verified "
                         "follow: leave them out of public coupon blocks",
                    severity="warning", rule="review/reward-coupon-public"))
    return problems


def _shown_coupons(block: Block) -> set[str] | None:
    if isinstance(block, CouponListBlock):
        return set(block.coupons or ())
    if isinstance(block, (CouponCardBlock, CouponBannerBlock)):
        return {block.coupon}
    return None


COUPON_PLUGIN = "couponPlugin"  # Alipay's coupon plugin (领券组件): its name in app.json
COUPON_PLUGIN_PROVIDER = "2021002172680015"
COUPON_COMPONENT = {"get-coupon": f"plugin://{COUPON_PLUGIN}/get-coupon"}


@hookimpl
def mpforge_app_json(app_json: dict[str, Any], mini_project: dict[str, Any], spec: ValidSpec) -> None:
    section: CouponSection | None = spec.section("coupon")
    if section is None:
        return
    mini_project["uploadExclude"].append("docs/**")  # docs/backend.md is for the merchant
    if any(c.claim_route == "plugin" for c in section.coupons):
        # "*": the plugin's newest version, as Alipay's plugin docs declare it.
        app_json.setdefault("plugins", {})[COUPON_PLUGIN] = {"version": "*", "provider": COUPON_PLUGIN_PROVIDER}


@hookimpl
def mpforge_page_json(page_json: dict[str, Any], page: PagePlan, spec: ValidSpec) -> None:
    if any(p.block_type.name in BLOCK_NAMES and page.data[p.key].get("plugin") for p in page.blocks):
        page_json["usingComponents"].update(COUPON_COMPONENT)


@hookimpl
def mpforge_services(plan: AppPlan, spec: ValidSpec, render: Render) -> dict[str, str]:
    section: CouponSection | None = spec.section("coupon")
    if section is None or spec.backend_url is None:  # mpforge_validate reports a missing back end
        return {}
    coupons = {c.id: {"perUserLimit": c.per_user_limit, "item": c.item,
                      "start": c.validity.start.isoformat() if c.validity.start else None,
                      "end": c.validity.end.isoformat() if c.validity.end else None} for c in section.coupons}
    return {
        "services/coupon.js": render("coupon/service.js", config={"coupons": coupons, "partnerId": section.partner_id}),
        "docs/backend.md": render("coupon/backend.md", app=spec.model.app, coupons=section.coupons,
                                  api=spec.backend_api or f"{spec.backend_url}/api/v1/(app.appid)",
                                  openapi=f"{spec.backend_url}/api/v1/openapi.json"),
    }


# --- the back end (`mpforge serve`): serve.py, imported only when the back end calls ---

@hookimpl
def mpforge_serve_routes() -> list[Endpoint]:
    from .serve import ENDPOINTS

    return list(ENDPOINTS)


@hookimpl
def mpforge_sandbox_methods() -> dict[str, SandboxMethod]:
    from .serve import SANDBOX_METHODS

    return dict(SANDBOX_METHODS)
