"""Pydantic models of the core spec sections and the field types plugins reuse.

Every model forbids unknown keys. Field types carry their own rules (safe ids, hex
colours, safe asset paths, links) so a plugin that uses them gets the same checks and
the same cross-reference validation for free.
"""

from __future__ import annotations

import re
import typing
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    WithJsonSchema,
    model_validator,
)
from pydantic.fields import FieldInfo

ID_PATTERN = r"^[a-z][a-z0-9_-]{0,47}$"
_UNSAFE_PATH = re.compile(r"(^/)|(^[A-Za-z]:)|\\|\x00|(^|/)\.\.?(/|$)")
# The characters check.paths_safe allows in output paths (Alipay's tools take no others).
_FILE_NAME = re.compile(r"^[A-Za-z0-9_\-.@]+$")
MAX_NAME_BYTES = 255  # a file or folder name, on every common file system
# Device names on Windows: no file or folder there can have them, whatever the extension
# (con, aux.png), so a package holding one cannot be unpacked or checked out there.
WINDOWS_RESERVED = frozenset({"con", "prn", "aux", "nul",
                              *(f"{port}{n}" for port in ("com", "lpt") for n in range(10))})


def field_description(info: FieldInfo | None) -> str | None:
    """A field's description, looking inside Optional[Annotated[..., Field(description=...)]]."""
    if info is None:
        return None
    if info.description:
        return info.description
    pending = [info.annotation]
    while pending:
        annotation = pending.pop()
        for arg in typing.get_args(annotation):
            if isinstance(arg, FieldInfo) and arg.description:
                return arg.description
            pending.append(arg)
    return None


class StrictModel(BaseModel):
    """Base of every spec model: unknown keys are errors, values are not coerced loosely."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


Id = Annotated[str, Field(pattern=ID_PATTERN, title="id",
                          description="lower-case letters, digits, '-' and '_'; starts with a letter")]


def _windows_name(value: str) -> str:
    if value.split(".", 1)[0].lower() in WINDOWS_RESERVED:
        raise ValueError(f"{value!r} is a reserved file name on Windows, where no file or folder can have it; "
                         "choose another name")
    return value


# A page's id names its folder (pages/ID/ID.axml).
PageName = Annotated[Id, AfterValidator(_windows_name)]
Color = Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$", title="colour", description="hex colour, e.g. '#1677ff'")]
Text = Annotated[str, Field(min_length=1, max_length=2000)]
ShortText = Annotated[str, Field(min_length=1, max_length=80)]
Phone = Annotated[str, Field(pattern=r"^\+?[0-9][0-9 \-]{2,19}$", title="phone number",
                             description="digits, spaces, '-', optional leading '+'")]
HttpsUrl = Annotated[str, Field(pattern=r"^https://[^\s\"'<>]+$", max_length=2000, title="https URL",
                                description="an https:// address")]


# Reference markers: validators return these str subclasses so the validate stage can
# find every reference in any model (core or plugin) and check that its target exists.
class AssetPath(str):
    """A file inside the project's assets folder, as written in the spec."""


class WebUrl(str):
    """An https page that opens in the shared web-view page (which the core then adds)."""


class Ref(str):
    """An id pointing at something defined elsewhere in the spec (a page, a coupon...).

    Subclass it with a `kind`; the plugin defining that kind returns its ids from
    `mpforge_reference_targets`, and the core checks every reference against them.
    """

    kind: ClassVar[str] = ""
    provided_by: ClassVar[str] = "core"  # the plugin that must be enabled for this kind
    defined_in: ClassVar[str] = ""  # where such ids are defined, for messages


class PageRef(Ref):
    kind = "page"


class StoreRef(Ref):
    kind = "store"
    defined_in = "merchant.stores"


class ProductRef(Ref):
    kind = "product"
    defined_in = "catalogue.products"


class CategoryRef(Ref):
    kind = "category"
    defined_in = "catalogue.categories"


