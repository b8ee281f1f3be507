"""Pre-review lint: what Alipay's review (预审核 and manual review) rejects, found at build time.

Each problem names its rule (`rule="review/..."`), so CI can tell a review finding from a
broken spec. Spec rules run with the core's validation; output rules run over the
rendered tree with the other checks. Sources: ../shared/alipay-platform.md (tabBar 使用说明,
lifestyle 关注生活号, web-view H5 页面承载 and 配置 H5 域名, 分包加载, 项目配置).
"""

from __future__ import annotations

import fnmatch
import json
import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .errors import Problem
from .filetree import FileTree
from .model import PathKey, ValidSpec
from .spec_models import WindowOptions

PACKAGE_BYTES = 2 * 1024 * 1024  # each package, the main one included
TOTAL_BYTES = 8 * 1024 * 1024  # all packages together
H5_DOMAINS_MAX = 20  # the H5 domain whitelist's size
# What the IDE packs besides source (项目配置.md, assetsInclude); other files stay out.
PACKAGED_SUFFIXES = (".axml", ".acss", ".js", ".json", ".sjs", ".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp")
_LIFESTYLE = re.compile(rb"<lifestyle[\s/>]")
_WEB_VIEW_LINK = re.compile(r"/pages/webview/webview\?url=([^\"'\s]+)")
_HTTPS_HOST = re.compile(r"https://([A-Za-z0-9.\-]+)")


def spec_rules(spec: ValidSpec) -> list[Problem]:
    """Review rules about the spec itself, located in it."""
    return [*_first_tab(spec), *_blank_pages(spec), *_pull_refresh(spec), *_tab_icons(spec)]


def _first_tab(spec: ValidSpec) -> list[Problem]:
    tabbar = spec.model.tabbar
    home = spec.model.pages[0].id
    if tabbar is None or tabbar.items[0].page == home:
        return []
    return [spec.problem(("tabbar", "items", 0, "page"),
                         f"the first tab opens '{tabbar.items[0].page}', but the home page is '{home}'",
                         hint=f"Alipay requires the first tab to be the home page (pages[0]): put the tab for "
                              f"'{home}' first, or move page '{tabbar.items[0].page}' to the top of pages",
                         rule="review/first-tab")]


# The first bytes of the image formats a tab icon may be, by the format's name.
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"))
_NAMED = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".gif": "GIF"}


def _tab_icons(spec: ValidSpec) -> list[Problem]:
    """Tab icons are package files (tabBar 使用说明: a path; GIF animation unsupported;
    recommended 60×60 or 81×81, and any other shape is stretched), holding the format their
    name says. A missing or unsafe file is reported by the asset rules."""
    tabbar, folder = spec.model.tabbar, spec.assets_dir
    if tabbar is None:
        return []
    problems = []
    for i, item in enumerate(tabbar.items):
        for field in ("icon", "active_icon"):
            ref, path = getattr(item, field), ("tabbar", "items", i, field)
            if ref.startswith("https://"):
                problems.append(spec.problem(path, "a tab icon must be a file of the package, not a web address",
                                             hint="put the image in the assets folder", rule="review/tab-icon"))
            elif folder is not None:
                problems += _tab_icon_file(spec, path, folder / ref, ref)
    return problems


def _tab_icon_file(spec: ValidSpec, path: PathKey, file: Path, ref: str) -> list[Problem]:
    try:
        if not file.resolve().is_relative_to(spec.root.resolve()) or not file.is_file():
            return []
        with open(file, "rb") as handle:
            head = handle.read(24)
    except OSError:
        return []
    kind = next((name for magic, name in _SIGNATURES if head.startswith(magic)), None)
    named = _NAMED.get(file.suffix.lower())
    if kind is None or named is None or kind != named:
        holds = f"holds {kind} data" if kind else "is not a PNG, JPEG or GIF image"
        return [spec.problem(path, f"tab icon {ref} {holds}" + (f" but is named {file.suffix}" if kind else ""),
                             hint="save it as a PNG with transparency, 81×81 pixels", rule="review/tab-icon")]
    if kind != "PNG":
        why = "GIF animation does not play in the tab bar" if kind == "GIF" else "JPEG has no transparency"
        return [spec.problem(path, f"tab icon {ref} is a {kind}: {why}", hint="use a PNG, 81×81 pixels",
                             severity="warning", rule="review/tab-icon")]
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if width != height:
        return [spec.problem(path, f"tab icon {ref} is {width}×{height}: Alipay stretches it to a square",
                             hint="use a square PNG, 81×81 pixels", severity="warning", rule="review/tab-icon")]
    return []


def _blank_pages(spec: ValidSpec) -> list[Problem]:
    return [spec.problem(("pages", i, "id"), f"page '{page.id}' has no blocks, so it shows a blank screen",
                         hint="review rejects blank pages (页面空白率): add blocks or remove the page",
                         severity="warning", rule="review/blank-page")
            for i, page in enumerate(spec.model.pages) if not page.blocks]


def _pull_refresh(spec: ValidSpec) -> list[Problem]:
    """Pull-to-refresh works only while vertical bounce is on (app.json window docs)."""
    problems = []
    app_window = spec.model.app.window
    windows: list[tuple[PathKey, WindowOptions]] = [(("app", "window"), app_window)]
    windows += [(("pages", i, "window"), page.window) for i, page in enumerate(spec.model.pages)]
    for path, window in windows:
        refresh = window.pull_refresh if window.pull_refresh is not None else app_window.pull_refresh
        bounce = window.bounce if window.bounce is not None else app_window.bounce
        if refresh and bounce is False and (window.pull_refresh or window.bounce is not None):
            problems.append(spec.problem((*path, "pull_refresh"), "pull_refresh needs bounce: Alipay only pulls "
                                         "to refresh while the page may bounce vertically",
                                         hint="remove 'bounce: false' or 'pull_refresh: true'", severity="warning",
                                         rule="review/pull-refresh"))
    return problems


