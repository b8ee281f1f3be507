"""Parsing a spec page by page (builder/page_chunks.py) gives exactly what parsing the
whole file gives, re-parses only edited pages, and steps aside for anything unusual."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers import SAMPLES

from builder import load, page_chunks
from builder.errors import SpecError

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def split_even_small_specs(monkeypatch):
    monkeypatch.setattr(page_chunks, "MIN_PAGES", 1)


def both(text: str, tmp_path: Path):
    path = tmp_path / "mpforge.yaml"
    by_page = load.parse_spec(text.encode("utf-8"), path)
    whole = load._parse_whole(text, path)
    return by_page, whole


def assert_same(text: str, tmp_path: Path) -> None:
    assert page_chunks.split_pages(text) is not None, "this text should be parsed by page"
    by_page, whole = both(text, tmp_path)
    assert by_page.data == whole.data
    assert by_page.values == whole.values
    assert by_page.keys == whole.keys


@pytest.mark.parametrize("sample", ["harbour-coffee", "linli-fresh", "lao-jie-noodles"])
def test_samples_parse_the_same_by_page(sample, tmp_path):
    assert_same((SAMPLES / sample / "mpforge.yaml").read_text("utf-8"), tmp_path)


TRICKY = """\
# a spec
spec_version: 1
app: {name: Shop}
pages:
# a comment at column 0 inside the list

  - id: home   # trailing comment
    title: "Home: the \\"first\\" page"
    blocks:
      - type: text
        text: |
          two lines
            kept as written

      - {type: heading, text: 'x: y', subtitle: "a, b"}
  # an indented comment between items
  - id: about
    title: >
      folded
      text
    blocks: [{type: divider}, {type: spacer, height: 8}]
  -
    id: empty-dash-line
    blocks:
    - type: text
      text: 2026-01-01
merchant:
  name: Shop
"""


def test_comments_block_scalars_flow_and_odd_layouts_parse_the_same(tmp_path):
    assert_same(TRICKY, tmp_path)


def test_items_at_column_zero_parse_the_same(tmp_path):
    text = "spec_version: 1\npages:\n- id: a\n  title: A\n- id: b\n  title: B\napp: {name: x}\n"
    assert_same(text, tmp_path)


@pytest.mark.parametrize("text", [
    "pages: [{id: a}, {id: b}]\n",  # flow style
    "x: &anchor {a: 1}\npages:\n  - id: a\n    extra: *anchor\n",  # aliases may cross items
    "pages:\n\t- id: a\n",  # tabs: the whole-file parse reports them
    "pages:\n  - id: a\n  oops: 1\n",  # not an item at the items' level
    "---\npages:\n  - id: a\n",  # document markers
    "pages:\n  - id: a\npages:\n  - id: b\n",  # two pages keys
])
def test_unusual_files_are_parsed_whole(text):
    assert page_chunks.split_pages(text) is None


@pytest.mark.parametrize("broken, expected", [
    ("    title: [unclosed\n", "mpforge.yaml:10:9: YAML syntax error"),
    ("    title: Home\n    title: Again\n", "duplicate key 'title'"),
    ("    title: !!python/object:os.system x\n", "unsupported YAML tag"),
])
def test_a_problem_in_one_page_is_reported_as_by_the_whole_file_parse(broken, expected, tmp_path):
    text = ("spec_version: 1\napp: {name: x}\npages:\n  - id: a\n    title: A\n  - id: b\n    title: B\n"
            "  - id: c\n" + broken + "merchant: {name: m}\n")
    path = tmp_path / "mpforge.yaml"
    with pytest.raises(SpecError) as by_page:
        load.parse_spec(text.encode(), path)
    with pytest.raises(SpecError) as whole:
        load._parse_whole(text, path)
    assert [str(p) for p in by_page.value.problems] == [str(p) for p in whole.value.problems]
    assert expected in str(by_page.value.problems[0])


def test_nesting_limit_holds_inside_a_page(tmp_path):
    deep = "[" * 62 + "]" * 62  # 62 + the root, pages and the item: over 64 levels
    text = f"pages:\n  - id: a\n    x: {deep}\n  - id: b\n"
    with pytest.raises(SpecError) as by_page:
        load.parse_spec(text.encode(), tmp_path / "mpforge.yaml")
    with pytest.raises(SpecError) as whole:
        load._parse_whole(text, tmp_path / "mpforge.yaml")
    assert [str(p) for p in by_page.value.problems] == [str(p) for p in whole.value.problems]


def test_an_edit_reparses_only_the_edited_page(tmp_path, monkeypatch):
    pages = [{"id": f"p{i}", "title": f"Page {i}", "blocks": [{"type": "text", "text": f"t{i}"}]} for i in range(30)]
    spec = {"spec_version": 1, "app": {"name": "x"}, "pages": pages}
    text = yaml.safe_dump(spec, sort_keys=False)
    parsed = []
    real = load._parse_item
    monkeypatch.setattr(load, "_parse_item", lambda item, path: parsed.append(item) or real(item, path))
    memo = load.LoadMemo()
    load.parse_spec(text.encode(), tmp_path / "mpforge.yaml", memo)
    assert len(parsed) == 30
    parsed.clear()
    edited = text.replace("text: t7\n", "text: changed\n")
    spec_after = load.parse_spec(edited.encode(), tmp_path / "mpforge.yaml", memo)
    assert len(parsed) == 1 and "changed" in parsed[0]
    assert spec_after.data == load._parse_whole(edited, tmp_path / "mpforge.yaml").data
    # An edit that adds lines moves later pages: their data is reused, their marks follow.
    longer = text.replace("text: t7\n", "text: t7\n  - type: divider\n")
    moved = load.parse_spec(longer.encode(), tmp_path / "mpforge.yaml", memo)
    assert moved.values == load._parse_whole(longer, tmp_path / "mpforge.yaml").values


def test_synthetic_bench_spec_parses_the_same(tmp_path):
    import sys

    sys.path.insert(0, str(REPO / "bench"))
    try:
        from synthetic import make_spec
    finally:
        sys.path.pop(0)
    text = yaml.safe_dump(make_spec(40), allow_unicode=True, sort_keys=False)
    assert_same(text, tmp_path)


CORPUS = sorted((REPO / "tests" / "bad_inputs").glob("*.yaml")) + sorted(SAMPLES.glob("*/mpforge.yaml"))


def _outcome(path: Path):
    try:
        spec = load.parse_spec(path.read_bytes(), path)
    except SpecError as exc:
        return [str(p) for p in exc.problems]
    return spec.data, spec.values, spec.keys


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_every_corpus_file_loads_the_same_by_page_and_whole(path, monkeypatch):
    """The bad-input corpus as a fuzz of the splitter: same data, marks or messages."""
    by_page = _outcome(path)
    monkeypatch.setattr(load, "split_pages", lambda text: None)
    assert by_page == _outcome(path)
