"""ordering: customers order from the catalogue and pay with Alipay (点单).

The back end: the `ordering:` spec section (models.py), pricing on the server in
integer fen (pricing.py), orders with a state machine in the plugin's own table
(orders.py, Alembic branch `versions/`), the routes that create an order with its
Alipay trade and take Alipay's signed payment notification (serve.py), the sandbox's
trade methods and buyer's payment (sandbox.py), and the staff's order board (board*.py,
static/).

The mini-program's side: the pages `ordering.pages` names (menu, confirm, order, my
orders), each one block of blocks.py, and `services/ordering.js` (the cart and the
chosen store and table on the device, orders through utils/backend.js, my.tradePay),
from templates/ (docs/ordering.md).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from builder.plugin_api import (
    AppPlan,
    BlockType,
    Page,
    Problem,
    Render,
    ValidSpec,
    hookimpl,
    page_path,
)

from .blocks import (
    BLOCK_TYPES,
    LOCATION_PURPOSE,
    MyOrdersBlock,
    OrderConfirmBlock,
    OrderDetailBlock,
    OrderMenuBlock,
)
from .models import OrderingSection
from .pricing import fen

if TYPE_CHECKING:  # the back end's types: a build never loads them
    from collections.abc import Sequence

    from starlette.routing import BaseRoute, Route

    from builder.serve.plugin_api import Endpoint, PeriodicTask, SandboxMethod
    from builder.serve.storage import AlipayUser, Storage
    from builder.spec_models import CatalogueProduct

__version__ = "0.2.0"
__all__ = ["OrderingSection"]
MIGRATIONS = Path(__file__).parent / "versions"
TEMPLATES = Path(__file__).parent / "templates"
TABLE = re.compile(r"[A-Za-z0-9_-]{1,32}")  # as the back end takes a table (api_models.OrderRequest)
MODE_NAMES = {"dine_in": "堂食", "takeaway": "自取"}
# The order pages pull down to refresh, which Alipay does only while a page may bounce
# (the app's window may turn bounce off).
REFRESHING = {"pull_refresh": True, "bounce": True}


@hookimpl
def mpforge_spec_sections() -> dict[str, type]:
    return {"ordering": OrderingSection}


@hookimpl
def mpforge_block_types() -> list[BlockType]:
    return BLOCK_TYPES


@hookimpl
def mpforge_template_dirs() -> list[Path]:
    return [TEMPLATES]


@hookimpl
def mpforge_pages(spec: ValidSpec) -> list[Page]:
    section: OrderingSection | None = spec.section("ordering")
    if section is None:
        return []
    pages = section.pages
    added = [Page(id=pages.menu.id, title=pages.menu.title, blocks=[OrderMenuBlock(type="order-menu")]),
             Page(id=pages.confirm.id, title=pages.confirm.title, blocks=[OrderConfirmBlock(type="order-confirm")]),
             Page.model_validate({"id": pages.order.id, "title": pages.order.title, "window": REFRESHING,
                                  "blocks": [OrderDetailBlock(type="order-detail")]})]
    if pages.orders is not None:
        added.append(Page.model_validate({"id": pages.orders.id, "title": pages.orders.title, "window": REFRESHING,
                                          "blocks": [MyOrdersBlock(type="my-orders")]}))
    return added


@hookimpl
def mpforge_app_json(app_json: dict[str, Any], mini_project: dict[str, Any], spec: ValidSpec) -> None:
    """The menu's my.getLocation, declared with its purpose (app.json `permission`, shown when
    Alipay asks the customer)."""
    if spec.section("ordering") is not None:
        app_json.setdefault("permission", {})["scope.userLocation"] = {"desc": LOCATION_PURPOSE}


@hookimpl
def mpforge_validate(spec: ValidSpec) -> list[Problem]:
    section: OrderingSection | None = spec.section("ordering")
    if section is None:
        return []
    problems = spec.duplicate_ids(section.hours, ("ordering", "hours"), "store's hours", key="store")
    problems += _page_problems(spec, section)
    if spec.model.catalogue is None:
        problems.append(spec.problem(("ordering",), "ordering needs a catalogue to order from, and the spec has none",
                                     hint="add a top-level 'catalogue:' with categories and products"))
    if spec.backend_url is None:
        problems.append(spec.problem(("ordering",), "orders are priced and paid through the merchant back end, and "
                                                    "none is set",
                                     hint="add a top-level 'backend:' with 'base_url: https://...' (mpforge serve)"))
    if not spec.model.merchant.stores:
        problems.append(spec.problem(("ordering",), "ordering needs a store to order at, and merchant.stores is empty",
                                     hint="add the shop under merchant.stores"))
    return problems


def _page_problems(spec: ValidSpec, section: OrderingSection) -> list[Problem]:
    """The plugin's pages need ids of their own; a table sticker leading to the menu must
    name a store and a table the menu can use; delivery has no page yet."""
    problems = []
    named = [(name, options.id) for name, options in section.pages if options is not None]
    for i, (name, page_id) in enumerate(named):
        if any(page_id == other for _, other in named[:i]):
            problems.append(spec.problem(("ordering", "pages", name, "id"),
                                         f"page id '{page_id}' is used by two ordering pages",
                                         hint="give the menu, confirm, order and orders pages different ids"))
    if section.delivery is not None:
        problems.append(spec.problem(("ordering", "delivery"), "the ordering pages offer dine-in and takeaway only: "
                                                               "they cannot take a delivery address yet",
                                     hint="customers of the mini-program cannot choose delivery; remove "
                                          "'delivery' until they can", severity="warning"))
    stores = {s.id for s in spec.model.merchant.stores}
    promotion = spec.section("promotion")
    for i, entry in enumerate(getattr(promotion, "entry_points", None) or []):
        if entry.page != section.pages.menu.id:
            continue
        query = dict(pair.split("=", 1) for pair in entry.query.split("&") if "=" in pair)
        path = ("promotion", "entry_points", i, "query")
        store = entry.store or query.get("store")
        if store is not None and store not in stores:
            problems.append(spec.problem(path, f"the menu cannot order at store '{store}': merchant.stores has "
                                               f"{', '.join(sorted(stores)) or 'no store'}",
                                         hint="use the id of a store in merchant.stores"))
        table = query.get("table")
        if table is not None and not TABLE.fullmatch(table):
            problems.append(spec.problem(path, f"table '{table}' is not 1 to 32 letters, digits, '-' or '_', which "
                                               "is what an order's table may be",
                                         hint="name the table e.g. 'A12'"))
        if table is not None and "dine_in" not in section.modes:
            problems.append(spec.problem(path, "this table sticker names a table, but ordering.modes has no dine_in",
                                         hint="add dine_in to ordering.modes, or leave the table out",
                                         severity="warning"))
    return problems


@hookimpl
def mpforge_services(plan: AppPlan, spec: ValidSpec, render: Render) -> dict[str, str]:
    section: OrderingSection | None = spec.section("ordering")
    if section is None or spec.backend_url is None:  # mpforge_validate reports a missing back end
        return {}
    pages = section.pages
    config = {
        "appid": spec.model.app.appid or "",
        "stores": [{"id": s.id, "name": s.name, "lat": s.lat, "lng": s.lng} for s in spec.model.merchant.stores],
        "modes": [{"id": m, "name": MODE_NAMES[m]} for m in section.modes],
        "packagingFee": fen(section.packaging_fee), "minimum": fen(section.minimum),
        "payWithinMinutes": section.pay_within_minutes,  # an unanswered attempt's key is kept this long
        "pages": {"menu": _link(spec, pages.menu.id), "confirm": f"/{page_path(pages.confirm.id)}",
                  "order": f"/{page_path(pages.order.id)}"},
    }
    return {"services/ordering.js": render("ordering/service.js", config=config)}


def _link(spec: ValidSpec, page_id: str) -> dict[str, str]:
    """A link to a page as utils/mpforge.js's openLink takes it (a tab page is switched to)."""
    tabs = {item.page for item in spec.model.tabbar.items} if spec.model.tabbar else set()
    return {"kind": "tab" if page_id in tabs else "page", "url": f"/{page_path(page_id)}"}


# --- the back end (`mpforge serve`): imported only when the back end calls -----------------

@hookimpl
def mpforge_serve_migrations() -> list[Path]:
    return [MIGRATIONS]


@hookimpl
def mpforge_serve_routes() -> list[Endpoint]:
    from .serve import ENDPOINTS

    return list(ENDPOINTS)


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
    from .sandbox import SANDBOX_METHODS

    return dict(SANDBOX_METHODS)


@hookimpl
def mpforge_sandbox_routes() -> list[Route]:
    from .sandbox import SANDBOX_ROUTES

    return list(SANDBOX_ROUTES)


@hookimpl
def mpforge_serve_pages() -> list[BaseRoute]:
    from .board import Board

    return Board().routes()


@hookimpl
def mpforge_serve_tasks() -> list[PeriodicTask]:
    from .serve import TASKS

    return list(TASKS)


@hookimpl
def mpforge_serve_sold_out(storage: Storage, appid: str, products: Sequence[CatalogueProduct]) -> list[str]:
    from .serve import products_gone

    return products_gone(storage, appid, products)
