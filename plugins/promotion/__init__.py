"""promotion: share, campaigns, offline entry points with QR codes, channel attribution.

Entry points (a table sticker in a store, a poster, a partner link) each open a page
with a query that carries a channel tag (`ch`) and the entry point id (`ep`). app.js
keeps both in globalData and storage, and the coupon service sends them to the
backend, so the merchant sees which channel brought each visit and claim.

Each entry point's QR code (promotion/qr/<id>.svg) is a labelled draft until
`mpforge qrcodes` has fetched its real mini-program code from Alipay; from then on the
build shows that code (codes.py), read from the project's cache, never from Alipay.
The back end's events route, and the sandbox's qrcode.create with its code images, are
this plugin's too (`serve.py`, through the serve hooks).
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import segno
from pydantic import Field

from builder.plugin_api import (
    AppPlan,
    AppScript,
    Block,
    BlockType,
    Link,
    PagePlan,
    Problem,
    Render,
    ShortText,
    ValidSpec,
    asset_url,
    hookimpl,
    page_path,
)

from .codes import CodeRequest, cache_folder, cached_png, code_svg, read_cache
from .models import CampaignId, EntryPoint, PromotionSection

if TYPE_CHECKING:
    from starlette.routing import Route

    from builder.plugin_api import PlanContext
    from builder.serve.plugin_api import Endpoint, SandboxMethod

__version__ = "1.0.0"
TEMPLATES = Path(__file__).parent / "templates"
SCRIPT = "promotion/page.js"
QR_DESCRIBE_MAX = 32  # alipay.open.app.qrcode.create: describe, at most 32 characters


def _section(spec: ValidSpec) -> PromotionSection | None:
    return spec.section(PromotionSection)


def _required(ctx: PlanContext) -> PromotionSection:
    section = _section(ctx.spec)
    assert section is not None  # the blocks require the section (BlockType.requires_section)
    return section


def _campaign_data(ctx: PlanContext, campaign_id: str, before: bool = False) -> dict[str, Any]:
    """A campaign's times, and whether it shows as of the build date (midnight UTC): what
    the preview shows. On a device, page.js recomputes it on every page show."""
    campaign = next(c for c in _required(ctx).campaigns if c.id == campaign_id)
    now = _build_moment(ctx.today)
    visible = now < campaign.start if before else campaign.start <= now < campaign.end
    return {"name": campaign.name, "start": int(campaign.start.timestamp() * 1000),
            "end": int(campaign.end.timestamp() * 1000), "visible": visible}


def _build_moment(today: date) -> datetime:
    """The build date as the moment campaigns are judged at: midnight UTC."""
    return datetime.combine(today, datetime.min.time(), timezone.utc)


def format_remaining(seconds: int) -> str:
    """Time left as page.js's mfFormatRemaining shows it: '3天 04:05:06' or '04:05:06'."""
    seconds = max(0, seconds)
    days, clock = seconds // 86400, f"{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{days}天 {clock}" if days else clock


class CampaignBannerBlock(Block):
    """The campaign's banner, linking to its landing page; shown only during the campaign."""

    type: Literal["campaign-banner"]
    campaign: CampaignId

    def page_data(self, ctx: PlanContext) -> dict[str, Any]:
        campaign = next(c for c in _required(ctx).campaigns if c.id == self.campaign)
        return {**_campaign_data(ctx, self.campaign), "kind": "banner", "image": ctx.asset(campaign.banner),
                "link": ctx.link(Link(page=campaign.landing))}


