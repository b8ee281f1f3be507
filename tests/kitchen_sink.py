"""A "kitchen sink" spec: every block type and every option of the core and of the
first-party plugins (coupon, life_account, promotion, ordering, membership), for the external checks.

`coverage_gaps(spec)` lists what the spec leaves out: every field of every model reachable
from the assembled spec model (core sections, plugin sections, every registered block
type) must be set somewhere to a value other than its default, and every value of a
`Literal` field must appear (a default counts). A new block, option or plugin therefore fails
tests/test_external.py until it is added here.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from builder.filetree import FileTree
from builder.testing import build_spec, write_project

REPO = Path(__file__).resolve().parent.parent
STARTER_ASSETS = REPO / "templates" / "starters" / "basic" / "assets"
CARD_ASSETS = REPO / "sample_projects" / "harbour-coffee" / "assets" / "card"

# Merchant text with everything that must stay data: braces, tags, entities, quotes, emoji.
NASTY = "Tom & Jerry's \"<b>{{deal}}</b>\" &amp; &nbsp; }} 🎉 店"
LONG_NASTY = NASTY + "\nsecond line\twith a tab; </view> <script>alert(1)</script> a:if=\"{{x}}\""

# (model name, field): options that are not about the output, with the reason.
NOT_COVERED = {
    ("Spec", "plugins"): "loads local plugin files; tests/test_plugins.py covers it",
    ("OrderingSection", "product_code"): "one ordering section per spec: the sink takes FACE_TO_FACE_PAYMENT, "
                                         "tests/test_ordering.py the default JSAPI_PAY",
}

_REMOTE_IMAGE = "https://img.example.com/kitchen/sink.png"


def _link_variants(page: str) -> list[Any]:
    return [page, {"page": page, "query": "item=a-1&x=%20y"}, {"phone": "+86 400-000-0000"},
            {"url": "https://www.example.com/a?b=c&d=e"}, {"store": "main"}]


def _core_blocks() -> list[dict[str, Any]]:
    page, query, phone, url, store = _link_variants("about")
    return [
        {"type": "banner", "height": 420, "autoplay": False, "interval": 2500, "slides": [
            {"image": "banner.png", "link": page, "alt": NASTY},
            {"image": _REMOTE_IMAGE, "link": url},
            {"image": "banner.png"},
        ]},
        {"type": "notice-bar", "text": NASTY, "link": query},
        {"type": "notice-bar", "text": "plain notice"},
        {"type": "icon-grid", "columns": 5, "items": [
            {"icon": "tab/home.png", "text": "Home & co", "link": phone},
            {"icon": "tab/about.png", "text": "{{about}}"},
            {"icon": _REMOTE_IMAGE, "text": "Map", "link": store},
        ]},
        {"type": "icon-grid", "columns": 3, "items": [{"icon": "tab/home.png", "text": "three"}]},
        {"type": "heading", "text": NASTY, "subtitle": NASTY, "align": "center"},
        {"type": "heading", "text": "right", "align": "right"},
        {"type": "heading", "text": "left"},
        {"type": "text", "text": LONG_NASTY, "align": "right", "size": "large"},
        {"type": "text", "text": "small centred", "align": "center", "size": "small"},
        {"type": "image", "image": "banner.png", "link": url, "mode": "aspectFit", "rounded": True},
        {"type": "image", "image": _REMOTE_IMAGE, "mode": "aspectFill", "height": 320},
        {"type": "image", "image": "tab/home.png"},
        {"type": "button", "text": NASTY, "link": phone, "style": "default"},
        {"type": "button", "text": "Go", "link": store},
        {"type": "product-list", "title": NASTY, "layout": "grid", "items": [
            {"name": NASTY, "price": 12.5, "original_price": 20, "image": "banner.png", "tag": "<new>",
             "description": LONG_NASTY[:200], "link": query},
            {"name": "Free", "price": 0, "image": _REMOTE_IMAGE},
        ]},
        {"type": "product-list", "layout": "list", "items": [{"name": "List item", "price": 999999.99}]},
        {"type": "product-list", "title": "Picked", "products": ["sink-latte", "sink-cake"]},
        {"type": "product-list", "layout": "grid", "category": "sink-bakery"},
        {"type": "store-info", "title": NASTY, "stores": ["main", "second"]},
        {"type": "store-info"},
        {"type": "divider", "inset": True},
        {"type": "divider"},
        {"type": "spacer", "height": 48},
        {"type": "privacy-policy"},
    ]


def _plugin_blocks() -> list[dict[str, Any]]:
    return [
        {"type": "coupon-list", "title": NASTY, "coupons": ["cash-5", "rate-85", "swap"],
         "kinds": ["cash", "discount", "exchange"],
         "audience": ["everyone", "new_customers", "members", "followers", "segment"], "store": "main"},
        {"type": "coupon-card", "coupon": "rate-85"},
        {"type": "coupon-banner", "coupon": "cash-5", "image": "banner.png", "subtitle": NASTY},
        {"type": "coupon-banner", "coupon": "swap"},
        {"type": "my-coupons", "empty_text": NASTY, "more": "deals"},
        {"type": "life-account-follow"},
        {"type": "life-account-feed", "title": NASTY, "limit": 1},
        {"type": "campaign-banner", "campaign": "now"},
        {"type": "countdown", "campaign": "now", "to": "end", "label": NASTY},
        {"type": "countdown", "campaign": "later", "to": "start"},
    ]


def kitchen_sink_spec() -> dict[str, Any]:
    # pull_refresh with bounce on (Alipay only pulls to refresh while a page may bounce);
    # the deals page turns both the other way.
    window = {"title_bar_color": "#112233", "background_color": "#fafafa", "pull_refresh": True,
              "bounce": True, "transparent_title": "always"}
    return {
        "spec_version": 1,
        "app": {
            "name": "Kitchen Sink & Co 🎉", "appid": "2021004123456789", "version": "2.3.4",
            "description": NASTY,
            "theme": {"primary": "#123456", "accent": "#abcdef", "background": "#fefefe", "text": "#010101"},
            "window": window,
        },
        "merchant": {
            "name": NASTY, "logo": "banner.png", "phone": "400-000-0000",
            "stores": [
                {"id": "main", "name": NASTY, "address": LONG_NASTY, "lat": 31.23, "lng": 121.47,
                 "hours": "Mon-Fri 07:30-21:00", "phone": "+86 21-6335 1201"},
                {"id": "second", "name": "Second", "address": "2 Test Road", "lat": -33.9, "lng": -151.2,
                 "hours": "24h"},
            ],
        },
        "assets": "assets",
        "limits": {"image_kb": 512},
        "requires": {"coupon": ">=1.0", "life_account": ">=1.0", "promotion": ">=1.0", "membership": ">=0.1"},
        "pages": [
            {"id": "home", "title": NASTY[:80], "blocks": _core_blocks()},
            {"id": "item", "title": "Item", "blocks": [
                {"type": "product-detail", "product": "sink-cake", "missing_text": NASTY[:40]}]},
            {"id": "deals", "title": "Deals", "window": {"title_bar_color": "#ff0000", "transparent_title": "auto",
                                                         "pull_refresh": False, "bounce": False,
                                                         "background_color": "#000000"},
             "blocks": _plugin_blocks()},
            {"id": "about", "title": "About", "window": {"transparent_title": "none"},
             # Its own page: Alipay allows one <lifestyle> per page, and the follow block is on deals.
             "blocks": [{"type": "text", "text": "About us"}, {"type": "button", "text": "Deals", "link": "deals"},
                        {"type": "life-account-card"}]},
            {"id": "web", "title": "Web", "blocks": [{"type": "web-view", "url": "https://www.example.com/embedded?a=1&b=2"}]},
            # The ordering blocks with every option, each on a page as the plugin's pages have them.
            {"id": "order-here", "title": "Order", "blocks": [{"type": "order-menu", "notice": NASTY[:80]}]},
            {"id": "pay-here", "title": "Pay", "blocks": [{"type": "order-confirm", "note": NASTY[:80]}]},
            {"id": "one-order", "title": "Order", "blocks": [{"type": "order-detail", "missing_text": NASTY[:80]}]},
            {"id": "all-orders", "title": "Orders", "blocks": [{"type": "my-orders", "empty_text": NASTY[:80]}]},
            # The membership blocks with every option (the plugin's member page has the defaults).
            {"id": "club", "title": "Club", "blocks": [
                {"type": "favorite-guide", "text": NASTY, "close_text": NASTY[:10]},
                {"type": "member-card", "claim_text": NASTY[:40], "intro": NASTY},
                {"type": "stamp-card", "scan_text": NASTY[:20], "hint": NASTY},
                {"type": "points-rewards", "title": NASTY},
                {"type": "contact-button", "tnt_inst_id": "SINK_inst-1", "scene": "SCE_0001", "size": 40,
                 "color": "#ff6600", "icon": _REMOTE_IMAGE, "label": NASTY}]},
        ],
        "tabbar": {
            "text_color": "#999999", "selected_color": "#ff0000", "background_color": "#eeeeee",
            "items": [
                {"page": "home", "text": "首页", "icon": "tab/home.png", "active_icon": "tab/home-active.png"},
                {"page": "deals", "text": "Deals&", "icon": "tab/about.png", "active_icon": "tab/about-active.png"},
            ],
        },
        "catalogue": {
            "detail_page": "item",
            "categories": [{"id": "sink-coffee", "name": NASTY[:20], "icon": "banner.png"},
                           {"id": "sink-bakery", "name": "Bakery"}],
            "products": [
                {"id": "sink-latte", "name": NASTY, "category": "sink-coffee", "price": 28, "original_price": 30,
                 "image": "banner.png", "tag": "<hot>", "description": LONG_NASTY[:200], "stores": ["main"],
                 "stock": 50,
                 "options": [
                     {"id": "size", "name": "Size", "default": "l", "required": True,
                      "choices": [{"id": "m", "name": "M"}, {"id": "l", "name": "<L>", "price": 4}]},
                     {"id": "extras", "name": "Extras", "multiple": True, "required": False,
                      "choices": [{"id": "shot", "name": "Shot", "price": 5}]},
                 ]},
                {"id": "sink-cake", "name": "Cake", "category": "sink-bakery", "price": 18, "sold_out": True,
                 "image": _REMOTE_IMAGE},
            ],
        },
        "ordering": {
            "modes": ["takeaway", "dine_in"], "delivery": {"fee": 5}, "minimum": 20, "packaging_fee": 1.5,
            "order_prefix": "SINK", "product_code": "FACE_TO_FACE_PAYMENT", "pay_within_minutes": 20,
            "pages": {"menu": {"id": "diancan", "title": NASTY[:40]}, "confirm": {"id": "queren", "title": "确认"},
                      "order": {"id": "dingdan", "title": "<order>"}, "orders": {"id": "wode", "title": "我的"}},
            "hours": [{"store": "main", "mon": ["07:30-11:00", "13:00-21:00"], "tue": ["07:30-21:00"],
                       "wed": ["07:30-21:00"], "thu": ["07:30-21:00"], "fri": ["07:30-22:00"],
                       "sat": ["09:00-22:00"], "sun": ["09:00-20:00"]}],
            # Another template's status names: every one differs from the defaults.
            "order_center": {"biz_type": "sink_food_order", "statuses": {
                "paid": "PAID", "accepted": "CONFIRMED", "ready": "MERCHENT_SERVICING", "completed": "FINISHED",
                "refunded": "REFUNDED"}},
        },
        # The back end at its place, and at the place spec_version 1 first had it (still valid).
        "backend": {"base_url": "https://api.example.com/shop/"},
        "coupon": {
            "backend": {"base_url": "https://legacy.example.com/", "claim_path": "/v2/claim"},
            "partner_id": "2088102146225135",
            "pages": {"centre": {"id": "coupon-centre", "title": "领券 & more"},
                      "mine": {"id": "mine", "title": "我的 \"券\""}},
            "coupons": [
                {"id": "cash-5", "kind": "cash", "title": NASTY, "value": 5, "min_spend": 25,
                 "validity": {"days_after_claim": 14}, "stock": 5000, "per_user_limit": 2,
                 "audience": "new_customers", "activity_id": "act-1", "stores": ["main"], "terms": LONG_NASTY},
                {"id": "rate-85", "kind": "discount", "title": "8.5折", "rate": 0.85,
                 "validity": {"start": "2020-01-01", "end": "2099-12-31"}, "stock": 10, "audience": "members",
                 "activity_id": "act-2"},
                {"id": "swap", "kind": "exchange", "title": "Swap", "item": "<croissant>",
                 "validity": {"days_after_claim": 7}, "stock": 1, "audience": "followers", "activity_id": "act_3",
                 "detail_page": "deals", "code_mode": "MERCHANT_UPLOAD"},
                {"id": "swap-api", "kind": "exchange", "title": "Swap", "item": "Tea", "stock": 1,
                 "validity": {"days_after_claim": 7}, "activity_id": "act_5", "detail_page": "about",
                 "code_mode": "MERCHANT_API", "claim_route": "plugin"},
                {"id": "everyone", "kind": "cash", "title": "Everyone", "value": 1,
                 "validity": {"days_after_claim": 1}, "stock": 1, "audience": "reward", "activity_id": "act-4"},
                {"id": "vip", "kind": "cash", "title": "VIP", "value": 2, "validity": {"days_after_claim": 3},
                 "stock": 5, "audience": "segment", "segment": "sink-vip", "activity_id": "act-6"},
            ],
        },
        "membership": {
            "card": {"title": NASTY[:20], "logo": "card/logo.png", "background": "card/background.png",
                     "text_color": "#222222", "brand_color": "#aa3300", "form": ["mobile", "name", "gender", "birthday", "email"],
                     "plugin_provider": "2021001139681234", "valid_years": 3},
            "levels": [
                {"id": "bronze", "name": NASTY[:10], "min_points": 0, "benefits": [NASTY, "<free> {{tea}}"]},
                {"id": "platinum", "name": "白金", "min_points": 1000},
            ],
            "points": {"per_yuan": 2, "per_stamp": 3, "per_follow": 50,
                       "rewards": [{"coupon": "everyone", "points": 100}, {"coupon": "cash-5", "points": 250}]},
            "stamp_card": {"title": NASTY[:20], "stamps": 10, "reward": "rate-85", "code_seconds": 60, "per_day": 2},
            "messages": {
                "templates": [
                    {"id": "ready", "template_id": "TPL_READY", "event": "order_ready", "ask_after": "order_paid",
                     "fields": ["order_no", "store", "status"], "page": "one-order"},
                    {"id": "expiring", "template_id": "TPL_EXPIRE", "event": "coupon_expiring",
                     "ask_after": "coupon_claimed", "fields": ["coupon", "expires", "shop"]},
                    {"id": "points", "template_id": "TPL-POINTS", "event": "points_changed",
                     "ask_after": "card_opened", "fields": ["points", "balance"], "page": "club"},
                ],
                "per_user_per_day": 5,
            },
            "segments": [
                {"id": "sink-vip", "name": NASTY[:15], "description": NASTY,
                 "rule": {"member": True, "levels": ["platinum"], "inactive_days": 30, "active_days": 365,
                          "min_orders": 2, "min_points": 100, "channel": "table"}},
                {"id": "everybody", "name": "Everybody"},
            ],
            "pages": {"member": {"id": "huiyuan", "title": NASTY[:20]}},
        },
        "life_account": {
            "public_id": "2019041263887654", "name": NASTY, "avatar": "banner.png", "description": LONG_NASTY,
            "memo": NASTY, "follow_reward": "swap", "page": {"id": "life", "title": "Life & more"},
            "articles": [
                {"title": NASTY, "cover": "banner.png", "summary": LONG_NASTY, "date": "2026-11-20",
                 "url": "https://www.example.com/articles/1?x=%3Cy%3E&q=1"},
                {"title": "Older", "cover": _REMOTE_IMAGE, "date": "2026-01-02",
                 "url": "https://www.example.com/articles/2"},
            ],
        },
        "promotion": {
            "share": {"title": NASTY, "desc": NASTY, "image": "banner.png", "channel": "sink-share",
                      "pages": {"deals": {"title": "Deals!", "desc": "<desc>", "image": _REMOTE_IMAGE},
                                "about": {"title": "About only"}}},
            "campaigns": [
                {"id": "now", "name": NASTY, "start": "2020-01-01T00:00:00+08:00", "end": "2099-12-31T23:59:59+08:00",
                 "banner": "banner.png", "landing": "deals", "coupons": ["cash-5", "swap"]},
                {"id": "later", "name": "Later", "start": "2098-01-01T10:00:00+00:00",
                 "end": "2098-02-01T10:00:00-05:00", "banner": _REMOTE_IMAGE, "landing": "home"},
            ],
            "entry_points": [
                {"id": "table-1", "name": NASTY, "kind": "table-sticker", "description": NASTY[:32], "page": "deals",
                 "query": "store=main&table=1", "channel": "table", "store": "main"},
                {"id": "poster", "name": "Poster", "kind": "poster", "description": "Poster", "page": "home",
                 "channel": "poster"},
                {"id": "flyer", "name": "Flyer", "kind": "flyer", "description": "Flyer", "page": "about",
                 "query": "a=%20", "channel": "flyer"},
                {"id": "partner", "name": "Partner", "kind": "partner-link", "description": "Partner",
                 "page": "life", "channel": "partner"},
                {"id": "other", "name": "Other", "description": "Other", "page": "home", "channel": "other"},
            ],
            "search_keywords": ["kitchen", "水槽", NASTY[:20]],
        },
    }


def kitchen_sink_files() -> dict[str, bytes]:
    starter = {f"assets/{p.relative_to(STARTER_ASSETS).as_posix()}": p.read_bytes()
               for p in sorted(STARTER_ASSETS.rglob("*")) if p.is_file()}
    # The member card's pictures in the sizes Alipay takes (the starter's banner is too small).
    card = {f"assets/card/{p.name}": p.read_bytes() for p in sorted(CARD_ASSETS.glob("*.png"))}
    return {**starter, **card}


def build_kitchen_sink(root: Path) -> FileTree:
    """Write the kitchen-sink project into `root` and return its checked file tree."""
    return build_spec(kitchen_sink_spec(), root, files=kitchen_sink_files())


def write_tree(tree: FileTree, out: Path) -> Path:
    """The generated files as plain files under `out` (what the external tools read)."""
    for path, data in tree.items():
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return out


def write_kitchen_sink_project(root: Path) -> Path:
    """The project alone (spec and assets), e.g. for `mpforge build`."""
    return write_project(root, kitchen_sink_spec(), kitchen_sink_files())


# --- coverage -------------------------------------------------------------------------

def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def _literal_values(annotation: Any) -> tuple | None:
    """The values of a Literal field (also inside Optional, list[...], Annotated)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType, list, typing.Annotated) or origin is not None:
        for arg in typing.get_args(annotation):
            found = _literal_values(arg)
            if found:
                return found
    return None