# --- output rules ----------------------------------------------------------------------


def one_lifestyle_per_page(tree: FileTree) -> list[Problem]:
    """Alipay's follow component may appear once per page (关注&跳转生活号组件使用说明)."""
    return [Problem(f"the page holds {count} <lifestyle> follow components; Alipay allows one per page",
                    file=path, hint="keep one life-account follow or card block on this page",
                    rule="review/one-lifestyle")
            for path in tree if path.endswith(".axml") and (count := len(_LIFESTYLE.findall(tree[path]))) > 1]


def packaged_files(tree: FileTree) -> dict[str, int]:
    """Output path -> size of every file the IDE uploads into the package: source and
    assets, less what mini.project.json's uploadExclude leaves out."""
    excluded: list[str] = []
    if "mini.project.json" in tree:
        excluded = json.loads(tree.text("mini.project.json")).get("uploadExclude", [])
    return {path: len(data) for path, data in tree.items()
            if path.lower().endswith(PACKAGED_SUFFIXES) and not any(fnmatch.fnmatch(path, g) for g in excluded)}


def package_budget(tree: FileTree) -> list[Problem]:
    """The package must stay within Alipay's upload limits (2 MB a package, 8 MB in all);
    mpforge makes no subpackages, so everything counts against the main package."""
    sizes = packaged_files(tree)
    total = sum(sizes.values())
    if total <= PACKAGE_BYTES:
        return []
    largest = sorted(sizes.items(), key=lambda item: -item[1])[:5]
    names = ", ".join(f"{path} ({size // 1024} KiB)" for path, size in largest)
    limit = "8 MB for all packages" if total > TOTAL_BYTES else "2 MB for the main package"
    # A warning, not an error: the IDE refuses the upload, but a large build still serves
    # the preview, and specs over the limit built before this rule existed.
    return [Problem(f"the package is {total / 1048576:.2f} MB, over Alipay's limit of {limit}",
                    hint=f"compress or remove the largest files: {names}", severity="warning",
                    rule="review/package-size")]


# Like check.py's per-file rules: keyed by the tree's own bytes, so a rebuild scans only
# changed files, and the web-view rule and the report's domain list share one scan.
@lru_cache(maxsize=8192)
def _js_hosts(content: bytes) -> tuple[frozenset[str], frozenset[str]]:
    """(hosts web-view links in this JS open, other https hosts it names)."""
    text = content.decode("utf-8")
    web_view = {urlsplit(unquote(m.group(1))).hostname for m in _WEB_VIEW_LINK.finditer(text)}
    others = {m.group(1).lower() for m in _HTTPS_HOST.finditer(_WEB_VIEW_LINK.sub("", text))}
    return frozenset(h for h in web_view if h), frozenset(others)


def _hosts(tree: FileTree, which: int) -> list[str]:
    return sorted(set().union(*(_js_hosts(tree[path])[which] for path in tree if path.endswith(".js"))))


def web_view_domains(tree: FileTree) -> list[str]:
    """Every domain a web-view page opens, from the links in page data."""
    return _hosts(tree, 0)


def request_domains(tree: FileTree) -> list[str]:
    """Every https host generated JS names outside web-view links: the servers my.request
    calls (the 服务器域名白名单)."""
    return _hosts(tree, 1)


def web_view_permission(tree: FileTree) -> list[Problem]:
    """web-view is for enterprise mini-programs, and only opens whitelisted domains."""
    domains = web_view_domains(tree)
    if not domains:
        return []
    listing = ", ".join(domains)
    problems = [Problem(f"web-view opens {len(domains)} domain{'s' if len(domains) != 1 else ''}: {listing}",
                        file="pages/webview/webview.js", severity="warning", rule="review/web-view",
                        hint="web-view works only in enterprise mini-programs, and each domain must be in the "
                             "H5 domain whitelist (a verification file at its root; a release after each change)")]
    if len(domains) > H5_DOMAINS_MAX:
        problems.append(Problem(f"web-view opens {len(domains)} domains; the H5 whitelist holds at most "
                                f"{H5_DOMAINS_MAX}", file="pages/webview/webview.js", rule="review/web-view",
                                hint="link fewer sites, or host the pages on your own domains"))
    return problems


def domains(tree: FileTree) -> dict[str, list[str]]:
    """What the merchant must whitelist in the Alipay console, for the build report."""
    return {"web-view": web_view_domains(tree), "request": request_domains(tree)}


def privacy_policy_present(tree: FileTree) -> list[Problem]:
    """An app that asks for the user's id (my.getAuthCode) shows a privacy policy
    (合规类安全要求: 隐私合规); the core adds one for blocks that declare `collects`."""
    pages = json.loads(tree.text("app.json")).get("pages", []) if "app.json" in tree else []
    if any(page.split("/")[1] == "privacy" for page in pages if page.count("/") >= 2):
        return []
    callers = sorted(path for path in tree if path.endswith(".js") and b"my.getAuthCode" in tree[path])
    if not callers:
        return []
    return [Problem("the app asks for the user's id (my.getAuthCode) but has no privacy policy page",
                    file=callers[0], rule="review/privacy",
                    hint="the block types that collect it should declare BlockType.collects, which adds the "
                         "policy page; or add a page with id 'privacy' to the spec")]


REVIEW_CHECKS = [one_lifestyle_per_page, package_budget, web_view_permission, privacy_policy_present]
