"""Stage 3, plan: the validated spec -> what to generate (pages, their data, app config).

The plan holds plain dicts for every JSON output and each page's runtime `data`, so
render only has to format them. Links and asset paths are resolved here, once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel

from .errors import UserError
from .hooks import Hooks, plugin_output_to_stderr
from .model import (
    ASSETS_OUT,
    PRIVACY_PAGE_ID,
    AppPlan,
    Block,
    PagePlan,
    PlacedBlock,
    ValidSpec,
    asset_url,
    format_path,
    page_path,
)
from .spec_models import AssetPath, Link, Page, Store
from .validate import asset_references

_PLAIN = frozenset({str, int, float, bool})  # exact types: AssetPath and enums subclass str


class PlanContext:
    """What a block's `page_data` needs: link and asset resolution, store lookup
    (the implementation of `model.PlanContext`)."""

    def __init__(self, spec: ValidSpec):
        self.spec = spec
        self.today = spec.today
        tabbar = spec.model.tabbar
        self.tab_pages = {item.page for item in tabbar.items} if tabbar else set()
        self._stores = {s.id: s for s in spec.model.merchant.stores}
        # Where pages that collect personal data link, once for the app (None without one).
        has_policy = any(page.id == PRIVACY_PAGE_ID for page in spec.pages)
        self.privacy_link = self.link(Link(page=PRIVACY_PAGE_ID)) if has_policy else None

    def store(self, store_id: str) -> Store:
        return self._stores[store_id]

    def asset(self, value: str) -> str:
        """Runtime path of an asset (absolute in the package), or the https URL as given."""
        return asset_url(value) if isinstance(value, AssetPath) else value

    def link(self, link: Link) -> dict[str, Any]:
        """A link as the runtime `openLink` in utils/mpforge.js expects it."""
        if link.page:
            url = "/" + page_path(link.page)
            if link.page in self.tab_pages:
                return {"kind": "tab", "url": url}
            return {"kind": "page", "url": f"{url}?{link.query}" if link.query else url}
        if link.phone:
            return {"kind": "phone", "number": link.phone}
        if link.url:
            return self.web(link.url)
        store = self.store(link.store)  # type: ignore[arg-type]
        # Numbers: my.openLocation takes Number coordinates (the docs changed from String in 2022).
        return {"kind": "map", "latitude": store.lat, "longitude": store.lng,
                "name": store.name, "address": store.address}

    def web(self, url: str) -> dict[str, Any]:
        """A link that opens an https page in the shared web-view page."""
        return {"kind": "page", "url": f"/pages/webview/webview?url={quote(url, safe='')}"}

    def to_data(self, value: Any) -> Any:
        """Convert a model to JSON-ready data, resolving links and assets; drops a block's `type`."""
        if value is None or type(value) in _PLAIN:  # most values: skip the checks below
            return value
        if isinstance(value, Link):
            return self.link(value)
        if isinstance(value, BaseModel):
            return {name: self.to_data(getattr(value, name)) for name in type(value).model_fields
                    if not (name == "type" and isinstance(value, Block))}
        if isinstance(value, (list, tuple)):
            return [self.to_data(v) for v in value]
        if isinstance(value, dict):
            return {k: self.to_data(v) for k, v in value.items()}
        if isinstance(value, AssetPath):
            return self.asset(value)
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, (date, datetime)):
            return value.isoformat()
        return value


@dataclass
class PlanMemo:
    """The plan stage's part of a BuildSession: the last build's page plans.

    A page's plan depends on its validated model (the same object while the page's text
    is unchanged, see validate), on the project, the rest of the spec (tab pages,
    stores, plugin sections, the other pages' ids), the build date and the plugins; a
    plan is reused only when all of that is the same. `plugins` keeps the plugin
    modules alive so that their ids in `context` stay theirs.
    """

    context: tuple[Any, ...] | None = None
    plugins: list[object] = field(default_factory=list)
    pages: dict[int, tuple[Page, PagePlan]] = field(default_factory=dict)