def ref_field(ref: type[Ref], description: str) -> Any:
    """The field type of a reference: an id checked at build time against `ref.kind` targets."""
    return Annotated[Id, AfterValidator(ref), Field(title=f"{ref.kind} id", description=description)]


# Written out rather than made with ref_field, so that type checkers see real types.
PageId = Annotated[Id, AfterValidator(PageRef), Field(title="page id", description="id of a page")]
StoreId = Annotated[Id, AfterValidator(StoreRef),
                    Field(title="store id", description="id of a store in merchant.stores")]
ProductId = Annotated[Id, AfterValidator(ProductRef),
                      Field(title="product id", description="id of a product in catalogue.products")]
CategoryId = Annotated[Id, AfterValidator(CategoryRef),
                       Field(title="category id", description="id of a category in catalogue.categories")]


WebPage = Annotated[HttpsUrl, AfterValidator(WebUrl),
                    Field(title="web page", description="an https:// page, opened inside the mini-program")]


def _relative_path(value: str) -> str:
    if not value or _UNSAFE_PATH.search(value):
        raise ValueError("must be a relative path inside the project (no '..', no leading '/', "
                         "no backslashes or drive letters)")
    return value


def _folder(value: str) -> str:
    for name in _relative_path(value).split("/"):
        if len(name.encode("utf-8")) > MAX_NAME_BYTES:
            raise ValueError(f"folder name is {len(name.encode('utf-8'))} bytes, over the {MAX_NAME_BYTES} byte limit")
    return value


_REMOTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_HTTPS = re.compile(r"^https://[^\s\"'<>]+$")


def _asset_path(value: str) -> str:
    if _REMOTE.match(value):
        # Remote images are allowed as-is, over https only (Alipay refuses plain http).
        if not value.startswith("https://"):
            raise ValueError("a remote file must be an https:// address")
        if not _HTTPS.match(value):
            raise ValueError("not a valid https:// address (no spaces, quotes or '<>')")
        return value
    return AssetPath(_asset_file(_relative_path(value)))


def _asset_file(value: str) -> str:
    """A file the build copies into the package: each part of its path must be a name
    every file system and Alipay's tools take, found where the spec says (not a hidden
    file, which the project's tools keep there: .git, .env, editor backups)."""
    for name in value.split("/"):
        if not name:
            raise ValueError("empty folder name in the path (a '//' or a trailing '/'); write 'folder/file.png'")
        if name.startswith("."):
            raise ValueError(f"hidden files are not assets: {name!r} starts with '.'")
        if not _FILE_NAME.match(name):
            raise ValueError(f"{name!r} has a character outside ASCII letters, digits, '-', '_', '.' and '@', "
                             "which the package's file names must keep to; rename the file")
        if len(name) > MAX_NAME_BYTES:
            raise ValueError(f"file or folder name is {len(name)} bytes, over the {MAX_NAME_BYTES} byte limit")
        _windows_name(name)
    return value


Asset = Annotated[str, AfterValidator(_asset_path),
                  Field(title="asset",
                        description="file in the assets folder (e.g. 'banner/spring.jpg') or https:// URL")]


