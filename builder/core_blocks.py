"""The core block types. They register through `mpforge_block_types` like any plugin's."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from .model import Block, BlockType, PlanContext, ValidSpec
from .spec_models import (
    Asset,
    Catalogue,
    CatalogueProduct,
    CategoryId,
    HttpsUrl,
    Link,
    Price,
    ProductId,
    ShortText,
    StoreId,
    StrictModel,
    Text,
    check_original_price,
)

Align = Literal["left", "center", "right"]


class BannerSlide(StrictModel):
    image: Asset
    link: Link | None = None
    alt: ShortText | None = None


class BannerBlock(Block):
    """Swiper of images, each optionally linking somewhere."""

    type: Literal["banner"]
    slides: list[BannerSlide] = Field(min_length=1, max_length=10)
    height: int = Field(300, ge=100, le=1000, description="height in rpx (750 rpx = screen width)")
    autoplay: bool = True
    interval: int = Field(4000, ge=1000, le=10000, description="milliseconds per slide")


class HeadingBlock(Block):
    type: Literal["heading"]
    text: ShortText
    subtitle: ShortText | None = None
    align: Align = "left"


class TextBlock(Block):
    type: Literal["text"]
    text: Text
    align: Align = "left"
    size: Literal["small", "normal", "large"] = "normal"


class ImageBlock(Block):
    type: Literal["image"]
    image: Asset
    link: Link | None = None
    mode: Literal["widthFix", "aspectFill", "aspectFit"] = "widthFix"
    height: int | None = Field(None, ge=40, le=2000,
                               description="height in rpx (750 rpx = screen width); needs mode aspectFill or "
                                           "aspectFit (widthFix keeps the image's own proportions)")
    rounded: bool = False

    @model_validator(mode="after")
    def _height_needs_a_cropping_mode(self) -> ImageBlock:
        if self.height is not None and self.mode == "widthFix":
            raise ValueError("'height' needs mode 'aspectFill' (crop to fill) or 'aspectFit' (fit inside); "
                             "widthFix sets the height from the image")
        return self


class ButtonBlock(Block):
    """A full-width button: go to a page, call, open a store in the map, or open a web page."""

    type: Literal["button"]
    text: ShortText
    link: Link
    style: Literal["primary", "default"] = "primary"


class GridItem(StrictModel):
    icon: Asset
    text: Annotated[str, Field(min_length=1, max_length=12)]
    link: Link | None = None


class IconGridBlock(Block):
    """Entry grid: icons with short labels."""

    type: Literal["icon-grid"]
    columns: int = Field(4, ge=3, le=5)
    items: list[GridItem] = Field(min_length=1, max_length=20)


# Editors see a plain number (no multipleOf: 3.9 is not a float multiple of 0.01);
# mpforge itself checks the two decimal places. pydantic's Decimal schema also varies
# between versions, which would make the generated schema depend on the install.
class Product(StrictModel):
    name: ShortText
    price: Price = Field(description="price in yuan")
    original_price: Price | None = Field(None, description="shown struck through; must be above price")
    image: Asset | None = None
    tag: Annotated[str, Field(min_length=1, max_length=10)] | None = None
    description: Annotated[str, Field(max_length=200)] | None = None
    link: Link | None = None

    @model_validator(mode="after")
    def _original_above_price(self) -> Product:
        check_original_price(self.price, self.original_price)
        return self


class ProductListBlock(Block):
    """Products written in the block (`items`), or taken from the catalogue: chosen
    (`products`) or a whole category (`category`)."""

    type: Literal["product-list"]
    title: ShortText | None = None
    layout: Literal["list", "grid"] = "list"
    items: list[Product] | None = Field(None, min_length=1, max_length=100, description="products written here")
    products: list[ProductId] | None = Field(None, min_length=1, max_length=100,
                                             description="catalogue products, in this order")
    category: CategoryId | None = Field(None, description="every catalogue product of this category (titled with "
                                                            "its name unless `title` is given)")

    @model_validator(mode="after")
    def _one_source(self) -> ProductListBlock:
        given = [name for name in ("items", "products", "category") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give one of 'items' (products written here), 'products' (catalogue ids) or "
                             f"'category' (a catalogue category){'; not ' + ' and '.join(given) if given else ''}")
        return self

    def page_data(self, ctx: PlanContext) -> dict[str, Any]:
        if self.items is None:
            catalogue = ctx.spec.model.catalogue
            assert catalogue is not None  # products and category are references into it
            by_id = {p.id: p for p in catalogue.products}
            chosen = ([by_id[i] for i in self.products] if self.products is not None
                      else [p for p in catalogue.products if p.category == self.category])
            # A category's list is titled with the category's name unless the block says otherwise.
            title = self.title if self.title is not None or self.category is None else next(
                c.name for c in catalogue.categories if c.id == self.category)
            return {"title": title, "items": [_listed(ctx, catalogue, p) for p in chosen]}
        data: dict[str, Any] = ctx.to_data(self)
        for item, product in zip(data["items"], self.items, strict=True):
            item["price"] = yuan(product.price)
            if product.original_price is not None:
                item["original_price"] = yuan(product.original_price)
        for unused in ("products", "category"):
            data.pop(unused, None)
        return data


def product_display(ctx: PlanContext, product: CatalogueProduct) -> dict[str, Any]:
    """A catalogue product as the blocks show it (prices as text, options with their
    surcharges)."""
    return {"id": product.id, "name": product.name, "price": yuan(product.price),
            "original_price": yuan(product.original_price) if product.original_price is not None else None,
            "image": ctx.asset(product.image) if product.image else None, "tag": product.tag,
            "description": product.description, "sold_out": product.sold_out,
            "options": [{"id": o.id, "name": o.name, "multiple": o.multiple,
                         "choices": [{"id": c.id, "name": c.name, "price_text": f"+{yuan(c.price)}" if c.price else ""}
                                     for c in o.choices]} for o in product.options]}


def _listed(ctx: PlanContext, catalogue: Catalogue, product: CatalogueProduct) -> dict[str, Any]:
    shown = product_display(ctx, product)
    del shown["options"]
    link = Link(page=catalogue.detail_page, query=f"item={product.id}") if catalogue.detail_page else None
    return {**shown, "link": ctx.link(link) if link else None}


class ProductDetailBlock(Block):
    """The catalogue product the page is opened for (`?item=<id>`): picture, prices,
    description and options. Opened without one (review opens every page), it shows
    `product`, or the first product."""

    type: Literal["product-detail"]
    product: ProductId | None = Field(None, description="shown when the page is opened without ?item=")
    missing_text: ShortText = Field("这件商品暂时找不到了", description="shown for an ?item= the catalogue lacks")

    def page_data(self, ctx: PlanContext) -> dict[str, Any]:
        catalogue = ctx.spec.model.catalogue
        assert catalogue is not None  # requires_section
        products = {p.id: product_display(ctx, p) for p in catalogue.products}
        return {"products": products, "current": products[self.product or catalogue.products[0].id],
                "missing_text": self.missing_text}


class StoreInfoBlock(Block):
    """Store cards with address, hours, a map button and a call button."""

    type: Literal["store-info"]
    title: ShortText | None = None
    stores: list[StoreId] | None = Field(None, description="store ids from merchant.stores; all stores when omitted")

    def page_data(self, ctx: PlanContext) -> dict[str, Any]:
        merchant = ctx.spec.model.merchant
        ids = self.stores if self.stores is not None else [s.id for s in merchant.stores]
        cards = []
        for store in (ctx.store(i) for i in ids):
            phone = store.phone or merchant.phone
            cards.append({
                "id": store.id, "name": store.name, "address": store.address, "hours": store.hours,
                "map": ctx.link(Link(store=store.id)),
                "call": ctx.link(Link(phone=phone)) if phone else None,
            })
        return {"title": self.title, "stores": cards}


class NoticeBarBlock(Block):
    type: Literal["notice-bar"]
    text: ShortText
    link: Link | None = None


class DividerBlock(Block):
    type: Literal["divider"]
    inset: bool = Field(False, description="indent the line from both edges")


class SpacerBlock(Block):
    type: Literal["spacer"]
    height: int = Field(32, ge=4, le=400, description="height in rpx")


class WebViewBlock(Block):
    """A web page filling the whole page (Alipay shows nothing else on a web-view page).

    Without `url` the page shows the address passed in its `url` query; the core adds
    such a page, `webview`, when any link opens a web page.
    """

    type: Literal["web-view"]
    url: HttpsUrl | None = None


# The events the app sends its back end (utils/backend.js record: openings, attributed
# visits, claims), as the privacy policy lists them.
EVENTS_COLLECTED = ("访问记录（打开小程序和领券的时间、来源渠道与入口、门店与桌号）: "
                    "统计各渠道带来的到访和领券；登录后与您的支付宝用户标识关联，您删除数据时一并删除")


class PrivacyPolicyBlock(Block):
    """The privacy policy the core adds when blocks collect personal data (BlockType.collects).
    With a back end it says how long that is kept and has buttons to see and delete the
    user's own data (utils/backend.js: GET and DELETE /me/data)."""

    type: Literal["privacy-policy"]

    def page_data(self, ctx: PlanContext) -> dict[str, Any]:
        merchant = ctx.spec.model.merchant
        purposes: dict[str, list[str]] = {}  # what is collected -> why, in the order features declare them
        backend = ctx.spec.backend_url is not None
        # With a back end, utils/backend.js records visits in the core's events table.
        for entry in collected(ctx.spec) + ([EVENTS_COLLECTED] if backend else []):
            what, _, why = entry.partition(":")
            purposes.setdefault(what.strip(), []).append(why.strip())
        return {"merchant": merchant.name, "app": ctx.spec.model.app.name, "phone": merchant.phone,
                "items": [{"what": what, "why": "；".join(filter(None, whys))} for what, whys in purposes.items()],
                "updated": ctx.today.isoformat(), "backend": backend,
                "status": "", "mine": [], "raw": ""}