def plan_app(spec: ValidSpec, hooks: Hooks, memo: PlanMemo | None = None) -> AppPlan:
    """What to generate; plugins adjust app.json and each page's JSON through `hooks`."""
    memo = memo or PlanMemo()
    model = spec.model
    ctx = PlanContext(spec)
    with plugin_output_to_stderr():  # blocks' page_data is plugin code
        pages = _plan_pages(spec, ctx, hooks, memo)

    app_json: dict[str, Any] = {
        "pages": [p.path for p in pages],
        "window": {"defaultTitle": model.app.name, **model.app.window.to_alipay()},
    }
    if model.tabbar:
        tabbar = model.tabbar
        app_json["tabBar"] = {
            "textColor": tabbar.text_color,
            "selectedColor": tabbar.selected_color or model.app.theme.primary,
            "backgroundColor": tabbar.background_color,
            "items": [{"pagePath": page_path(i.page), "name": i.text,
                       "icon": ctx.asset(i.icon).lstrip("/"), "activeIcon": ctx.asset(i.active_icon).lstrip("/")}
                      for i in tabbar.items],
        }
    # The build's bookkeeping files are JSON, which the IDE would upload as source.
    mini_project: dict[str, Any] = {"format": 2, "compileOptions": {"component2": True},
                                    "uploadExclude": [".mpforge*"]}
    hooks.app_json(app_json, mini_project, spec)

    used = {placed.block_type.name for page in pages for placed in page.blocks}
    return AppPlan(
        spec=spec,
        app_json=app_json,
        mini_project=mini_project,
        global_data={"appName": model.app.name, "version": model.app.version},
        pages=pages,
        block_types_used=[bt for name, bt in spec.block_types.items() if name in used],
        assets=_assets(spec),
    )


def _plan_pages(spec: ValidSpec, ctx: PlanContext, hooks: Hooks, memo: PlanMemo) -> list[PagePlan]:
    plugins = hooks.modules()
    rest = {key: value for key, value in spec.loaded.data.items() if key != "pages"}
    context = (str(spec.root), json.dumps(rest, sort_keys=True, default=str), spec.today,
               tuple(p.id for p in spec.pages), tuple(id(plugin) for plugin in plugins))
    known = memo.pages if memo.context == context else {}
    plans = {}
    for i, page in enumerate(spec.pages):
        entry = known.get(id(page))
        plans[id(page)] = entry if entry and entry[0] is page else (page, _plan_page(i, page, spec, ctx, hooks))
    memo.context, memo.plugins, memo.pages = context, plugins, plans
    return [plans[id(page)][1] for page in spec.pages]


def _plan_page(index: int, page: Page, spec: ValidSpec, ctx: PlanContext, hooks: Hooks) -> PagePlan:
    placed = [PlacedBlock(f"b{i}", spec.block_types[block.type], block) for i, block in enumerate(page.blocks)]
    plan = PagePlan(
        id=page.id,
        title=page.title,
        json={"defaultTitle": page.title, **page.window.to_alipay(), "usingComponents": {}},
        data={p.key: _block_data(index, i, p, spec, ctx, hooks) for i, p in enumerate(placed)},
        blocks=placed,
        share={"title": page.title, "desc": spec.model.app.description or spec.model.merchant.name,
               # No leading '/': Alipay's share path is relative to the package root.
               "path": page_path(page.id)},
    )
    if spec.model.merchant.logo:  # the merchant's logo is the share card's picture unless a plugin sets one
        plan.share["imageUrl"] = ctx.asset(spec.model.merchant.logo)
    # A page whose blocks collect personal data links the privacy policy (page.axml's footer).
    if ctx.privacy_link and page.id != PRIVACY_PAGE_ID and any(p.block_type.collects for p in placed):
        plan.data["mfPrivacy"] = ctx.privacy_link
    hooks.page_json(plan.json, plan, spec)
    return plan


def _block_data(page_index: int, block_index: int, placed: PlacedBlock, spec: ValidSpec,
                ctx: PlanContext, hooks: Hooks) -> dict[str, Any]:
    """A block's page data; a failure names the block's plugin and, for spec pages, where it is."""
    try:
        data = placed.block.page_data(ctx)
        if not isinstance(data, dict):
            raise TypeError(f"page_data returned {type(data).__name__}, expected a dict")
    except UserError:
        raise
    except (Exception, SystemExit) as exc:  # sys.exit() in a plugin would end mpforge, maybe with 0
        where = ""
        if page_index < len(spec.model.pages):
            path = ("pages", page_index, "blocks", block_index)
            mark = spec.loaded.mark(path)
            where = f"{spec.loaded.display_name}:{mark.line}:{mark.column}: {format_path(path)}" if mark else ""
        raise hooks.block_failure(placed.block_type.name, exc, where) from exc
    return data


def _assets(spec: ValidSpec) -> dict[str, Path]:
    """The files the spec uses, by output path. Only those: the folder may hold anything
    else (originals, a linked folder of other files), none of which belongs in the
    package. Validation made sure each is a readable file inside the project."""
    folder = spec.assets_dir
    if folder is None:
        return {}
    return {f"{ASSETS_OUT}/{ref}": folder / ref for _, ref in sorted(asset_references(spec), key=lambda use: use[1])}
