"""The mini-program's runtime content: what `GET /content` and `GET /me/claims` show.

A content document (`api_models.ContentDocument`) holds what may change without a new
build of the mini-program: the app's name, its coupons' words in display order, and its
catalogue products' names, prices and sold-out state.
Version 0 is the spec's own document (`spec_document`, which `mpforge publish` sends
too); published versions are stored by `Storage.add_content_version`, and the newest
one is shown. `render` joins a document with what the server keeps from the spec, the
rules it enforces (dates, audience, claim route, limits), and with what changes by the
day or the minute: a coupon's state today, whether stock is left.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import date, datetime, timedelta, timezone
from typing import Literal

from builder.core_blocks import yuan
from builder.serve.api_models import (
    ContentDocument,
    ContentReply,
    CouponContent,
    CouponText,
    FieldError,
    MyClaim,
    ProductContent,
    ProductText,
)
from builder.serve.merchant import Merchant
from builder.serve.storage import Claim, Route, Status
from builder.spec_models import CatalogueProduct
from plugins.coupon.blocks import coupon_display
from plugins.coupon.models import Coupon

# The server's and `mpforge publish`'s token to publish an app's content versions with.
PUBLISH_TOKEN_VARIABLE = "MPFORGE_PUBLISH_TOKEN_{appid}"
PUBLISH_TOKEN_MIN_LENGTH = 32
# Coupon dates are local dates in China, which keeps one offset all year (no DST).
CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")
# coupon_display's words do not depend on the day (only its state does, which is not
# taken from it here), so any day will do.
ANY_DAY = date.min


def china_today(now: datetime) -> date:
    return now.astimezone(CHINA).date()


def coupon_text(coupon: Coupon) -> CouponText:
    """The spec's words for a coupon, as the mini-program's own pages show them."""
    shown = coupon_display(coupon, ANY_DAY)
    # By the names on the wire: a request model takes nothing else.
    return CouponText.model_validate({"id": coupon.id, "title": coupon.title, "valueText": shown["value_text"],
                                      "thresholdText": shown["threshold_text"],
                                      "validityText": shown["validity_text"], "terms": coupon.terms})


def product_text(product: CatalogueProduct) -> ProductText:
    """The spec's name, prices and stock of a catalogue product."""
    return ProductText.model_validate({"id": product.id, "name": product.name, "price": product.price,
                                       "originalPrice": product.original_price, "soldOut": product.sold_out})


def spec_document(merchant: Merchant) -> ContentDocument:
    """The spec's own content (version 0): every coupon and product, in the spec's order."""
    return ContentDocument.model_validate({"name": merchant.name,
                                           "coupons": [coupon_text(c) for c in merchant.coupons],
                                           "products": [product_text(p) for p in merchant.products]})


def document_problems(merchant: Merchant, document: ContentDocument) -> list[FieldError]:
    """Why the server cannot show `document`: coupons it does not serve (claims of them
    would fail) or listed twice; located as pydantic locates, camelCase."""
    problems, seen = [], set()
    for index, text in enumerate(document.coupons):
        if merchant.coupon(text.id) is None:
            served = ", ".join(c.id for c in merchant.coupons) or "none"
            problems.append(FieldError(location=f"coupons.{index}.id", message=(
                f"no coupon {text.id!r} in the spec this server serves (it serves: {served}); restart mpforge serve "
                "with the new spec before publishing content for it")))
        elif text.id in seen:
            problems.append(FieldError(location=f"coupons.{index}.id", message=f"coupon {text.id!r} is listed twice"))
        seen.add(text.id)
    products: set[str] = set()
    for index, product in enumerate(document.products):
        if merchant.product(product.id) is None:
            problems.append(FieldError(location=f"products.{index}.id", message=(
                f"no product {product.id!r} in the catalogue of the spec this server serves; a new product needs a "
                "new build of the mini-program (its pages list it)")))
        elif product.id in products:
            problems.append(FieldError(location=f"products.{index}.id",
                                       message=f"product {product.id!r} is listed twice"))
        products.add(product.id)
    return problems


def render(merchant: Merchant, document: ContentDocument, version: int, today: date,
           taken: Mapping[str, int], products_gone: Collection[str] = frozenset()) -> ContentReply:
    """GET content's answer: `document`'s words (version `version`), the spec's rules,
    each coupon's state on `today` and whether its stock (`taken` of it) is gone; a
    product is sold out when the document says so or it is in `products_gone` (the
    plugins' count of its stock is at 0: mpforge_serve_sold_out)."""
    coupons = []
    for text in document.coupons:
        coupon = merchant.coupon(text.id)
        if coupon is None:  # gone from the spec since this version was published: not claimable
            continue
        shown, validity = coupon_display(coupon, today), coupon.validity
        coupons.append(CouponContent(
            id=coupon.id, title=text.title, kind=coupon.kind, value_text=text.value_text,
            threshold_text=text.threshold_text, validity_text=text.validity_text, terms=text.terms,
            state=shown["state"], state_text=shown["state_text"], sold_out=taken.get(coupon.id, 0) >= coupon.stock,
            activity_id=coupon.activity_id, per_user_limit=coupon.per_user_limit, audience=coupon.audience,
            stores=coupon.stores, start=validity.start.isoformat() if validity.start else None,
            end=validity.end.isoformat() if validity.end else None, days_after_claim=validity.days_after_claim,
            claim_route=merchant.route(coupon.id).value))
    products = [ProductContent(id=p.id, name=p.name, price_text=yuan(p.price),
                               original_price_text=yuan(p.original_price) if p.original_price is not None else None,
                               sold_out=p.sold_out or p.id in products_gone)
                for p in document.products if merchant.product(p.id) is not None]
    return ContentReply(appid=merchant.appid, version=version, name=document.name, today=today.isoformat(),
                        coupons=coupons, products=products)


def expires_on(coupon: Coupon, claimed_at: datetime) -> date:
    """The last day a voucher of `coupon` claimed at `claimed_at` can be used: the fixed
    end, or the claim's day in China plus days_after_claim."""
    validity = coupon.validity
    if validity.end is not None:
        return validity.end
    assert validity.days_after_claim is not None  # Validity holds one kind or the other
    return china_today(claimed_at) + timedelta(days=validity.days_after_claim)


def my_claims(merchant: Merchant, document: ContentDocument, claims: list[Claim]) -> list[MyClaim]:
    """The user's claims that hold a voucher or a reservation, with the words the
    content shows (the spec's for a coupon the document leaves out). A claim still
    waiting for Alipay's answer (pending, sent by the server) is left out until it is
    issued, and so is a claim of a coupon the spec no longer has: its dates are unknown."""
    texts = {text.id: text for text in document.coupons}
    mine = []
    for claim in claims:
        coupon = merchant.coupon(claim.coupon_id)
        status: Literal["issued", "reserved"]
        if claim.status is Status.ISSUED:
            status = "issued"
        elif claim.status is Status.PENDING and claim.route is Route.PLUGIN:
            status = "reserved"
        else:
            continue
        if coupon is None:
            continue
        text = texts.get(coupon.id) or coupon_text(coupon)
        mine.append(MyClaim(claim_id=str(claim.id), coupon_id=claim.coupon_id, status=status,
                            voucher_code=claim.voucher_code, claimed_at=claim.created_at,
                            activity_id=claim.activity_id if status == "reserved" else None,
                            out_biz_no=claim.out_biz_no if status == "reserved" else None,
                            expires_on=expires_on(coupon, claim.created_at), title=text.title,
                            value_text=text.value_text, threshold_text=text.threshold_text))
    return mine
