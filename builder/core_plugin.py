"""The core, registered as the plugin 'core' through the same hooks third parties use."""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple
from urllib.parse import parse_qs

from . import check, review
from .core_blocks import CORE_BLOCK_TYPES, PrivacyPolicyBlock, WebViewBlock, collected
from .errors import Problem, did_you_mean
from .filetree import FileTree
from .hookspecs import hookimpl
from .model import PRIVACY_PAGE_ID, BlockType, PathKey, ValidSpec, format_path
from .spec_models import Link, Page, Ref, WebUrl
from .templates_path import core_templates_dir
from .validate import asset_references

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
    """The shared web-view page, when any link or web-page field opens a web page; the
    privacy policy, when a feature collects personal data and the spec has no page of
    that id (a merchant's own policy page wins)."""
    pages = []
    if any(isinstance(ref, WebUrl) or (isinstance(ref, Link) and ref.url) for _, ref in spec.references):
        pages.append(Page(id=WEBVIEW_PAGE_ID, title=spec.model.app.name, blocks=[WebViewBlock(type="web-view")]))
    if collected(spec) and all(page.id != PRIVACY_PAGE_ID for page in spec.model.pages):
        pages.append(Page(id=PRIVACY_PAGE_ID, title="隐私政策", blocks=[PrivacyPolicyBlock(type="privacy-policy")]))
    return pages


@hookimpl
def mpforge_reference_targets(spec: ValidSpec) -> dict[str, list[str]]:
    catalogue = spec.model.catalogue
    return {"page": [p.id for p in spec.pages], "store": [s.id for s in spec.model.merchant.stores],
            "product": [p.id for p in catalogue.products] if catalogue else [],
            "category": [c.id for c in catalogue.categories] if catalogue else []}


@hookimpl
def mpforge_validate(spec: ValidSpec) -> list[Problem]:
    stores = spec.duplicate_ids(spec.model.merchant.stores, ("merchant", "stores"), "store id")
    return [*_page_rules(spec), *_section_rules(spec), *review.spec_rules(spec), *stores,
            *_reference_rules(spec), *_asset_rules(spec), *_tabbar_rules(spec), *_catalogue_rules(spec)]


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
    problems = []
    known = {kind: set(ids) for kind, ids in spec.targets.items()}
    for path, ref in spec.references:
        if isinstance(ref, Ref):
            if ref not in known.get(ref.kind, ()):
                problems.extend(_check_ref(spec, path, ref))
        elif isinstance(ref, Link) and ref.query and ref.page in tab_pages:
            problems.append(spec.problem(path, f"page '{ref.page}' is a tab page, which cannot receive a query",
                                         hint="Alipay opens tab pages with my.switchTab, which drops the query"))
    return problems


def _catalogue_rules(spec: ValidSpec) -> list[Problem]:
    """Ids are unique; the detail page shows products; a link opening a product page with
    ?item= names a product the catalogue has."""
    catalogue = spec.model.catalogue
    if catalogue is None:
        return []
    problems = [*spec.duplicate_ids(catalogue.categories, ("catalogue", "categories"), "category id"),
                *spec.duplicate_ids(catalogue.products, ("catalogue", "products"), "product id")]
    detail_pages = {page.id for page in spec.pages if any(b.type == "product-detail" for b in page.blocks)}
    if catalogue.detail_page is not None and catalogue.detail_page not in detail_pages:
        problems.append(spec.problem(("catalogue", "detail_page"),
                                     f"page '{catalogue.detail_page}' has no product-detail block",
                                     hint="add a block 'type: product-detail' to that page, or name the page "
                                          "that has one"))
    products = {p.id for p in catalogue.products}
    for path, ref in spec.references:
        if isinstance(ref, Link) and ref.page in detail_pages and ref.query:
            item = parse_qs(ref.query).get("item", [None])[0]
            if item is not None and item not in products:
                problems.append(spec.problem((*path, "query"), f"opens product '{item}', which catalogue.products "
                                                               "does not have",
                                             hint=did_you_mean(item, sorted(products))
                                             or "use the id of a product in catalogue.products"))
    return problems