def collected(spec: ValidSpec) -> list[str]:
    """The personal data the app's features collect: the `collects` of every block type
    a spec page uses, or whose section the spec has (plugins add pages from sections)."""
    used = {block.type for page in spec.model.pages for block in page.blocks}
    found: dict[str, None] = {}
    for name, block_type in spec.block_types.items():
        section_present = block_type.requires_section is not None and spec.section(block_type.requires_section)
        if name in used or section_present:
            found.update(dict.fromkeys(block_type.collects))
    return list(found)


def yuan(value: Decimal) -> str:
    """A price as the blocks show it: ¥28.00."""
    return f"¥{value:.2f}"


def _block(name: str, model: type[Block], description: str, *, style: bool = True) -> BlockType:
    return BlockType(name=name, model=model, template=f"blocks/{name}.axml",
                     style=f"blocks/{name}.acss" if style else None, description=description)


CORE_BLOCK_TYPES: list[BlockType] = [
    _block("banner", BannerBlock, "swiper of images with optional links"),
    _block("heading", HeadingBlock, "section title with optional subtitle"),
    _block("text", TextBlock, "paragraph of text"),
    _block("image", ImageBlock, "single image, optionally linked"),
    _block("button", ButtonBlock, "button opening a page, phone call, map or web page"),
    _block("icon-grid", IconGridBlock, "grid of entry icons"),
    # Both product blocks take names, prices and stock from the back end's runtime content.
    BlockType(name="product-list", model=ProductListBlock, template="blocks/product-list.axml",
              style="blocks/product-list.acss", script="blocks/products.js", on_show="mfRefreshProducts",
              description="products with price, image and tag, written here or from the catalogue"),
    BlockType(name="product-detail", model=ProductDetailBlock, template="blocks/product-detail.axml",
              style="blocks/product-detail.acss", script="blocks/products.js", on_load="mfShowProduct",
              on_show="mfRefreshProducts", requires_section="catalogue",
              description="the catalogue product named by the page's ?item="),
    _block("store-info", StoreInfoBlock, "store address, hours, map and call buttons"),
    _block("notice-bar", NoticeBarBlock, "one-line notice with optional link"),
    _block("divider", DividerBlock, "horizontal line"),
    _block("spacer", SpacerBlock, "vertical space", style=False),
    BlockType(name="web-view", model=WebViewBlock, template="blocks/web-view.axml", style="blocks/web-view.acss",
              script="blocks/web-view.js", on_load="mfLoadWebView",
              description="web page filling the page (alone on its page)"),
    # With a back end, the policy's buttons show and delete what it stores (GET/DELETE me/data).
    BlockType(name="privacy-policy", model=PrivacyPolicyBlock, template="blocks/privacy-policy.axml",
              style="blocks/privacy-policy.acss", script="blocks/privacy-policy.js",
              description="the privacy policy: what the app collects and why, and the user's own data"),
]
