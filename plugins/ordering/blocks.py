"""The ordering pages' blocks: the menu (category sidebar, products, options sheet, cart),
the confirm page, an order's page and "my orders".

Their data is the build's view (the catalogue's products with prices in fen for the
cart's display total); services/ordering.js keeps the cart and the chosen store and
table on the device, refreshes prices and sold-out marks from the runtime content, and
asks the back end for orders. The server prices every order itself (pricing.py); the
totals shown before paying are for display only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from builder.plugin_api import Block, BlockType, ShortText

from .pricing import fen, yuan_text

if TYPE_CHECKING:
    from builder.plugin_api import PlanContext
    from builder.spec_models import CatalogueProduct

SCRIPTS = "ordering"  # the folder of the page scripts in templates/
STYLE = "ordering/ordering.acss"
# What ordering collects and the back end keeps (the privacy policy lists it): the user id
# the session holds, and the orders (privacy.py: what deleting keeps).
COLLECTS = ("支付宝用户标识（user_id 或 open_id）: 创建订单、发起支付并查询您的订单",
            "订单记录（商品、金额、门店、桌号、时间）: 制作和交付您的订单、退款；"
            "您删除数据后，订单只保留不含您身份的记录，供商家记账")
# The menu asks for the location (my.getLocation) to choose the nearest store; app.json
# declares it too (permission scope.userLocation, the plugin's mpforge_app_json).
LOCATION_PURPOSE = "为您推荐最近的门店"
MENU_COLLECTS = (f"位置信息: {LOCATION_PURPOSE}",)


def _yuan(amount: int) -> str:
    return f"¥{yuan_text(amount)}"


def menu_product(ctx: PlanContext, product: CatalogueProduct) -> dict[str, Any]:
    """A catalogue product as the menu shows it, with prices in fen for the cart's total."""
    price = fen(product.price)
    return {"id": product.id, "name": product.name, "price": price, "price_text": _yuan(price),
            "image": ctx.asset(product.image) if product.image else None, "tag": product.tag,
            "description": product.description, "sold_out": product.sold_out, "stores": product.stores,
            "hidden": False, "count": 0,
            "options": [{"id": o.id, "name": o.name, "multiple": o.multiple,
                         "required": o.required if o.required is not None else not o.multiple,
                         "default": o.default,
                         "choices": [{"id": c.id, "name": c.name, "price": fen(c.price),
                                      "price_text": f"+{_yuan(fen(c.price))}" if c.price else "", "on": False}
                                     for c in o.choices]} for o in product.options]}


def _empty_cart() -> dict[str, Any]:
    return {"lines": [], "count": 0, "total_text": _yuan(0)}


class OrderMenuBlock(Block):
    """The menu: a category sidebar, the catalogue's products with 加 buttons, an options
    sheet and a cart bar. Opened from a table sticker (`?store=<id>&table=<no>`) it
    orders for that table; otherwise it picks the nearest store."""

    type: Literal["order-menu"]
    notice: ShortText | None = Field(None, description="a line over the menu, e.g. 'scan, sit down, order'")

    def page_data(self, ctx: PlanContext) -> dict[str, Any]:
        catalogue = ctx.spec.model.catalogue
        assert catalogue is not None  # the ordering section's rule: no ordering without a catalogue
        sections = [{"id": c.id, "anchor": f"mfc-{c.id}", "name": c.name, "hidden": False,
                     "products": [menu_product(ctx, p) for p in catalogue.products if p.category == c.id]}
                    for c in catalogue.categories]
        sections = [s for s in sections if s["products"]]
        first = ctx.spec.model.merchant.stores[0]
        return {"notice": self.notice, "sections": sections, "active": sections[0]["id"] if sections else "",
                "into": "", "store": {"id": first.id, "name": first.name}, "table": "", "sheet": None,
                "cart": _empty_cart(), "cart_open": False}


class OrderConfirmBlock(Block):
    """The confirm page: store, mode, table, the cart's lines, fees, total and 去支付."""

    type: Literal["order-confirm"]
    note: ShortText | None = Field(None, description="shown over the pay button, e.g. 'we call your number'")

    def page_data(self, ctx: PlanContext) -> dict[str, Any]:
        first = ctx.spec.model.merchant.stores[0]
        return {"note": self.note, "store": {"id": first.id, "name": first.name}, "modes": [], "mode": "",
                "table": "", "lines": [], "subtotal_text": _yuan(0), "packaging_text": "", "total_text": _yuan(0),
                "hint": "", "can_pay": False, "busy": False}


class OrderDetailBlock(Block):
    """One order (`?id=<order number>`): status in words, lines, total, table, 去支付 while
    unpaid; refreshed by pulling down and, gently, while the order is under way."""

    type: Literal["order-detail"]
    missing_text: ShortText = Field("没有找到这笔订单", description="shown for an id that is not the user's order")

    def page_data(self, ctx: PlanContext) -> dict[str, Any]:
        return {"missing_text": self.missing_text, "state": "loading", "order": None}


class MyOrdersBlock(Block):
    """The user's orders from the back end, newest first, each opening its page."""

    type: Literal["my-orders"]
    empty_text: ShortText = "还没有订单"

    def page_data(self, ctx: PlanContext) -> dict[str, Any]:
        return {"empty_text": self.empty_text, "state": "loading", "orders": []}


def _block(name: str, model: type[Block], description: str, collects: tuple[str, ...] = COLLECTS,
           **lifecycle: str) -> BlockType:
    return BlockType(name=name, model=model, template=f"blocks/{name}.axml", style=STYLE,
                     script=f"{SCRIPTS}/{name}.js", requires_section="ordering", collects=collects,
                     description=description, **lifecycle)


BLOCK_TYPES = [
    _block("order-menu", OrderMenuBlock, "the ordering menu: categories, products, options, cart",
           collects=MENU_COLLECTS, on_load="mfOrderMenuLoad", on_show="mfOrderMenuShow"),
    _block("order-confirm", OrderConfirmBlock, "confirm an order and pay with Alipay",
           on_show="mfOrderConfirmShow"),
    _block("order-detail", OrderDetailBlock, "one order's status and lines (?id=)",
           on_load="mfOrderLoad", on_show="mfOrderShow", on_hide="mfOrderHide"),
    _block("my-orders", MyOrdersBlock, "the user's orders", on_show="mfMyOrdersShow"),
]
