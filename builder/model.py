"""The data every stage and every plugin shares: the loaded spec, the validated spec,
blocks and block types, and the plan.

This module sits below the stages and the plugin machinery: it imports only the
leaf modules (errors, spec_models, clock), so the stages, the hook specifications and
the plugins can all import it without importing each other. It holds data and the
small amount of behaviour that belongs to the data (locating a problem, finding a
section); what a stage does lives in the stage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol, TypeVar, overload

from pydantic import BaseModel

from .clock import build_date
from .errors import Problem
from .spec_models import CoreSpec, Link, Page, Store, StrictModel

# A spec path: ('pages', 2, 'blocks', 0, 'type') is pages[2].blocks[0].type.
PathKey = tuple[str | int, ...]
Severity = Literal["error", "warning"]
SectionT = TypeVar("SectionT", bound=BaseModel)


class Mark(NamedTuple):
    line: int  # 1-based
    column: int  # 1-based


def format_path(path: Sequence[str | int]) -> str:
    """('pages', 2, 'blocks', 0, 'type') -> 'pages[2].blocks[0].type'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


@dataclass
class LoadedSpec:
    """The raw spec: data as parsed, where each node came from, and the bytes it was
    parsed from (their digest is what a cache records as "the spec that was built")."""

    path: Path
    data: Any
    values: dict[PathKey, Mark] = field(default_factory=dict)
    keys: dict[PathKey, Mark] = field(default_factory=dict)
    sha256: str = ""

    @property
    def display_name(self) -> str:
        return self.path.name

    @property
    def root(self) -> Path:
        return self.path.parent

    def mark(self, path: Sequence[str | int], *, key: bool = False) -> Mark | None:
        """The closest known position for `path`, walking up to its parents."""
        path = tuple(path)
        if key and path in self.keys:
            return self.keys[path]
        while path:
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get(())

    def problem(self, path: Sequence[str | int], message: str, *, hint: str | None = None,
                key: bool = False, severity: Severity = "error", rule: str | None = None) -> Problem:
        mark = self.mark(path, key=key)
        return Problem(message=message, path=format_path(path), file=self.display_name,
                       line=mark.line if mark else None, column=mark.column if mark else None,
                       hint=hint, severity=severity, rule=rule)


# --- blocks --------------------------------------------------------------------------


class PlanContext(Protocol):
    """What a block's `page_data` gets: link and asset resolution, store lookup, the
    spec and the build date. (The plan stage provides the implementation.)"""

    spec: ValidSpec
    today: date

    def store(self, store_id: str) -> Store: ...

    def asset(self, value: str) -> str:
        """Runtime path of an asset (absolute in the package), or the https URL as given."""
        ...

    def link(self, link: Link) -> dict[str, Any]:
        """A link as the runtime `openLink` in utils/mpforge.js expects it."""
        ...

    def web(self, url: str) -> dict[str, Any]:
        """A link that opens an https page in the shared web-view page."""
        ...

    def to_data(self, value: Any) -> Any:
        """A model as JSON-ready data, links and assets resolved; drops a block's `type`."""
        ...


class Block(StrictModel):
    """Base model of every block; subclasses narrow `type` to `Literal["their-name"]`."""

    type: str

    def page_data(self, ctx: PlanContext) -> dict[str, Any]:
        """The data the AXML template binds to. Links and assets are resolved for runtime.

        Override to add computed values (formatted prices, store details); call
        `ctx.to_data(self)` for the default conversion.
        """
        data: dict[str, Any] = ctx.to_data(self)
        return data


@dataclass(frozen=True)
class BlockType:
    """A block a spec can place on a page (`pages[].blocks[].type == name`).

    Attributes:
        name: the block's `type` in the spec, e.g. ``"coupon-list"``.
        model: its pydantic model, a `Block` subclass with ``type: Literal[name]``.
        template: the AXML template, e.g. ``"blocks/coupon-list.axml"``.
        style: an ACSS template added once to app.acss when the block is used.
        script: a JS template of Page members (handlers, lifecycle), added once per
            page that uses it; rendered with `keys`, the data keys of all blocks on the
            page sharing it.
        on_load, on_show, on_hide: Page methods the script defines that the core's
            onLoad(query) / onShow() / onHide() and onUnload() call, so several block
            types can react to the same lifecycle event without clashing.
        requires_section: the spec section the block reads (e.g. ``"coupon"``); a spec
            that uses the block without the section gets a located error.
        collects: the personal data the block's features collect, each as "what: why"
            (e.g. "支付宝用户标识: 领取优惠券"). When any is in use, the core adds a privacy
            policy page listing them and links it from the pages that collect (Alipay
            requires a privacy policy shown to users).
        description: one line for `mpforge plugins`, the docs and the editor palette.
    """

    name: str
    model: type[Block]
    template: str
    style: str | None = None
    script: str | None = None
    on_load: str | None = None
    on_show: str | None = None
    on_hide: str | None = None
    requires_section: str | None = None
    collects: tuple[str, ...] = ()
    description: str = ""


# --- the validated spec --------------------------------------------------------------