def _asset_rules(spec: ValidSpec) -> list[Problem]:
    """Each file the build copies (validate.asset_references) is a readable file inside
    the project whose path differs from the others' by more than case; large images get
    a warning."""
    uses = asset_references(spec)
    folder = spec.assets_dir
    if folder is None:
        return [spec.problem(path, f"asset '{ref}' but the spec has no 'assets' folder",
                             hint="add 'assets: assets' and put the file there") for path, ref in uses]
    # Links are followed only while they stay in the project: a linked folder or file
    # leading elsewhere (a home folder, ~/.ssh) would put the machine's files in the package.
    project = os.path.realpath(spec.root)
    real_folder = os.path.realpath(folder)
    if not _inside(real_folder, project):
        return [spec.problem(("assets",), f"assets folder '{spec.model.assets}' is a link to a folder outside the "
                                          f"project ({real_folder})",
                             hint="copy the files the spec uses into a folder of the project")]
    if not os.path.isdir(folder):  # not Path.is_dir, which raises for a path too long
        return [spec.problem(("assets",), f"assets folder not found: {spec.model.assets}")]
    problems: list[Problem] = []
    first_use: dict[str, tuple[str, PathKey, str]] = {}  # a path or folder, lower-cased -> as written, where, asset
    sizes: dict[str, int | _Refused] = {}  # one look per file, however often it is used
    for path, ref in uses:
        clash = _case_clash(spec, path, ref, first_use)
        if clash is not None:
            problems.append(clash)
            continue
        added_by_plugin = _plugin_page(spec, path)
        if added_by_plugin and ref in sizes:
            continue  # a file a spec field uses too: any problem was reported at that field
        if ref not in sizes:
            sizes[ref] = _asset_size(folder / ref, f"{spec.model.assets}/{ref}", project)
        size = sizes[ref]
        if isinstance(size, _Refused):
            hint = f"page '{added_by_plugin.id}' is added by a plugin" if added_by_plugin else size.hint
            problems.append(spec.problem(path, size.message, hint=hint))
        elif ref.lower().endswith(IMAGE_SUFFIXES) and size / 1024 > spec.model.limits.image_kb:
            problems.append(spec.problem(path, f"image {ref} is {size / 1024:.0f} KiB, over the "
                                               f"{spec.model.limits.image_kb} KiB limit",
                                         hint="compress it: the whole package must stay under 2 MB",
                                         severity="warning"))
    return problems


def _case_clash(spec: ValidSpec, path: PathKey, ref: str,
                first_use: dict[str, tuple[str, PathKey, str]]) -> Problem | None:
    """A problem when `ref`, or one of its folders, differs only in case from one an
    earlier field used: Windows and macOS hold them as one file, so one would overwrite
    the other when the package is unpacked there."""
    parts = ref.split("/")
    for end in range(1, len(parts) + 1):
        written = "/".join(parts[:end])
        known = first_use.setdefault(written.lower(), (written, path, ref))
        if known[0] == written:
            continue
        theirs, where, other = known
        mark = spec.loaded.mark(where)
        place = f"{format_path(where)}, line {mark.line}" if mark else format_path(where)
        what = (f"asset '{ref}' and '{other}'" if written == ref and theirs == other
                else f"folder '{written}' of asset '{ref}' and folder '{theirs}' of '{other}'")
        return spec.problem(path, f"{what} ({place}) differ only in case",
                            hint="Windows and macOS see one name there; rename one of them")
    return None


class _Refused(NamedTuple):
    """Why an asset file cannot be copied."""

    message: str
    hint: str | None = None


def _asset_size(file: Path, shown: str, project: str) -> int | _Refused:
    """The size of an asset file, or why it cannot be copied."""
    real = os.path.realpath(file)
    if not _inside(real, project):
        return _Refused(f"asset file {shown} is a link to a file outside the project ({real})",
                        "copy the file into the assets folder")
    try:
        # Non-blocking, so that a named pipe put there cannot stall the build.
        handle = os.open(file, os.O_RDONLY | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        return _Refused(f"asset file not found: {shown}")
    except OSError as exc:
        return _Refused(f"cannot read asset file {shown}: {exc.strerror}", "check the file's permissions")
    try:
        info = os.fstat(handle)
    finally:
        os.close(handle)
    if not stat.S_ISREG(info.st_mode):
        return _Refused(f"asset {shown} is not a file")
    return info.st_size


def _inside(real_path: str, real_folder: str) -> bool:
    return real_path == real_folder or real_path.startswith(real_folder.rstrip(os.sep) + os.sep)


def _plugin_page(spec: ValidSpec, path: PathKey) -> Page | None:
    """The page a plugin adds that `path` is on (such a page is not in the spec's text)."""
    if path[0] == "pages" and isinstance(path[1], int) and path[1] >= len(spec.model.pages):
        return spec.pages[path[1]]
    return None


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
