"""The core, registered as the plugin 'core' through the same hooks third parties use."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from . import check, review
from .core_blocks import CORE_BLOCK_TYPES, WebViewBlock
from .errors import Problem, did_you_mean
from .filetree import FileTree
from .hookspecs import hookimpl
from .model import BlockType, PathKey, ValidSpec
from .spec_models import AssetPath, Link, Page, Ref, WebUrl
from .templates_path import core_templates_dir

WEBVIEW_PAGE_ID = "webview"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg")


@hookimpl
def mpforge_block_types() -> list[BlockType]:
    return CORE_BLOCK_TYPES


@hookimpl
def mpforge_template_dirs() -> list[Path]:
    return [core_templates_dir()]


@hookimpl
def mpforge_pages(spec: ValidSpec) -> list[Page]:
    """The shared web-view page, when any link or web-page field opens a web page."""
    if any(isinstance(ref, WebUrl) or (isinstance(ref, Link) and ref.url) for _, ref in spec.references):
        return [Page(id=WEBVIEW_PAGE_ID, title=spec.model.app.name, blocks=[WebViewBlock(type="web-view")])]
    return []


@hookimpl
def mpforge_reference_targets(spec: ValidSpec) -> dict[str, list[str]]:
    return {"page": [p.id for p in spec.pages], "store": [s.id for s in spec.model.merchant.stores]}


@hookimpl
def mpforge_validate(spec: ValidSpec) -> list[Problem]:
    stores = spec.duplicate_ids(spec.model.merchant.stores, ("merchant", "stores"), "store id")
    return [*_page_rules(spec), *_section_rules(spec), *review.spec_rules(spec), *stores,
            *_reference_rules(spec), *_tabbar_rules(spec)]


@hookimpl
def mpforge_checks() -> list[Callable[[FileTree], list[Problem]]]:
    rules: list[Callable[[FileTree], list[Problem]]] = [*check.CORE_CHECKS, *review.REVIEW_CHECKS]
    return rules


def _section_rules(spec: ValidSpec) -> list[Problem]:
    """A block whose type reads a spec section needs that section (BlockType.requires_section)."""
    problems = []
    for i, page in enumerate(spec.model.pages):
        for j, block in enumerate(page.blocks):
            section = spec.block_types[block.type].requires_section
            if section is not None and spec.section(section) is None:
                problems.append(spec.problem(("pages", i, "blocks", j, "type"),
                                             f"block '{block.type}' needs a '{section}' section in the spec",
                                             hint=f"add a '{section}:' section (docs/spec.md lists its keys), "
                                                  "or remove the block"))
    return problems


def _page_rules(spec: ValidSpec) -> list[Problem]:
    problems = []
    seen: dict[str, int] = {}
    for i, page in enumerate(spec.model.pages):
        if page.id == WEBVIEW_PAGE_ID:
            problems.append(spec.problem(("pages", i, "id"), f"page id '{page.id}' is reserved",
                                         hint="mpforge uses it for the page that shows web links"))
        elif page.id in seen:
            problems.append(spec.problem(("pages", i, "id"), f"duplicate page id '{page.id}'",
                                         hint=f"first used by pages[{seen[page.id]}]"))
        else:
            seen[page.id] = i
        web_views = [j for j, b in enumerate(page.blocks) if b.type == "web-view"]
        if web_views and len(page.blocks) > 1:
            problems.append(spec.problem(("pages", i, "blocks", web_views[0]),
                                         "a web-view block must be the only block on its page",
                                         hint="Alipay shows nothing else on a page holding a web-view"))
    extra_ids = Counter(p.id for p in spec.pages[len(spec.model.pages):])
    for page_id in extra_ids:
        if page_id in seen:  # point at the spec's own page, the one the user can rename
            problems.append(spec.problem(("pages", seen[page_id], "id"),
                                         f"a plugin adds page '{page_id}', which this page already uses",
                                         hint="rename this page, or change the plugin page's id in its section"))
        elif extra_ids[page_id] > 1:
            problems.append(Problem(f"two plugins add page '{page_id}'", file=spec.loaded.display_name,
                                    hint="change one plugin page's id in its section, or disable a plugin"))
    return problems


def _reference_rules(spec: ValidSpec) -> list[Problem]:
    tab_pages = {item.page for item in spec.model.tabbar.items} if spec.model.tabbar else set()
    assets_dir = spec.assets_dir
    problems = []
    known = {kind: set(ids) for kind, ids in spec.targets.items()}
    asset_sizes: dict[str, int | None] = {}  # one stat per file, however often it is used
    for path, ref in spec.references:
        if isinstance(ref, Ref):
            if ref not in known.get(ref.kind, ()):
                problems.extend(_check_ref(spec, path, ref))
        elif isinstance(ref, Link) and ref.query and ref.page in tab_pages:
            problems.append(spec.problem(path, f"page '{ref.page}' is a tab page, which cannot receive a query",
                                         hint="Alipay opens tab pages with my.switchTab, which drops the query"))
        elif isinstance(ref, AssetPath):
            if assets_dir is None:
                problems.append(spec.problem(path, f"asset '{ref}' but the spec has no 'assets' folder",
                                             hint="add 'assets: assets' and put the file there"))
                continue
            if ref not in asset_sizes:
                file = assets_dir / ref
                asset_sizes[ref] = file.stat().st_size if file.is_file() else None
            size = asset_sizes[ref]
            if size is None:
                problems.append(spec.problem(path, f"asset file not found: {spec.model.assets}/{ref}"))
            elif ref.lower().endswith(IMAGE_SUFFIXES):
                size_kb = size / 1024
                if size_kb > spec.model.limits.image_kb:
                    problems.append(spec.problem(path, f"image {ref} is {size_kb:.0f} KiB, over the "
                                                       f"{spec.model.limits.image_kb} KiB limit",
                                                 hint="compress it: the whole package must stay under 2 MB",
                                                 severity="warning"))
    if assets_dir is not None and not assets_dir.is_dir():
        problems.append(spec.problem(("assets",), f"assets folder not found: {spec.model.assets}"))
    return problems


def _check_ref(spec: ValidSpec, path: PathKey, ref: Ref) -> list[Problem]:
    if ref.kind not in spec.targets:
        return [spec.problem(path, f"{ref.kind} id '{ref}' needs the '{ref.provided_by}' plugin, which is not enabled",
                             hint="install it or list it under 'plugins'; 'mpforge plugins' shows what is loaded")]
    ids = list(dict.fromkeys(spec.targets[ref.kind]))
    if ref in ids:
        return []
    where = f" in {ref.defined_in}" if ref.defined_in else ""
    listing = f"{ref.kind}s: {', '.join(ids)}" if ids else f"define one{where}"
    return [spec.problem(path, f"no {ref.kind} with id '{ref}'{where}", hint=did_you_mean(ref, ids) or listing)]


def _tabbar_rules(spec: ValidSpec) -> list[Problem]:
    tabbar = spec.model.tabbar
    if tabbar is None:
        return []
    return spec.duplicate_ids(tabbar.items, ("tabbar", "items"), "tab page", key="page")