@dataclass
class ValidSpec:
    """A validated spec: the model, where each value came from, and every page.

    Attributes:
        loaded: the raw spec with positions, for locating problems.
        model: the validated model: the core sections (`CoreSpec`) plus one attribute
            per plugin section.
        block_types: every registered block type by name.
        pages: the spec's pages, then the pages plugins add.
        targets: reference kind -> the ids plugins define for it.
        references: every link and reference marker in the spec, with its path.
        warnings: problems of severity "warning" found while validating.
    """

    loaded: LoadedSpec
    model: CoreSpec
    block_types: dict[str, BlockType] = field(default_factory=dict)
    pages: list[Page] = field(default_factory=list)
    targets: dict[str, list[str]] = field(default_factory=dict)
    references: list[tuple[PathKey, Any]] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def problem(self, path: Sequence[str | int], message: str, *, hint: str | None = None,
                severity: Severity = "error", rule: str | None = None) -> Problem:
        """A problem located at `path` in the spec (e.g. ('coupon', 0, 'value')); `rule`
        names the platform rule it enforces (e.g. "review/first-tab")."""
        return self.loaded.problem(path, message, hint=hint, severity=severity, rule=rule)

    @overload
    def section(self, key: str) -> Any: ...

    @overload
    def section(self, key: type[SectionT]) -> SectionT | None: ...

    def section(self, key: str | type[BaseModel]) -> Any:
        """A plugin section's model instance, or None when the spec leaves it out.

        Give the section's key (``spec.section("coupon")``) or, for a typed result, its
        model class (``spec.section(CouponSection)``).
        """
        if isinstance(key, str):
            return getattr(self.model, key, None)
        for name in type(self.model).model_fields:
            value = getattr(self.model, name)
            if isinstance(value, key):
                return value
        return None

    @property
    def backend_url(self) -> str | None:
        """The back end's base URL without a trailing slash, or None without one.

        `backend.base_url`; or, where spec_version 1 first put it, `coupon.backend.base_url`
        (both stay valid: a spec that built keeps building)."""
        backend = self.model.backend or getattr(self.section("coupon"), "backend", None)
        return backend.base_url.rstrip("/") if backend is not None else None

    @property
    def backend_api(self) -> str | None:
        """Where this app's back-end routes are, {backend_url}/api/v1/{appid}; None without
        a back end or an app id (validation warns: nothing can reach the back end then)."""
        appid = self.model.app.appid
        return f"{self.backend_url}/api/v1/{appid}" if self.backend_url and appid else None

    def duplicate_ids(self, items: Iterable[Any], path: PathKey, what: str,
                      key: str = "id") -> list[Problem]:
        """A located problem for each item whose `key` repeats an earlier item's.

        `path` is where the list is, e.g. ``("coupon", "coupons")``; the problem points
        at the repeated item's `key` and names the first one.
        """
        problems = []
        first: dict[Any, int] = {}
        for i, item in enumerate(items):
            value = getattr(item, key)
            if value in first:
                problems.append(self.problem((*path, i, key), f"duplicate {what} '{value}'",
                                             hint=f"first used by {format_path((*path, first[value]))}"))
            else:
                first[value] = i
        return problems

    @property
    def root(self) -> Path:
        return self.loaded.root

    @cached_property
    def today(self) -> date:
        """The build's date: SOURCE_DATE_EPOCH when set (reproducible builds), else today."""
        return build_date()

    @property
    def assets_dir(self) -> Path | None:
        return self.root / self.model.assets if self.model.assets else None

    @property
    def state_dir(self) -> Path:
        """`.mpforge/` beside the spec: what mpforge commands keep for the project (the
        mini-program codes `mpforge qrcodes` made), which builds read (a build input)."""
        return self.root / ".mpforge"


# --- the plan ------------------------------------------------------------------------


@dataclass
class PlacedBlock:
    key: str  # the page-data key the block's template binds to, e.g. "b0"
    block_type: BlockType
    block: Block


@dataclass
class PagePlan:
    id: str
    title: str
    json: dict[str, Any]  # the page's .json
    data: dict[str, Any]  # the page's initial `data`, one entry per block key
    blocks: list[PlacedBlock]
    share: dict[str, str]  # what onShareAppMessage returns

    @property
    def path(self) -> str:
        return page_path(self.id)


ASSETS_OUT = "assets"  # the output folder assets are copied into
PRIVACY_PAGE_ID = "privacy"  # the page the core adds for the privacy policy (BlockType.collects)


def asset_url(value: str) -> str:
    """Runtime path of an asset given in the spec (absolute in the package), or an
    https URL as given."""
    return value if value.startswith("https://") else f"/{ASSETS_OUT}/{value}"


def page_path(page_id: str) -> str:
    """Where a page's four files go, without extension: 'pages/menu/menu'."""
    return f"pages/{page_id}/{page_id}"


@dataclass(frozen=True)
class AppScript:
    """A plugin's part of app.js: members of App({...}) and which of them the core's
    onLaunch(options) / onShow(options) call, and which one every page's onLoad(query)
    calls (`on_page_load`): shares and page links bring their parameters to the page, not
    to the app."""

    members: str
    on_launch: str | None = None
    on_show: str | None = None
    on_page_load: str | None = None


@dataclass
class AppPlan:
    spec: ValidSpec
    app_json: dict[str, Any]
    mini_project: dict[str, Any]
    global_data: dict[str, Any]
    pages: list[PagePlan]
    block_types_used: list[BlockType]
    assets: dict[str, Path] = field(default_factory=dict)  # output path -> source file


# A template renderer handed to hooks: render("coupon/service.js", config=...) -> text.
Render = Callable[..., str]
