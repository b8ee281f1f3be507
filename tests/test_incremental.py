"""Rebuilds in one process (mpforge dev) reuse what did not change - parsed pages,
validated pages, page plans, rendered pages, per-file checks - and always produce
exactly what a fresh process produces."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
from helpers import write_project

from builder import render
from builder.pipeline import prepare
from builder.session import BuildSession

PAGES = 24  # above page_chunks.MIN_PAGES, so the spec is parsed page by page


def base_spec() -> dict:
    pages = [{"id": f"p{i}", "title": f"Page {i}", "blocks": [
        {"type": "heading", "text": f"Heading {i}", "subtitle": "sub"},
        {"type": "button", "text": "Next", "link": f"p{(i + 1) % PAGES}"},
        {"type": "store-info"},
    ]} for i in range(PAGES)]
    return {"spec_version": 1, "app": {"name": "Shop"},
            "merchant": {"name": "Shop", "stores": [
                {"id": "main", "name": "Main", "address": "1 Road", "lat": 31.2, "lng": 121.4, "hours": "9-21"}]},
            "assets": "assets", "pages": pages,
            "tabbar": {"items": [
                {"page": "p0", "text": "Home", "icon": "tab/home.png", "active_icon": "tab/home-active.png"},
                {"page": "p1", "text": "More", "icon": "tab/about.png", "active_icon": "tab/about-active.png"}]}}


def fresh_digests(spec_path) -> dict[str, str]:
    """The tree a new process builds from the spec (no caches from this one)."""
    code = ("import json, sys\nfrom builder.pipeline import prepare\n"
            "tree = prepare(sys.argv[1]).tree\nprint(json.dumps({p: tree.digest(p) for p in tree}))")
    result = subprocess.run([sys.executable, "-c", code, str(spec_path)], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def edit_text(spec):
    spec["pages"][5]["blocks"][0]["text"] = "Edited heading"


def add_page(spec):
    spec["pages"].insert(3, {"id": "new", "title": "New", "blocks": [{"type": "text", "text": "Hi"}]})


def remove_page(spec):
    del spec["pages"][7]
    spec["pages"][6]["blocks"][1]["link"] = "p8"


def rename_store(spec):  # store-info on every page shows it: every page changes
    spec["merchant"]["stores"][0]["name"] = "Flagship"


def theme(spec):
    spec["app"]["theme"] = {"primary": "#123456"}


def tab_moves(spec):  # links to p1 stop being tab links
    spec["tabbar"]["items"][1]["page"] = "p2"


def add_lines(spec):  # later pages move down in the file: their marks must follow
    spec["pages"][2]["blocks"].append({"type": "divider"})


@pytest.mark.parametrize("edit", [edit_text, add_page, remove_page, rename_store, theme, tab_moves, add_lines])
def test_a_rebuild_in_the_same_process_equals_a_fresh_build(tmp_path, edit):
    spec = base_spec()
    path = write_project(tmp_path / "proj", spec)
    session = BuildSession()
    prepare(path, session=session)  # warm every memo
    changed = copy.deepcopy(spec)
    edit(changed)
    write_project(tmp_path / "proj", changed)
    tree = prepare(path, session=session).tree
    assert {p: tree.digest(p) for p in tree} == fresh_digests(path)


def test_an_edit_to_one_page_renders_only_that_page(tmp_path, monkeypatch):
    spec = base_spec()
    path = write_project(tmp_path / "proj", spec)
    session = BuildSession()
    prepare(path, session=session)
    rendered = []
    real = render.render_page
    monkeypatch.setattr(render, "render_page", lambda page, *args: rendered.append(page.id) or real(page, *args))
    edit_text(spec)
    write_project(tmp_path / "proj", spec)
    prepare(path, session=session)
    assert rendered == ["p5"]


def test_a_located_error_after_reuse_still_points_at_the_right_line(tmp_path):
    spec = base_spec()
    path = write_project(tmp_path / "proj", spec)
    session = BuildSession()
    prepare(path, session=session)
    spec["pages"][2]["blocks"].append({"type": "divider"})  # moves later pages down
    spec["pages"][20]["blocks"][0]["type"] = "headingg"
    write_project(tmp_path / "proj", spec)
    with pytest.raises(Exception) as info:
        prepare(path, session=session)
    warm = [str(p) for p in info.value.problems]
    code = ("import sys\nfrom builder.pipeline import prepare\nfrom builder.errors import UserError\n"
            "try:\n    prepare(sys.argv[1])\nexcept UserError as e:\n    print('\\n'.join(map(str, e.problems)))")
    cold = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert warm == cold.stdout.strip().splitlines() and "pages[20].blocks[0].type" in warm[0]