def _reachable(model: type[BaseModel]) -> list[type[BaseModel]]:
    seen: dict[type[BaseModel], None] = {}
    todo = [model]
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen[cls] = None
        for info in cls.model_fields.values():
            todo.extend(_models_in(info.annotation))
    return list(seen)


def _instances(value: Any) -> Iterator[BaseModel]:
    if isinstance(value, BaseModel):
        yield value
        for name in type(value).model_fields:
            yield from _instances(getattr(value, name))
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _instances(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _instances(item)


def _flat(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def coverage_gaps(model: BaseModel) -> list[str]:
    """What the validated spec `model` leaves unused (see the module docstring)."""
    used: dict[tuple[type, str], list[Any]] = {}  # values set explicitly
    every: dict[tuple[type, str], list[Any]] = {}  # values, defaults included
    for instance in _instances(model):
        for name in type(instance).model_fields:
            every.setdefault((type(instance), name), []).append(getattr(instance, name))
        for name in instance.model_fields_set:
            used.setdefault((type(instance), name), []).append(getattr(instance, name))
    gaps = []
    for cls in _reachable(type(model)):
        for name, info in cls.model_fields.items():
            if (cls.__name__, name) in NOT_COVERED:
                continue
            values = used.get((cls, name))
            where = f"{cls.__module__}.{cls.__name__}.{name}"
            if not values:
                gaps.append(f"{where}: never set")
                continue
            default = info.get_default(call_default_factory=True) if not info.is_required() else PydanticUndefined
            if default is not PydanticUndefined and all(v == default for v in values):
                gaps.append(f"{where}: only ever set to its default {default!r}")
            literals = _literal_values(info.annotation)
            if literals:
                seen = {item for v in every[(cls, name)] for item in _flat(v)}
                missing = [v for v in literals if v not in seen]
                if missing:
                    gaps.append(f"{where}: never {', '.join(map(repr, missing))}")
    return gaps