class CountdownBlock(Block):
    """Time left until the campaign starts (shown before it) or ends (shown during it)."""

    type: Literal["countdown"]
    campaign: CampaignId
    to: Literal["start", "end"] = "end"
    label: ShortText | None = Field(None, description="default: '距开始' or '距结束'")

    def page_data(self, ctx: PlanContext) -> dict[str, Any]:
        data = _campaign_data(ctx, self.campaign, before=self.to == "start")
        now = _build_moment(ctx.today).timestamp() * 1000
        remaining = format_remaining(int((data[self.to] - now) // 1000)) if data["visible"] else ""
        return {**data, "kind": "countdown", "to": self.to, "target": data[self.to],
                "label": self.label or ("距开始" if self.to == "start" else "距结束"), "remaining": remaining}


BLOCK_TYPES = [
    BlockType(name="campaign-banner", model=CampaignBannerBlock, template="blocks/campaign-banner.axml",
              style="promotion/promotion.acss", script=SCRIPT, on_show="mfStartCampaigns",
              on_hide="mfStopCampaigns", requires_section="promotion",
              description="a campaign's banner, shown only while it runs"),
    BlockType(name="countdown", model=CountdownBlock, template="blocks/countdown.axml",
              style="promotion/promotion.acss", script=SCRIPT, on_show="mfStartCampaigns",
              on_hide="mfStopCampaigns", requires_section="promotion",
              description="time left until a campaign starts or ends"),
]


@hookimpl
def mpforge_spec_sections() -> dict[str, type]:
    return {"promotion": PromotionSection}


@hookimpl
def mpforge_block_types() -> list[BlockType]:
    return BLOCK_TYPES


@hookimpl
def mpforge_template_dirs() -> list[Path]:
    return [TEMPLATES]


@hookimpl
def mpforge_reference_targets(spec: ValidSpec) -> dict[str, list[str]]:
    section = _section(spec)
    return {"campaign": [c.id for c in section.campaigns] if section else []}


@hookimpl
def mpforge_validate(spec: ValidSpec) -> list[Problem]:
    section = _section(spec)
    if section is None:
        return []
    problems = []
    page_ids = [p.id for p in spec.pages]
    for page_id in section.share.pages:
        if page_id not in page_ids:
            problems.append(spec.problem(("promotion", "share", "pages", page_id), f"no page with id '{page_id}'",
                                         hint=f"pages: {', '.join(page_ids)}"))
    problems += spec.duplicate_ids(section.campaigns, ("promotion", "campaigns"), "campaign id")
    problems += spec.duplicate_ids(section.entry_points, ("promotion", "entry_points"), "entry point id")
    now = _build_moment(spec.today)
    for i, campaign in enumerate(section.campaigns):
        if campaign.end < now:
            problems.append(spec.problem(("promotion", "campaigns", i, "end"),
                                         f"campaign '{campaign.id}' ended on {campaign.end.isoformat()}; "
                                         "its blocks will stay hidden", severity="warning"))
    for i, entry in enumerate(section.entry_points):
        if len(entry.description) > QR_DESCRIBE_MAX:
            problems.append(spec.problem(
                ("promotion", "entry_points", i, "description"),
                f"{len(entry.description)} characters; Alipay's mini-program code API "
                f"(alipay.open.app.qrcode.create, describe) takes at most {QR_DESCRIBE_MAX}",
                hint="shorten it, or its code cannot be created", severity="warning", rule="review/qr-describe"))
    if section.entry_points and not spec.model.app.appid:
        problems.append(spec.problem(("promotion", "entry_points"), "entry point QR codes need app.appid",
                                     hint="set app.appid to the mini-program's 16-digit app id"))
    return problems


@hookimpl
def mpforge_page_json(page_json: dict[str, Any], page: PagePlan, spec: ValidSpec) -> None:
    section = _section(spec)
    if section is None:
        return
    share = section.share
    override = share.pages.get(page.id)
    title = (override and override.title) or share.title
    desc = (override and override.desc) or share.desc
    image = (override and override.image) or share.image
    if title:
        page.share["title"] = title
    if desc:
        page.share["desc"] = desc
    if image:
        page.share["imageUrl"] = asset_url(image)
    page.share["channel"] = share.channel


@hookimpl
def mpforge_app_script(spec: ValidSpec, render: Render) -> AppScript | None:
    if _section(spec) is None:
        return None
    return AppScript(members=render("promotion/app.js", backend=spec.backend_url is not None),
                     on_show="mfAttribute",
                     on_page_load="mfAttributePage")


@hookimpl
def mpforge_app_json(app_json: dict[str, Any], mini_project: dict[str, Any], spec: ValidSpec) -> None:
    if _section(spec) is not None:  # the report, CSV and QR codes are not part of the app
        mini_project["uploadExclude"].append("promotion/**")


@hookimpl
def mpforge_services(plan: AppPlan, spec: ValidSpec, render: Render) -> dict[str, str]:
    section = _section(spec)
    if section is None:
        return {}
    files = {"promotion/report.json": json.dumps(_report(section, spec), ensure_ascii=False, indent=2) + "\n"}
    appid = spec.model.app.appid
    if section.entry_points and appid:  # mpforge_validate requires an appid with entry points
        files["promotion/entry-points.csv"] = _entry_points_csv(section.entry_points, appid)
        folder = cache_folder(spec.state_dir, sandbox=False)
        try:
            codes = read_cache(folder)
        except ValueError:
            codes = {}  # an unreadable cache leaves the drafts; `mpforge qrcodes` reports it
        for entry in section.entry_points:
            png = cached_png(folder, codes, CodeRequest.for_entry(appid, entry))
            files[f"promotion/qr/{entry.id}.svg"] = (code_svg(png, entry.name) if png is not None
                                                     else qr_svg(launch_url(appid, entry), draft=True))
    return files


def launch_url(appid: str, entry: EntryPoint) -> str:
    """The Alipay URL that opens `entry.page` with its query; what its QR code encodes."""
    return (f"alipays://platformapi/startapp?appId={appid}"
            f"&page={quote(page_path(entry.page), safe='')}&query={quote(entry.full_query, safe='')}")


DRAFT_LABEL = "样稿 DRAFT · 非支付宝小程序码"


def qr_svg(url: str, *, draft: bool = False) -> str:
    """A QR code as SVG (deterministic: same URL, same bytes).

    A `draft` code encodes the alipays:// launch URL, which phone cameras and WeChat
    cannot open: it is for proofs only, so it carries a visible label. The printable
    code is the Alipay mini-program code made by alipay.open.app.qrcode.create, which
    `mpforge qrcodes` fetches; once it has, the build shows that code instead (codes.py).
    """
    buffer = io.BytesIO()
    # An explicit white background: transparent QR codes fail on dark backgrounds (and decoders).
    segno.make(url, error="m", micro=False).save(buffer, kind="svg", scale=8, border=4, xmldecl=False,
                                                 dark="#000", light="#fff")
    svg = buffer.getvalue().decode("utf-8")
    if draft:
        svg = _label(svg, DRAFT_LABEL)
    return svg + "\n"


def _label(svg: str, text: str) -> str:
    """The SVG with a band below the code holding `text` (the code's own pixels unchanged)."""
    match = re.match(r'<svg xmlns="http://www.w3.org/2000/svg" width="(\d+)" height="(\d+)"', svg)
    if match is None:
        raise ValueError("unexpected SVG header from segno")
    width, height = int(match.group(1)), int(match.group(2))
    band = 40
    svg = svg.replace(f'height="{height}"', f'height="{height + band}"', 1)
    label = (f'<rect x="0" y="{height}" width="{width}" height="{band}" fill="#fff"/>'
             f'<text x="{width // 2}" y="{height + 27}" font-family="sans-serif" font-size="18" '
             f'text-anchor="middle" fill="#c00">{text}</text>')
    return svg.replace("</svg>", label + "</svg>")


def _entry_points_csv(entries: list[EntryPoint], appid: str) -> str:
    """What the Alipay QR-code API (alipay.open.app.qrcode.create) needs per entry point."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "name", "kind", "store", "url_param", "query_param", "describe", "launch_url", "qr_svg"])
    for entry in entries:
        writer.writerow([entry.id, entry.name, entry.kind, entry.store or "", page_path(entry.page),
                         entry.full_query, entry.description, launch_url(appid, entry),
                         f"promotion/qr/{entry.id}.svg"])
    return out.getvalue()


def _report(section: PromotionSection, spec: ValidSpec) -> dict[str, Any]:
    now = _build_moment(spec.today)
    return {
        "search_keywords": section.search_keywords,
        "campaigns": [{"id": c.id, "name": c.name, "start": c.start.isoformat(), "end": c.end.isoformat(),
                       "status": "ended" if c.end < now else "upcoming" if c.start > now else "running"}
                      for c in section.campaigns],
        "entry_points": [{"id": e.id, "channel": e.channel, "page": e.page, "query": e.full_query}
                         for e in section.entry_points],
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


@hookimpl
def mpforge_sandbox_routes() -> list[Route]:
    from .serve import SANDBOX_ROUTES

    return list(SANDBOX_ROUTES)
