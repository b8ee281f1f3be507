"""The `promotion:` spec section: share, campaigns, offline/online entry points, search keywords."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, model_validator

from builder.plugin_api import Asset, Id, PageId, Ref, ShortText, StoreId, StrictModel, ref_field
from plugins.coupon import CouponId

# Keys the plugin adds to entry-point queries itself: channel and entry point id.
RESERVED_QUERY_KEYS = ("ch", "ep")
MAX_QUERY = 256  # characters of the full query an entry point's QR code carries
QUERY_PAIR = re.compile(r"^[A-Za-z0-9_\-.~%]+=[A-Za-z0-9_\-.~%]*$")

Channel = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,31}$", title="channel tag",
                               description="lower-case letters, digits, '-' and '_', e.g. 'poster-spring'")]


class CampaignRef(Ref):
    kind = "campaign"
    provided_by = "promotion"
    defined_in = "promotion.campaigns"


CampaignId = ref_field(CampaignRef, "id of a campaign in promotion.campaigns")


class PageShare(StrictModel):
    title: ShortText | None = None
    desc: ShortText | None = None
    image: Asset | None = None


class Share(StrictModel):
    """What sharing a page shows; pages without their own entry use these defaults."""

    title: ShortText | None = Field(None, description="default: the page title")
    desc: ShortText | None = Field(None, description="default: the app description")
    image: Asset | None = None
    channel: Channel = Field("share", description="tag added as ?ch= to shared paths")
    pages: dict[str, PageShare] = Field(default_factory=dict, description="per-page overrides, keyed by page id")


class Campaign(StrictModel):
    id: Id
    name: ShortText
    start: AwareDatetime = Field(description="with its time zone, e.g. 2026-12-01T10:00:00+08:00")
    end: AwareDatetime
    banner: Asset
    landing: PageId
    coupons: list[CouponId] = Field(default_factory=list, description="coupons featured by the campaign")

    @model_validator(mode="after")
    def _end_after_start(self) -> Campaign:
        if self.end <= self.start:
            raise ValueError(f"'end' ({self.end.isoformat()}) must be after 'start' ({self.start.isoformat()})")
        return self


class EntryPoint(StrictModel):
    """A way into the mini-program: a table sticker, a poster, a partner link..."""

    id: Id
    name: ShortText
    kind: Literal["table-sticker", "poster", "flyer", "partner-link", "other"] = "other"
    description: ShortText = Field(description="shown in the Alipay QR code list (describe)")
    page: PageId
    query: str = Field("", max_length=200, description="e.g. 'store=sh-01&table=12'; URL-safe characters only")
    channel: Channel
    store: StoreId | None = Field(None, description="the store it stands in; added to the query as store=<id>")

    @model_validator(mode="after")
    def _query_is_safe(self) -> EntryPoint:
        pairs = self.query.split("&") if self.query else []
        for pair in pairs:
            if self.store and pair.startswith("store=") and pair != f"store={self.store}":
                raise ValueError(f"the query says {pair!r} but 'store' is {self.store!r}")
            if not QUERY_PAIR.match(pair):
                raise ValueError(f"query part {pair!r} is not key=value with URL-safe characters "
                                 "(letters, digits, '-', '_', '.', '~', %-escapes)")
            if pair.split("=", 1)[0] in RESERVED_QUERY_KEYS:
                raise ValueError(f"query key {pair.split('=', 1)[0]!r} is reserved: "
                                 "the channel and entry point id are added as 'ch' and 'ep'")
        if len(self.full_query) > MAX_QUERY:
            raise ValueError(f"the full query is {len(self.full_query)} characters, over {MAX_QUERY}")
        return self

    @property
    def full_query(self) -> str:
        """The query the QR code opens the page with: the spec's, its store unless the
        spec's query names it, then channel and entry point."""
        keys = {pair.split("=", 1)[0] for pair in self.query.split("&")} if self.query else set()
        store = f"store={self.store}" if self.store and "store" not in keys else ""
        return "&".join(filter(None, [self.query, store, f"ch={self.channel}", f"ep={self.id}"]))


class PromotionSection(StrictModel):
    """Share, campaigns, entry points (QR codes) and search keywords."""

    share: Share = Share()
    campaigns: list[Campaign] = Field(default_factory=list, max_length=50)
    entry_points: list[EntryPoint] = Field(default_factory=list, max_length=500)
    search_keywords: list[Annotated[str, Field(min_length=1, max_length=20)]] = Field(
        default_factory=list, max_length=10, description="keywords for the mini-program's Alipay search listing")
