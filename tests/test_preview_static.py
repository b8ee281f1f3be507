"""The preview model over real builds, and `mpforge preview` (static HTML)."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import SAMPLES, tree_hashes, write_project

from builder.cli import main
from builder.errors import UserError
from builder.pipeline import prepare
from builder.preview import PreviewApp, static_preview_files, write_static_preview
from builder.preview.model import read_page_data, text_color_for
from builder.testing import page_spec


@pytest.fixture(scope="module", params=["harbour-coffee", "linli-fresh", "lao-jie-noodles"])
def sample(request):
    return prepare(SAMPLES / request.param)


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data):
        self.parts.append(data)


def visible_text(fragment: str) -> str:
    parser = _Text()
    parser.feed(fragment)
    parser.close()
    return "".join(parser.parts)


def test_every_sample_page_previews_cleanly_from_the_written_files(sample):
    app = PreviewApp(sample.tree)
    model = app.app_model()
    assert [p["path"] for p in model["pages"]] == json.loads(sample.tree.text("app.json"))["pages"]
    assert model["tabBar"] and len(model["tabBar"]["items"]) >= 2
    for item in model["tabBar"]["items"]:
        assert item["icon"].startswith("app/assets/")
    for plan in sample.plan.pages:
        page = app.page_model(plan.path)
        assert page["warnings"] == [], plan.path
        # The data the preview reads from the .js is exactly the data the plan produced.
        assert read_page_data(sample.tree.text(plan.path + ".js")) == json.loads(json.dumps(plan.data))
        assert page["title"] == json.loads(sample.tree.text(plan.path + ".json"))["defaultTitle"]
        assert "rpx" not in page["css"]
    assert "rpx" not in model["css"] and ".mp-root" in model["css"]


def test_sample_home_shows_the_specs_text(sample):
    app = PreviewApp(sample.tree)
    text = visible_text(app.page_model("pages/home/home")["html"])
    spec = sample.spec.model
    home = next(p for p in spec.pages if p.id == "home")
    # The favourites tip is left out: whether it shows is decided on the device (once per device).
    for block in (b for b in home.blocks if b.type != "favorite-guide"):
        for field in ("text", "subtitle"):
            value = getattr(block, field, None)
            if isinstance(value, str):
                assert value in text, (block.type, field)


def test_window_colours_reach_the_navigation_bar():
    tree = prepare(SAMPLES / "harbour-coffee").tree
    page = PreviewApp(tree).page_model("pages/menu/menu")
    assert page["navBackground"] == "#6f4e37" and page["navColor"] == "#ffffff"
    assert text_color_for("#ffffff") == "#000000" and text_color_for("#2ea043") == "#ffffff"


def test_unchanged_pages_are_reused_and_changes_are_named(tmp_path):
    spec = page_spec([{"type": "heading", "text": "One"}],
                     pages=[{"id": "home", "title": "Home", "blocks": [{"type": "heading", "text": "One"}]},
                            {"id": "other", "title": "Other", "blocks": [{"type": "text", "text": "Same"}]}])
    write_project(tmp_path, spec)
    first = PreviewApp(prepare(tmp_path).tree, version=1)
    other = first.page_model("pages/other/other")
    spec["pages"][0]["blocks"][0]["text"] = "Two"
    write_project(tmp_path, spec)
    second = PreviewApp(prepare(tmp_path).tree, version=2, previous=first)
    assert second.changes_since(first) == (False, ["pages/home/home"])
    assert second.page_model("pages/other/other")["html"] is other["html"]  # from the cache
    assert "Two" in visible_text(second.page_model("pages/home/home")["html"])


INJECTIONS = ["{{ b0.text }}", "</view><script>alert(1)</script>", "\"quoted\" 'single' & amp;",
              "😀 港湾 <b>bold</b>", "{{", "}}"]


@pytest.mark.parametrize("text", INJECTIONS)
def test_merchant_text_shows_literally_in_the_preview(tmp_path, text):
    blocks = [{"type": "heading", "text": text, "subtitle": text}, {"type": "text", "text": text},
              {"type": "notice-bar", "text": text}, {"type": "button", "text": text, "link": "home"}]
    write_project(tmp_path, page_spec(blocks))
    page = PreviewApp(prepare(tmp_path).tree).page_model("pages/home/home")
    assert visible_text(page["html"]).count(text) == 5
    assert "<script" not in page["html"] and page["warnings"] == []


def test_static_preview_embeds_everything_safely(tmp_path):
    text = "</script><script>alert(1)</script> & {{x}}"
    write_project(tmp_path / "p", page_spec([{"type": "heading", "text": text},
                                             {"type": "banner", "slides": [{"image": "banner.png"}]}],
                                            assets="assets"))
    files = static_preview_files(prepare(tmp_path / "p").tree)
    index = files["index.html"].decode()
    assert set(files) >= {"index.html", "preview.js", "preview.css", "app/assets/banner.png"}
    assert index.count("<script") == 2 and "alert(1)</script>" not in index
    embedded = re.search(r'<script type="application/json" id="mpforge-data">(.*?)</script>', index, re.S).group(1)
    data = json.loads(embedded)
    assert text in visible_text(data["pages"]["pages/home/home"]["html"])
    assert "Content-Security-Policy" in index


def test_static_preview_folder_is_rewritten_but_never_clobbered(tmp_path):
    tree = prepare(SAMPLES / "linli-fresh").tree
    out = tmp_path / "preview"
    index = write_static_preview(tree, out)
    assert index == out / "index.html" and (out / "app" / "assets" / "tab" / "home.png").is_file()
    (out / "app" / "assets" / "stale.png").write_bytes(b"x")  # not ours: left alone
    write_static_preview(tree, out)
    assert (out / "app" / "assets" / "stale.png").is_file()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(Exception, match="not empty"):
        write_static_preview(tree, foreign)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def test_cli_preview_writes_a_static_preview(tmp_path):
    result = CliRunner().invoke(main, ["preview", str(SAMPLES / "harbour-coffee"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "11 pages" in result.output
    index = (tmp_path / "out" / "index.html").read_text("utf-8")
    assert "港湾咖啡" in index and 'src="preview.js"' in index
    assert not (SAMPLES / "harbour-coffee" / "preview").exists()


def test_cli_preview_reports_spec_errors(tmp_path):
    write_project(tmp_path, "spec_version: 1\npages: [")
    result = CliRunner().invoke(main, ["preview", str(tmp_path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert re.search(r"mpforge\.yaml:\d+:\d+: YAML syntax error", result.output)
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def linli_tree():
    return prepare(SAMPLES / "linli-fresh").tree


def _outside(tmp_path):
    """A folder outside the preview with a file a marker might name."""
    victim = tmp_path / "victim"
    (victim / "assets").mkdir(parents=True)
    (victim / "secret.txt").write_text("keep me")
    (victim / "assets" / "logo.png").write_bytes(b"mine")
    return victim


def _marker_listing(out, *extra):
    marker = out / ".mpforge-preview"
    files = json.loads(marker.read_text("utf-8"))["files"]
    marker.write_text(json.dumps({"generator": "mpforge preview", "files": [*files, *extra]}), "utf-8")


def test_static_preview_never_writes_or_removes_through_a_linked_folder(tmp_path, linli_tree):
    """A symlinked app/ used to be followed: its files were overwritten and the marker's
    stale entries deleted outside the preview folder."""
    out = tmp_path / "preview"
    write_static_preview(linli_tree, out)
    _marker_listing(out, "app/secret.txt")
    victim = _outside(tmp_path)
    before = tree_hashes(victim)
    shutil.rmtree(out / "app")
    (out / "app").symlink_to(victim)
    with pytest.raises(UserError, match=r"preview/app is a symbolic link"):
        write_static_preview(linli_tree, out)
    assert tree_hashes(victim) == before


def test_static_preview_removes_only_regular_files_it_listed(tmp_path, linli_tree):
    out = tmp_path / "preview"
    write_static_preview(linli_tree, out)
    victim = _outside(tmp_path)
    before = tree_hashes(victim)
    (out / "app" / "old.png").symlink_to(victim / "secret.txt")  # a link where a stale file was
    (out / "app" / "gone").symlink_to(victim)
    (out / "app" / "folder").mkdir()
    _marker_listing(out, "app/old.png", "app/gone/secret.txt", "app/folder", "../victim/secret.txt",
                    "/tmp/x", "app/./../../victim/secret.txt")
    write_static_preview(linli_tree, out)
    assert tree_hashes(victim) == before
    assert (out / "app" / "old.png").is_symlink() and (out / "app" / "folder").is_dir()


def test_static_preview_replaces_a_linked_file_instead_of_writing_through_it(tmp_path, linli_tree):
    out = tmp_path / "preview"
    write_static_preview(linli_tree, out)
    victim = _outside(tmp_path)
    before = tree_hashes(victim)
    (out / "index.html").unlink()
    (out / "index.html").symlink_to(victim / "secret.txt")
    write_static_preview(linli_tree, out)
    assert tree_hashes(victim) == before
    assert not (out / "index.html").is_symlink() and "mpforge-data" in (out / "index.html").read_text("utf-8")


def test_a_linked_marker_is_no_marker(tmp_path, linli_tree):
    out = tmp_path / "preview"
    out.mkdir()
    victim = _outside(tmp_path)
    (victim / "list.json").write_text(json.dumps({"files": ["index.html"]}))
    (out / ".mpforge-preview").symlink_to(victim / "list.json")
    with pytest.raises(UserError, match="not empty"):
        write_static_preview(linli_tree, out)
    assert json.loads((victim / "list.json").read_text()) == {"files": ["index.html"]}


def test_cli_preview_refuses_the_assets_folder_and_the_root(tmp_path):
    project = write_project(tmp_path / "shop", page_spec([{"type": "heading", "text": "Hi"}], assets="assets")).parent
    before = tree_hashes(project)
    for output in (project / "assets" / "preview", project / "assets", Path("/")):
        result = CliRunner().invoke(main, ["preview", str(project), "-o", str(output)])
        assert result.exit_code == 1, (output, result.output)
    assert "inside the assets folder" in CliRunner().invoke(
        main, ["preview", str(project), "-o", str(project / "assets" / "preview")]).output
    assert "the root of the file system" in CliRunner().invoke(main, ["preview", str(project), "-o", "/"]).output
    assert tree_hashes(project) == before