class Link(StrictModel):
    """Where a tap goes. Exactly one target; a plain string is a page id."""

    page: PageId | None = Field(None, description="page id to open (tab pages use switchTab)")
    query: str | None = Field(None, pattern=r"^[A-Za-z0-9_\-.~=&%]*$", max_length=200,
                              description="query string for a page link, e.g. 'cat=coffee'")
    phone: Phone | None = Field(None, description="number to call")
    url: HttpsUrl | None = Field(None, description="web page to open in a web-view page")
    store: StoreId | None = Field(None, description="store id whose location opens in the map")

    @model_validator(mode="before")
    @classmethod
    def _page_shorthand(cls, value: Any) -> Any:
        return {"page": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_target(self) -> Link:
        targets = [n for n in ("page", "phone", "url", "store") if getattr(self, n) is not None]
        if len(targets) != 1:
            raise ValueError("a link needs exactly one of 'page', 'phone', 'url' or 'store'"
                             + (f", got {', '.join(targets)}" if targets else ""))
        if self.query is not None and self.page is None:
            raise ValueError("'query' only goes with a 'page' link")
        return self

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        schema = handler.resolve_ref_schema(handler(core_schema))
        return {"anyOf": [{"type": "string", "pattern": ID_PATTERN, "description": "page id"},
                          schema]}


class WindowOptions(StrictModel):
    """Navigation bar and page background (Alipay `window` config)."""

    title_bar_color: Color | None = None
    background_color: Color | None = None
    pull_refresh: bool | None = None
    bounce: bool | None = Field(None, description="allow vertical bounce (allowsBounceVertical)")
    transparent_title: Literal["none", "always", "auto"] | None = None

    def to_alipay(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.title_bar_color:
            out["titleBarColor"] = self.title_bar_color
        if self.background_color:
            out["backgroundColor"] = self.background_color
        if self.pull_refresh is not None:
            out["pullRefresh"] = self.pull_refresh
        if self.bounce is not None:
            out["allowsBounceVertical"] = "YES" if self.bounce else "NO"
        if self.transparent_title:
            out["transparentTitle"] = self.transparent_title
        return out


class Theme(StrictModel):
    primary: Color = "#1677ff"
    accent: Color = "#ff6a00"
    background: Color = "#f5f5f5"
    text: Color = "#333333"


class AppSection(StrictModel):
    name: ShortText
    # [0-9], not \d: pydantic's patterns take \d to mean any Unicode digit ('２', '٣').
    appid: str | None = Field(None, pattern=r"^20[0-9]{14}$",
                              description="16-digit Alipay app id (starts with 20)")
    version: str = Field("1.0.0", pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$", description="e.g. '1.2.0'")
    description: str = Field("", max_length=200)
    theme: Theme = Theme()
    window: WindowOptions = WindowOptions()


class Store(StrictModel):
    id: Id
    name: ShortText
    address: Text
    lat: float = Field(ge=-90, le=90, description="latitude in GCJ-02, the datum Amap and Alipay's map use "
                                                  "(a GPS/WGS-84 reading is off by a few hundred metres in China)")
    lng: float = Field(ge=-180, le=180, description="longitude in GCJ-02 (see lat)")
    hours: ShortText = Field(description="opening hours as shown, e.g. 'Mon-Fri 07:30-21:00'")
    phone: Phone | None = None


class Merchant(StrictModel):
    name: ShortText
    logo: Asset | None = Field(None, description="the picture of the app's share cards (unless "
                                                 "promotion.share sets one)")
    phone: Phone | None = None
    stores: list[Store] = Field(default_factory=list)


class Page(StrictModel):
    id: PageName
    title: ShortText
    window: WindowOptions = WindowOptions()
    # validate.py replaces Any with the union of the registered block types.
    blocks: list[Any] = Field(default_factory=list)


class PageOptions(StrictModel):
    """A page a plugin adds: its id and title (the plugin fills it)."""

    id: PageName
    title: ShortText


class TabItem(StrictModel):
    page: PageId
    text: Annotated[str, Field(min_length=1, max_length=8)]
    icon: Asset
    active_icon: Asset


class Tabbar(StrictModel):
    text_color: Color = "#666666"
    selected_color: Color | None = Field(None, description="defaults to the theme's primary colour")
    background_color: Color = "#ffffff"
    items: list[TabItem] = Field(min_length=2, max_length=5)


class Limits(StrictModel):
    """Size warnings (they never stop a build)."""

    image_kb: int = Field(300, ge=1, le=10_240, description="warn about images larger than this many KiB")


class Backend(StrictModel):
    """The merchant's back end: `mpforge serve`, or a server implementing its OpenAPI
    document. The app calls `{base_url}/api/v1/{app.appid}/...`."""

    base_url: HttpsUrl = Field(description="https URL the API lives under, e.g. https://api.example.com; its "
                                           "domain goes on the mini-program's server whitelist")


Price = Annotated[Decimal, Field(ge=0, le=1_000_000, decimal_places=2, title="price"),
                  WithJsonSchema({"type": "number", "minimum": 0, "maximum": 1_000_000})]


def check_original_price(price: Decimal, original_price: Decimal | None) -> None:
    """A struck-through price must be above the price (products in blocks and in the catalogue)."""
    if original_price is not None and original_price <= price:
        raise ValueError("'original_price' must be higher than 'price' (it is shown struck through)")


def _repeated(what: str, ids: list[str]) -> None:
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ValueError(f"{what} id {', '.join(repr(i) for i in twice)} appears more than once")


class Category(StrictModel):
    id: Id
    name: ShortText
    icon: Asset | None = None


class OptionChoice(StrictModel):
    id: Id
    name: Annotated[str, Field(min_length=1, max_length=20)]
    price: Price = Field(Decimal(0), description="yuan added to the product's price when chosen")


class ProductOption(StrictModel):
    """A choice the customer makes for a product: size, temperature, add-ons."""

    id: Id
    name: Annotated[str, Field(min_length=1, max_length=20)]
    choices: list[OptionChoice] = Field(min_length=1, max_length=20)
    multiple: bool = Field(False, description="several choices may be taken (add-ons)")
    required: bool | None = Field(None, description="a choice must be taken; default: yes for a single choice, "
                                                    "no with multiple")
    default: Id | None = Field(None, description="the choice taken unless the customer changes it")

    @model_validator(mode="after")
    def _consistent(self) -> ProductOption:
        ids = [c.id for c in self.choices]
        _repeated("choice", ids)
        if self.default is not None and self.default not in ids:
            raise ValueError(f"'default' ({self.default!r}) is not one of the choices ({', '.join(ids)})")
        if self.multiple and self.required:
            raise ValueError("an option with 'multiple' choices cannot be 'required' (add-ons are optional); "
                             "leave 'required' out")
        return self


class CatalogueProduct(StrictModel):
    id: Id
    name: ShortText
    category: CategoryId
    price: Price = Field(description="price in yuan")
    original_price: Price | None = Field(None, description="shown struck through; must be above price")
    image: Asset | None = None
    tag: Annotated[str, Field(min_length=1, max_length=10)] | None = None
    description: Annotated[str, Field(max_length=200)] | None = None
    options: list[ProductOption] = Field(default_factory=list, max_length=10)
    stores: list[StoreId] | None = Field(None, description="stores selling it; all when omitted")
    sold_out: bool = Field(False, description="shown as sold out (the back end's runtime content can change it)")
    stock: int | None = Field(None, ge=0, description="units that can be ordered; unlimited when omitted. The back "
                                                      "end counts down from it; changing it adds the difference "
                                                      "(a restock of 20: raise it by 20)")

    @model_validator(mode="after")
    def _prices_and_options(self) -> CatalogueProduct:
        check_original_price(self.price, self.original_price)
        _repeated("option", [o.id for o in self.options])
        return self


class Catalogue(StrictModel):
    """What the merchant sells: categories and products (with options). Product lists
    and the product detail page read from it."""

    categories: list[Category] = Field(min_length=1, max_length=100)
    products: list[CatalogueProduct] = Field(min_length=1, max_length=2000)
    detail_page: PageId | None = Field(None, description="the page with a product-detail block: catalogue "
                                                         "products in lists link to it with ?item=<id>")


class CoreSpec(StrictModel):
    """The sections every spec has; plugins add their own keyed by plugin name."""

    spec_version: Literal[1]
    app: AppSection
    merchant: Merchant
    pages: list[Page] = Field(min_length=1)
    tabbar: Tabbar | None = None
    assets: Annotated[str, AfterValidator(_folder)] | None = Field(
        None, description="folder (relative to the spec) of the files the spec uses; those are copied to "
                          "the output's assets/")
    limits: Limits = Limits()
    backend: Backend | None = Field(None, description="the merchant back end that logs users in, issues coupons, "
                                                      "records visits and serves runtime content")
    catalogue: Catalogue | None = None
