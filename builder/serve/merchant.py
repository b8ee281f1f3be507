"""What `mpforge serve` serves for each mini-program, and how it reaches Alipay for it.

A `Merchant` is read from a spec that builds cleanly (`pipeline.prepare`: the same
checks as `mpforge build`): the app id from `app.appid`, the coupons from the `coupon`
section. Keys never come from the spec: `AlipayConfig` maps each app id to its two key
sources (environment variables by default, or files) and names the gateway.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder import pipeline
from builder.errors import UserError
from builder.serve.alipay_client import PRODUCTION_GATEWAY, AlipayClient
from builder.serve.keys import KeyLoadError, KeySource
from builder.serve.storage import Route
from builder.spec_models import CatalogueProduct, CoreSpec
from plugins.coupon.models import Coupon, CouponSection

PRIVATE_KEY_VARIABLE = "MPFORGE_ALIPAY_APP_PRIVATE_KEY_{appid}"
PUBLIC_KEY_VARIABLE = "MPFORGE_ALIPAY_PUBLIC_KEY_{appid}"


@dataclass(frozen=True)
class Merchant:
    """One mini-program's back end: its coupons and catalogue products by id.

    A coupon's `claim_route` says who issues it: `send`, this server
    (ordervoucher.send); `plugin`, Alipay's coupon plugin (领券组件) in the mini-program,
    for which a claim reserves stock and an out_biz_no and hands them to the app.
    """

    appid: str
    name: str
    spec_path: Path
    coupons: tuple[Coupon, ...] = ()
    products: tuple[CatalogueProduct, ...] = ()
    # merchant.stores, in the spec's order: id -> the name staff and customers know
    store_names: Mapping[str, str] = field(default_factory=dict)
    # The plugins' spec sections the spec has, by key (e.g. "ordering"), validated.
    sections: Mapping[str, Any] = field(default_factory=dict)
    # The spec's assets folder (files a plugin sends Alipay, e.g. the member card's images).
    assets_dir: Path | None = None

    @property
    def stores(self) -> tuple[str, ...]:
        """merchant.stores' ids, in the spec's order."""
        return tuple(self.store_names)

    def coupon(self, coupon_id: str) -> Coupon | None:
        return next((c for c in self.coupons if c.id == coupon_id), None)

    def product(self, product_id: str) -> CatalogueProduct | None:
        return next((p for p in self.products if p.id == product_id), None)

    def route(self, coupon_id: str) -> Route:
        coupon = self.coupon(coupon_id)
        return Route.PLUGIN if coupon is not None and coupon.claim_route == "plugin" else Route.SEND


def load_merchant(spec_path: str | Path) -> Merchant:
    """The Merchant a spec describes; UserError when it does not build or has no app id."""
    prepared = pipeline.prepare(spec_path)
    spec = prepared.spec
    appid = spec.model.app.appid
    if appid is None:
        raise UserError([spec.problem(("app",), "mpforge serve needs the app's Alipay app id",
                                      hint="add 'appid:' under 'app:' (16 digits, from the Alipay console)")])
    section = spec.section(CouponSection)
    return Merchant(appid=appid, name=spec.model.app.name, spec_path=spec.loaded.path,
                    coupons=tuple(section.coupons) if section else (),
                    products=tuple(spec.model.catalogue.products) if spec.model.catalogue else (),
                    store_names={store.id: store.name for store in spec.model.merchant.stores},
                    sections={key: value for key in type(spec.model).model_fields
                              if key not in CoreSpec.model_fields and (value := getattr(spec.model, key)) is not None},
                    assets_dir=spec.assets_dir)


@dataclass(frozen=True)
class AppKeys:
    """An app's RSA2 keys: its private key (signs requests) and Alipay's public key
    (verifies answers), each named, never held."""

    app_private_key: KeySource
    alipay_public_key: KeySource


@dataclass(frozen=True)
class AlipayConfig:
    """How the server reaches Alipay: the keys of each app id, the gateway, and the
    timeout of one call in seconds."""

    apps: Mapping[str, AppKeys] = field(default_factory=dict)
    gateway_url: str = PRODUCTION_GATEWAY
    timeout: float = 10.0

    @classmethod
    def from_environment(cls, appids: Iterable[str], *, gateway_url: str = PRODUCTION_GATEWAY,
                         timeout: float = 10.0) -> AlipayConfig:
        """Keys from the environment: MPFORGE_ALIPAY_APP_PRIVATE_KEY_<appid> and
        MPFORGE_ALIPAY_PUBLIC_KEY_<appid> (PEM, or the one line of base64 Alipay's key
        tool gives). A variable that is not set fails at start-up, naming it."""
        return cls({appid: AppKeys(KeySource(env=PRIVATE_KEY_VARIABLE.format(appid=appid)),
                                   KeySource(env=PUBLIC_KEY_VARIABLE.format(appid=appid))) for appid in appids},
                   gateway_url, timeout)

    def client(self, appid: str) -> AlipayClient:
        """The app's client, its keys read now: a key missing or unusable is a UserError."""
        keys = self.apps.get(appid)
        if keys is None:
            raise UserError(f"app {appid}: no Alipay keys configured")
        try:
            return AlipayClient(app_id=appid, app_private_key=keys.app_private_key,
                                alipay_public_key=keys.alipay_public_key, server_url=self.gateway_url,
                                timeout=self.timeout)
        except (KeyLoadError, ValueError) as exc:  # ValueError: a gateway URL the SDK cannot reach
            raise UserError(f"app {appid}: {exc}") from None
